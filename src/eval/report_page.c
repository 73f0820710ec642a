#include "eval/report_page.h"

#include <math.h>
#include <stdlib.h>

#include "eval/svg_plot.h"
#include "methods/anomaly_map.h"

#define HIST_BINS 30

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\n"
    "code{font-size:13px;background:#f3f3f3;padding:0 3px}\n"
    "table{border-collapse:collapse}th,td{padding:3px 10px;border-bottom:1px solid #ddd;"
    "text-align:right}th:first-child,td:first-child{text-align:left}\n"
    "tr.all td{font-weight:bold;border-top:2px solid #888}\n"
    ".status{display:inline-block;padding:2px 8px;border-radius:3px;background:#eee}\n"
    ".status.ok{background:#dfd}.status.bad{background:#fcc;font-weight:bold}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd;"
    "font-family:system-ui,sans-serif}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:10px}\n"
    ".card{margin:0;padding:6px;border:2px solid #ccc;border-radius:4px;max-width:530px}\n"
    ".card.wrong{border-color:#d22;background:#fff4f4}\n"
    ".card img{width:256px;height:auto;image-rendering:auto;margin-right:4px}\n"
    ".card figcaption{font-size:12px;word-break:break-all}\n"
    ".verdict{font-weight:bold}.wrong .verdict{color:#d22}\n"
    ".swatch{display:inline-block;width:14px;height:4px;vertical-align:middle;margin:0 4px}\n";

/* Counts the images that loaded, into the page (#img-status) and body
 * attributes, so a reader, a browser test and a screenshot all see
 * whether every thumbnail is there. */
static const char SCRIPT[] =
    "<script>\n"
    "window.addEventListener('load', function () {\n"
    "  var imgs = document.images, ok = 0, missing = [];\n"
    "  for (var i = 0; i < imgs.length; i++) {\n"
    "    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;\n"
    "    else missing.push(imgs[i].getAttribute('src'));\n"
    "  }\n"
    "  var s = document.getElementById('img-status');\n"
    "  s.textContent = ok + ' of ' + imgs.length + ' images loaded' +\n"
    "    (missing.length ? '; MISSING: ' + missing.join(', ') : '');\n"
    "  s.className = missing.length ? 'status bad' : 'status ok';\n"
    "  document.body.setAttribute('data-images-loaded', ok);\n"
    "  document.body.setAttribute('data-images-failed', missing.length);\n"
    "  if (missing.length) console.error('report: ' + missing.length + ' images failed to load');\n"
    "});\n"
    "</script>\n";

/* Text into HTML, in element content and in quoted attributes alike. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void metric_cells(FILE *f, const char *name, int images, const binary_metrics *m,
                         int all)
{
    fprintf(f, "<tr%s><td>", all ? " class=\"all\"" : "");
    put_escaped(f, name);
    fprintf(f, "</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td></tr>\n", images,
            m->auroc, m->aupr, m->f1_max);
}

static void summary(FILE *f, const eval_summary *s, double t_image, double t_pixel)
{
    fprintf(f, "<h2>Summary</h2>\n<table>\n<tr><th>defect type (vs. all normal images)</th>"
               "<th>images</th><th>image AUROC</th><th>image AUPR</th><th>image F1-max</th>"
               "</tr>\n");
    for (int i = 0; i < s->n_types; i++)
        metric_cells(f, s->types[i].type, s->types[i].images, &s->types[i].m, 0);
    metric_cells(f, "all", s->images, &s->image, 1);
    fprintf(f, "</table>\n<p>");
    if (s->have_pixel)
        fprintf(f, "Pixel AUROC <b>%.4f</b>, AU-PRO (FPR &le; %g) <b>%.4f</b>, pixel F1-max "
                   "%.4f.", s->pixel.auroc, s->fpr_limit, s->pixel.au_pro, s->pixel.f1_max);
    else {
        fputs("No pixel metrics: ", f);
        put_escaped(f, s->no_pixel ? s->no_pixel : "no masks");
        fputs(".", f);
    }
    fprintf(f, "</p>\n<p>Image threshold <b>%.6g</b>: the F1-max threshold of the image "
               "scores; an image is called anomalous when its score &ge; it.", t_image);
    if (!isnan(t_pixel))
        fprintf(f, " Predicted masks: anomaly map &ge; <b>%.6g</b>, the pixel-level F1-max "
                   "threshold over all test pixels.", t_pixel);
    else
        fputs(" No predicted masks (they need the pixel threshold, which needs masks).", f);
    fputs("</p>\n", f);
}

static void charts(FILE *f, const eval_summary *s, const page_item *items, int n,
                   double t_image)
{
    fputs("<h2>Curves</h2>\n<div class=\"charts\">\n", f);
    svg_series roc[2] = {{"image", "#1f5fbf", s->image_roc.x, s->image_roc.y,
                          s->image_roc.n},
                         {"pixel", "#e07000", s->pixel.roc.x, s->pixel.roc.y,
                          s->pixel.roc.n}};
    svg_frame roc_frame = {"ROC", "false positive rate", "true positive rate", 0, 1, 0, 1};
    svg_line_chart(f, &roc_frame, roc, s->have_pixel ? 2 : 1, 1);
    if (s->have_pixel) {
        svg_series pro = {"PRO", "#2a9d3a", s->pixel.pro.x, s->pixel.pro.y, s->pixel.pro.n};
        svg_frame pro_frame = {"PRO (per-region overlap)", "false positive rate",
                               "mean per-region overlap", 0, s->fpr_limit, 0, 1};
        svg_line_chart(f, &pro_frame, &pro, 1, 0);
    }
    float *good = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *bad = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (good && bad && n > 0) {
        int ng = 0, nb = 0;
        float lo = items[0].score, hi = items[0].score;
        for (int i = 0; i < n; i++) {
            float v = items[i].score;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            if (items[i].anomalous)
                bad[nb++] = v;
            else
                good[ng++] = v;
        }
        double pad = hi > lo ? 0.04 * (hi - lo) : 0.5;
        svg_frame hf = {"Image scores", "score", "images", lo - pad, hi + pad, 0, 0};
        svg_hist_set sets[2] = {{"normal", "#1f5fbf", good, ng},
                                {"anomalous", "#e03020", bad, nb}};
        char label[64];
        snprintf(label, sizeof label, "threshold %.4g", t_image);
        svg_histogram(f, &hf, sets, 2, HIST_BINS, t_image, label);
    }
    free(good);
    free(bad);
    fputs("</div>\n", f);
}

/* The heatmap colour scale as a CSS gradient of the ramp's own colours. */
static void colour_scale(FILE *f, float heat_hi)
{
    enum { STOPS = 11 };
    float v[STOPS];
    uint8_t rgb[3 * STOPS];
    for (int i = 0; i < STOPS; i++)
        v[i] = heat_hi * (float)i / (STOPS - 1);
    map_colorize(v, STOPS, 1, 0.0f, heat_hi, rgb);
    fputs("<p>Heatmap scale: 0 <span style=\"display:inline-block;width:200px;height:10px;"
          "vertical-align:middle;background:linear-gradient(to right", f);
    for (int i = 0; i < STOPS; i++)
        fprintf(f, ",rgb(%d,%d,%d)", rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    fprintf(f, ")\"></span> %.4g and above (the model's fixed scale: twice a typical normal "
               "patch score).</p>\n", heat_hi);
}

static void card(FILE *f, const page_item *it, int rank, double t_image)
{
    int flagged = it->score >= t_image;
    int wrong = flagged != it->anomalous;
    const char *verdict = it->anomalous ? (flagged ? "TP" : "FN missed")
                                        : (flagged ? "FP false alarm" : "TN");
    char photo[64], heat[64];
    snprintf(photo, sizeof photo, REPORT_PHOTO_FMT, it->file);
    snprintf(heat, sizeof heat, REPORT_HEAT_FMT, it->file);
    fprintf(f, "<figure class=\"card%s\"><div>", wrong ? " wrong" : "");
    fprintf(f, "<img src=\"%s\" width=\"%d\" height=\"%d\" alt=\"image with contours\">"
               "<img src=\"%s\" width=\"%d\" height=\"%d\" alt=\"heatmap\"></div>\n",
            photo, it->width, it->height, heat, it->width, it->height);
    fprintf(f, "<figcaption>#%d <span class=\"verdict\">%s</span> &middot; ", rank, verdict);
    put_escaped(f, it->type);
    fprintf(f, " &middot; score %.5g (margin %+.4g)<br><code>", it->score, it->margin);
    put_escaped(f, it->path);
    fputs("</code></figcaption></figure>\n", f);
}

void report_page_write(FILE *f, const eval_summary *s, const page_item *items, int n,
                       double image_threshold, double pixel_threshold, float heat_hi)
{
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<title>nominal eval report</title>\n<style>\n%s</style>\n</head>\n<body>\n",
            STYLE);
    fputs("<h1>nominal eval report</h1>\n<p>Model <code>", f);
    put_escaped(f, s->model);
    fputs("</code>, test set <code>", f);
    put_escaped(f, s->dataset);
    fprintf(f, "</code>: %d images, %d normal, %d anomalous. nominal %s.</p>\n", s->images,
            s->images - s->anomalous, s->anomalous, nm_version());
    fputs("<p id=\"img-status\" class=\"status\">images not checked (scripts are off)</p>\n",
          f);
    summary(f, s, image_threshold, pixel_threshold);
    charts(f, s, items, n, image_threshold);
    fputs("<h2>Images, worst first</h2>\n<p>Ordered by how wrong the image-level call is: "
          "the margin is threshold &minus; score for anomalous images and score &minus; "
          "threshold for normal ones, so misclassified images (margin &gt; 0, red) come "
          "first, then the correct ones closest to the threshold. Left: the image with the "
          "ground-truth defect contour<span class=\"swatch\" style=\"background:#0f0\">"
          "</span>and the predicted mask contour<span class=\"swatch\" "
          "style=\"background:#f0f\"></span>(drawn on the thumbnail: a thumbnail pixel is "
          "in a mask when any image pixel under it is). Right: the anomaly map over the "
          "image.</p>\n", f);
    colour_scale(f, heat_hi);
    fputs("<div class=\"cards\">\n", f);
    for (int i = 0; i < n; i++)
        card(f, &items[i], i + 1, image_threshold);
    fprintf(f, "</div>\n%s</body>\n</html>\n", SCRIPT);
}
