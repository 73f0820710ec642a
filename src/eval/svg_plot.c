#include "eval/svg_plot.h"

#include <math.h>
#include <stdlib.h>

/* Chart size in CSS pixels and the plot area inside it. */
enum { WIDTH = 380, HEIGHT = 300, LEFT = 54, RIGHT = 14, TOP = 30, BOTTOM = 46 };

typedef struct plot {
    double x0, x1, y0, y1;
} plot;

static double px(const plot *p, double x)
{
    return LEFT + (x - p->x0) / (p->x1 - p->x0) * (WIDTH - LEFT - RIGHT);
}

static double py(const plot *p, double y)
{
    return HEIGHT - BOTTOM - (y - p->y0) / (p->y1 - p->y0) * (HEIGHT - TOP - BOTTOM);
}

/* A tick spacing of 1, 2 or 5 times a power of ten giving 4 to 10 ticks. */
static double nice_step(double range)
{
    double raw = range / 5.0, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    return mag * (r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0);
}

static void open_chart(FILE *f, const svg_frame *fr)
{
    fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"%s\">\n", WIDTH, HEIGHT, WIDTH, HEIGHT, fr->title);
    fprintf(f, "<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">%s</text>\n",
            WIDTH / 2, fr->title);
}

/* Frame, grid, tick labels and axis labels. */
static void axes(FILE *f, const plot *p, const svg_frame *fr)
{
    double sx = nice_step(p->x1 - p->x0), sy = nice_step(p->y1 - p->y0);
    fprintf(f, "<g font-size=\"11\" fill=\"#444\">\n");
    for (double v = ceil(p->x0 / sx - 1e-9) * sx; v <= p->x1 + 1e-9 * sx; v += sx) {
        double x = px(p, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e4e4e4\"/>"
                   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n",
                x, TOP, x, HEIGHT - BOTTOM, x, HEIGHT - BOTTOM + 14, fabs(v) < 1e-12 ? 0 : v);
    }
    for (double v = ceil(p->y0 / sy - 1e-9) * sy; v <= p->y1 + 1e-9 * sy; v += sy) {
        double y = py(p, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                LEFT, y, WIDTH - RIGHT, y, LEFT - 4, y + 4, fabs(v) < 1e-12 ? 0 : v);
    }
    fprintf(f, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
               "stroke=\"#888\"/>\n", LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
            (LEFT + WIDTH - RIGHT) / 2, HEIGHT - 10, fr->x_label);
    fprintf(f, "<text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\" "
               "font-size=\"12\">%s</text>\n", (TOP + HEIGHT - BOTTOM) / 2, fr->y_label);
}

static void legend_entry(FILE *f, int i, const char *name, const char *colour)
{
    int y = TOP + 14 + 16 * i;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"10\" fill=\"%s\"/>"
               "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n",
            WIDTH - RIGHT - 150, y - 9, colour, WIDTH - RIGHT - 134, y, name);
}

void svg_line_chart(FILE *f, const svg_frame *fr, const svg_series *series, int n_series,
                    int diagonal)
{
    plot p = {fr->x0, fr->x1, fr->y0, fr->y1};
    open_chart(f, fr);
    axes(f, &p, fr);
    if (diagonal)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#aaa\" "
                   "stroke-dasharray=\"4 3\"/>\n", px(&p, p.x0), py(&p, p.x0),
                px(&p, p.x1), py(&p, p.x1));
    for (int s = 0; s < n_series; s++) {
        const svg_series *se = &series[s];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"",
                se->colour);
        for (int i = 0; i < se->n; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(&p, se->x[i]), py(&p, se->y[i]));
        fprintf(f, "\"/>\n");
        legend_entry(f, s, se->name, se->colour);
    }
    fprintf(f, "</svg>\n");
}

void svg_histogram(FILE *f, const svg_frame *fr, const svg_hist_set *sets, int n_sets,
                   int bins, double marker, const char *marker_label)
{
    int *count = calloc((size_t)bins * (size_t)(n_sets > 0 ? n_sets : 1), sizeof *count);
    if (!count || bins <= 0) {
        free(count);
        return;
    }
    double width = (fr->x1 - fr->x0) / bins;
    int top = 1;
    for (int s = 0; s < n_sets; s++) {
        for (int i = 0; i < sets[s].n; i++) {
            int b = (int)floor((sets[s].values[i] - fr->x0) / width);
            b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
            int c = ++count[s * bins + b];
            top = c > top ? c : top;
        }
    }
    plot p = {fr->x0, fr->x1, 0.0, top * 1.1};
    open_chart(f, fr);
    axes(f, &p, fr);
    for (int s = 0; s < n_sets; s++) {
        fprintf(f, "<g fill=\"%s\" fill-opacity=\"0.55\">\n", sets[s].colour);
        for (int b = 0; b < bins; b++) {
            int c = count[s * bins + b];
            if (!c)
                continue;
            double x0 = px(&p, fr->x0 + b * width), x1 = px(&p, fr->x0 + (b + 1) * width);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", x0,
                    py(&p, c), x1 - x0, py(&p, 0) - py(&p, c));
        }
        fprintf(f, "</g>\n");
        legend_entry(f, s, sets[s].name, sets[s].colour);
    }
    if (marker >= fr->x0 && marker <= fr->x1) {
        double x = px(&p, marker);
        int right_half = x > (LEFT + WIDTH - RIGHT) / 2;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c00\" "
                   "stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>"
                   "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#c00\" "
                   "text-anchor=\"%s\">%s</text>\n",
                x, TOP, x, HEIGHT - BOTTOM, right_half ? x - 3 : x + 3, TOP + 60,
                right_half ? "end" : "start", marker_label);
    }
    fprintf(f, "</svg>\n");
    free(count);
}
