/*
 * Anomaly-detection metrics, computed the way the MVTec AD protocol and
 * scikit-learn define them, in bounded memory.
 *
 * Image level: AUROC (ties count 1/2, = sklearn.metrics.roc_auc_score),
 * AUPR (= sklearn average_precision_score), F1-max and its threshold.
 * Pixel level: AUROC over all pixels pooled (up to ~100 M pixels: scores as
 * 32-bit floats sorted once), and AU-PRO integrated to FPR 0.3 and divided
 * by 0.3 exactly as the official MVTec evaluation does it (8-connected
 * defect regions per mask; all pixels sorted by score; cumulative FPR over
 * normal pixels and mean per-region overlap; the last point of each tie
 * group; trapezoid with linear interpolation at the limit), pixel F1-max
 * and its threshold (the report's predicted masks), and the ROC and PRO
 * curves thinned for plotting.
 */
#ifndef NM_EVAL_METRICS_H
#define NM_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

/* A monotone curve (x and y never decrease along it, as ROC and PRO curves
 * do) thinned for plotting: a point is kept when it is at least
 * METRIC_CURVE_STEP (L1) from the last kept one, and the final point always,
 * so the curve starts at (0, 0), the polyline through the points is within
 * one step of the exact curve, and there are at most
 * (x range + y range) / step + 2 points, however many thresholds
 * (up to one per pixel) the exact curve has. */
#define METRIC_CURVE_STEP (1.0 / 256.0)
#define METRIC_CURVE_MAX 1024
typedef struct metric_curve {
    int n;
    double x[METRIC_CURVE_MAX], y[METRIC_CURVE_MAX];
    double pending_x, pending_y; /* latest point not yet kept */
    int pending;
} metric_curve;

typedef struct binary_metrics {
    double auroc;
    double aupr;
    double f1_max;
    double f1_threshold; /* score at which F1 is largest (predict >= it) */
} binary_metrics;

/* scores[n], labels[n] (1 = anomalous). Needs both classes, else
 * NM_ERR_ARG with a message saying which class is missing. */
nm_status metrics_binary(const float *scores, const uint8_t *labels, size_t n,
                         binary_metrics *out, nm_error *err);
/* The same, and the ROC curve (FPR, TPR) from (0, 0) to (1, 1) into roc. */
nm_status metrics_binary_roc(const float *scores, const uint8_t *labels, size_t n,
                             binary_metrics *out, metric_curve *roc, nm_error *err);

/* Accumulates pixel maps image by image, then computes pixel AUROC and
 * AU-PRO. Maps and masks are width x height, row-major; mask != 0 marks a
 * defect pixel. Memory: 8 bytes per pixel added, 16 while finishing
 * (the sort needs a scratch copy). */
typedef struct pixel_metrics pixel_metrics;

nm_status pixel_metrics_create(pixel_metrics **out, nm_error *err);
nm_status pixel_metrics_add(pixel_metrics *pm, const float *map, const uint8_t *mask,
                            int width, int height, nm_error *err);
typedef struct pixel_result {
    double auroc;
    double au_pro;       /* area under PRO up to fpr_limit, / fpr_limit */
    double f1_max;       /* pixel-level F1-max over all pixels pooled */
    double f1_threshold; /* map value at which it is reached (defect >= it) */
    metric_curve roc;    /* (FPR, TPR), (0, 0) to (1, 1) */
    metric_curve pro;    /* (FPR, PRO), (0, 0) to (fpr_limit, interpolated) */
} pixel_result;

/* fpr_limit 0.3 for the standard AU-PRO. On an error every number in out
 * is NaN and the curves are empty. */
nm_status pixel_metrics_finish(pixel_metrics *pm, double fpr_limit, pixel_result *out,
                               nm_error *err);
void pixel_metrics_free(pixel_metrics *pm);

#endif
