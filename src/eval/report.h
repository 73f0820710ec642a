/*
 * `nominal eval --report DIR`: DIR/index.html, one page that needs nothing
 * but the folder it is in (no network, no frameworks): the summary table,
 * ROC, PRO and score-histogram charts as inline SVG, and every test image,
 * worst first, as two PNG thumbnails in DIR/img/ (PNG files rather than
 * data: URIs keep index.html small and quick to open, and the folder is
 * still self-contained: copy or zip it as a whole).
 *
 * Images are added while they are scored; the report keeps a ~256 px
 * thumbnail and the max-pooled map and mask of each (about 0.5 MB an image)
 * and writes the heatmap overlay at once. The photo with contours needs the
 * pixel threshold, known only once every image is scored, so it is drawn
 * by report_write, which then writes index.html, atomically and last: an
 * interrupted run leaves no page that pretends to be complete.
 */
#ifndef NM_EVAL_REPORT_H
#define NM_EVAL_REPORT_H

#include <stdint.h>

#include "eval/summary.h"
#include "nominal.h"

typedef struct report report;

/* Creates DIR and DIR/img if needed (files of an earlier report there are
 * overwritten; thumbnails beyond this report's count stay, unreferenced,
 * as nothing outside its own names is ever deleted). heat_hi: the map value drawn full red in the heatmaps (the
 * model's fixed colour scale, as `nominal predict` draws it). */
nm_status report_open(const char *dir, float heat_hi, report **out, nm_error *err);

/* One scored image. map and mask (either may be NULL) are on the image's
 * width x height; anomalous is the image's label. */
nm_status report_add(report *r, const char *path, const char *type, int anomalous,
                     float score, const nm_image *img, const float *map,
                     const uint8_t *mask, nm_error *err);

/* Thresholds: image = s->image.f1_threshold; predicted masks: map >= the
 * pixel F1-max threshold (s->pixel.f1_threshold; none without pixel
 * metrics). */
nm_status report_write(report *r, const eval_summary *s, nm_error *err);

/* The page's path (DIR/index.html). */
const char *report_page_path(const report *r);

void report_free(report *r);

#endif
