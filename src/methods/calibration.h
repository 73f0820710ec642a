/*
 * Decision thresholds from held-out scores: the arithmetic (this file's
 * calib_* functions) and the calibration a model carries (calibration_*,
 * stored as the model file's CALI section, see calibration_record.c).
 *
 * Conformal rule (split conformal prediction). With n calibration scores of
 * good images and a target false-alarm rate alpha, let k = floor(alpha (n+1))
 * and t = the k-th largest calibration score. A new image is anomalous iff
 * its score > t. If the n + 1 good scores are exchangeable (same process,
 * images not used for training), then
 *     P(new good score > t) <= k / (n + 1) <= alpha,
 * whatever the score distribution, ties included (a tie with t is "OK", so
 * ties can only lower the rate). Without ties it is exactly k / (n + 1).
 * k = 0 (alpha < 1/(n+1)) cannot be achieved with n images: an error.
 * The same argument on bad images (t just below the k-th smallest bad
 * score) bounds the miss rate for new defects exchangeable with them.
 */
#ifndef NM_METHODS_CALIBRATION_H
#define NM_METHODS_CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nominal.h"

/* k = floor(alpha (n + 1)), at most n; 0 when alpha is not achievable.
 * alpha is usually typed as a decimal (0.29 is not exact in binary): a
 * product within 1e-9 (relative) below an integer counts as that integer. */
int calib_conformal_k(int n, double alpha);
/* The fewest calibration values for which alpha is achievable (k >= 1). */
long calib_min_n(double alpha);

/* Counts in an ascending array: #{v > t} and #{v >= s}. */
size_t calib_count_above(const float *sorted, size_t n, float t);
size_t calib_count_at_least(const float *sorted, size_t n, float s);

/* Conformal p-value of score s against n ascending good scores:
 * (1 + #{good >= s}) / (n + 1). For exchangeable good scores
 * P(p <= a) <= a; "anomalous at level k/(n+1)" <=> p <= k/(n+1). */
double calib_p_value(const float *sorted, int n, float s);

/* NM_ERR_ARG saying how many values are needed if k would be 0. name is
 * "FPR"/"FNR", what names the values ("good images"). */
nm_status calib_check_achievable(const char *name, double alpha, int n, const char *what,
                                 nm_error *err);
/* FPR: t = k-th largest of the ascending good scores, k from alpha.
 * what names the values in errors ("good images"). */
nm_status calib_fpr_threshold(const float *sorted, int n, double alpha, const char *what,
                              float *t, int *k, nm_error *err);
/* FNR: t = the largest float below the k-th smallest bad score, k from
 * beta, so a new bad score >= that score is caught. */
nm_status calib_fnr_threshold(const float *sorted_bad, int n_bad, double beta, float *t,
                              int *k, nm_error *err);
/* F1-optimal threshold over every observed score (and one below all of
 * them); ties go to the larger threshold (fewer alarms). */
float calib_f1_threshold(const float *sorted_good, int n_good, const float *sorted_bad,
                         int n_bad, double *f1);

/* k-th largest of n values (1 <= k <= n), exact, without reordering
 * them: a two-pass radix count over the float bits. Values must be finite. */
nm_status calib_kth_largest(const float *v, size_t n, size_t k, float *out, nm_error *err);

/* Hold out round(fraction * n) of n items (at least 1, at most n - 1),
 * chosen by seed alone (splitmix64 + partial Fisher-Yates): held[i] = 1
 * for the chosen ones. Returns the count, or -1 if n < 2 or fraction is
 * not in (0, 1). */
int calib_holdout_pick(int n, double fraction, uint64_t seed, unsigned char *held);

/* Sorted (ascending) malloc'ed copy; every value must be finite. */
nm_status calib_sorted_copy(const float *v, int n, const char *what, float **out,
                            nm_error *err);

/* ----------------------------------------------------- a model's calibration */

typedef struct calibration {
    nm_calibration pub; /* the public view; its pointers point into fields below */
    float *good_scores;
    nm_tradeoff_row *table;
    char *created;
    char *good_source;
    char *bad_source;
    char **held_out;
} calibration;

/* Compute a calibration from scores (calibration.c). */
nm_status calibration_build(const nm_calibration_data *d, const nm_calibration_target *t,
                            calibration **out, nm_error *err);
void calibration_free(calibration *c);

/* The CALI section: JSON text (calibration_record.c). */
cJSON *calibration_to_json(const nm_calibration *c);
/* path is for messages; any missing or inconsistent field is NM_ERR_FORMAT. */
nm_status calibration_from_json(const void *text, size_t size, const char *path,
                                calibration **out, nm_error *err);

#endif
