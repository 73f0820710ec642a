/* The HTML of the eval report (see report.h): summary, charts, and the
 * image cards in the order given. */
#ifndef NM_EVAL_REPORT_PAGE_H
#define NM_EVAL_REPORT_PAGE_H

#include <stdio.h>

#include "eval/summary.h"

typedef struct page_item {
    const char *path; /* the image as given */
    const char *type;
    int anomalous;
    float score;
    double margin;    /* how wrong: > 0 misclassified (see report.c) */
    int file;         /* its thumbnails are img/FILE.png and img/FILE_heat.png */
    int width, height;
} page_item;

/* Writes the page to f; items worst first. pixel_threshold is NaN when
 * there are no predicted masks. heat_hi as for report_open. */
void report_page_write(FILE *f, const eval_summary *s, const page_item *items, int n,
                       double image_threshold, double pixel_threshold, float heat_hi);

/* img/%04d.png and img/%04d_heat.png relative to the report folder. */
#define REPORT_PHOTO_FMT "img/%04d.png"
#define REPORT_HEAT_FMT "img/%04d_heat.png"

#endif
