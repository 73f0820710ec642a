/*
 * Small inline-SVG charts for the HTML report: line charts (ROC, PRO) and
 * overlaid histograms with a marker line. Plain SVG 1.1 elements written
 * to a stream, no scripts, no external references; text given here is
 * written as is (callers pass fixed labels, not user strings).
 */
#ifndef NM_EVAL_SVG_PLOT_H
#define NM_EVAL_SVG_PLOT_H

#include <stdio.h>

typedef struct svg_frame {
    const char *title, *x_label, *y_label;
    double x0, x1, y0, y1; /* axis ranges (histograms: y is automatic) */
} svg_frame;

typedef struct svg_series {
    const char *name;   /* legend text */
    const char *colour; /* CSS colour */
    const double *x, *y;
    int n;
} svg_series;

/* One polyline per series; diagonal adds the dashed y = x line (chance
 * level of a ROC curve). */
void svg_line_chart(FILE *f, const svg_frame *fr, const svg_series *series, int n_series,
                    int diagonal);

typedef struct svg_hist_set {
    const char *name;
    const char *colour;
    const float *values;
    int n;
} svg_hist_set;

/* The sets counted into the same bins over [fr->x0, fr->x1] (values
 * outside are counted in the end bins), drawn as translucent bars over one
 * another, and a vertical dashed line at marker labelled marker_label. */
void svg_histogram(FILE *f, const svg_frame *fr, const svg_hist_set *sets, int n_sets,
                   int bins, double marker, const char *marker_label);

#endif
