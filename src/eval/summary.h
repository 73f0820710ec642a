/* The results of one evaluation, as `nominal eval` prints, writes to JSON
 * and renders into the HTML report. */
#ifndef NM_EVAL_SUMMARY_H
#define NM_EVAL_SUMMARY_H

#include "eval/metrics.h"

/* One defect type against all normal images. */
typedef struct type_metrics {
    const char *type;
    int images; /* of this type */
    binary_metrics m;
} type_metrics;

typedef struct eval_summary {
    const char *model;
    const char *dataset;
    int images, anomalous;
    binary_metrics image; /* all defect types together */
    metric_curve image_roc;
    const type_metrics *types;
    int n_types;
    double fpr_limit;     /* of AU-PRO */
    int have_pixel;       /* pixel metrics were computed */
    const char *no_pixel; /* if not, why (one line) */
    pixel_result pixel;
} eval_summary;

#endif
