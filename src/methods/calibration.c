/*
 * Threshold arithmetic (conformal order statistics, p-values, F1, exact
 * pixel quantiles) and building a model's calibration from scores. The
 * guarantee and the tie rule are explained in calibration.h.
 */
#include "methods/calibration.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

/* Alphas the trade-off table shows (where achievable). */
static const double table_alphas[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2};
#define N_TABLE_ALPHAS (int)(sizeof table_alphas / sizeof table_alphas[0])
/* The default target FPR when none is given (fit --holdout). */
#define DEFAULT_FPR 0.01

int calib_conformal_k(int n, double alpha)
{
    if (n < 1 || !(alpha > 0) || !(alpha < 1))
        return 0;
    double x = alpha * ((double)n + 1.0);
    double k = floor(x);
    if (k + 1.0 - x <= 1e-9 * x)
        k += 1.0;
    return k > n ? n : (int)k;
}

long calib_min_n(double alpha)
{
    if (!(alpha > 0) || !(alpha < 1))
        return -1;
    long n = (long)ceil(1.0 / alpha) - 1;
    if (n < 1)
        n = 1;
    while (n > 1 && calib_conformal_k((int)n - 1, alpha) >= 1)
        n--;
    while (calib_conformal_k((int)n, alpha) < 1)
        n++;
    return n;
}

long nm_calibration_min_images(double alpha) { return calib_min_n(alpha); }

/* First index with sorted[i] > t (upper bound). */
static size_t upper_bound(const float *sorted, size_t n, float t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* First index with sorted[i] >= s (lower bound). */
static size_t lower_bound(const float *sorted, size_t n, float s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] >= s)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

size_t calib_count_above(const float *sorted, size_t n, float t)
{
    return n - upper_bound(sorted, n, t);
}

size_t calib_count_at_least(const float *sorted, size_t n, float s)
{
    return n - lower_bound(sorted, n, s);
}

double calib_p_value(const float *sorted, int n, float s)
{
    return (1.0 + (double)calib_count_at_least(sorted, (size_t)n, s)) / ((double)n + 1.0);
}

nm_status calib_check_achievable(const char *name, double alpha, int n, const char *what,
                                 nm_error *err)
{
    if (!(alpha > 0 && alpha < 1))
        return nm_fail(err, NM_ERR_ARG, "target %s must be in (0, 1), got %g", name, alpha);
    if (calib_conformal_k(n, alpha) >= 1)
        return NM_OK;
    return nm_fail(err, NM_ERR_ARG,
                   "target %s %g is not achievable with %d %s: the smallest is 1/%d = %.4g; "
                   "at least %ld %s are needed",
                   name, alpha, n, what, n + 1, 1.0 / (n + 1), calib_min_n(alpha), what);
}

nm_status calib_fpr_threshold(const float *sorted, int n, double alpha, const char *what,
                              float *t, int *k, nm_error *err)
{
    nm_status st = calib_check_achievable("FPR", alpha, n, what, err);
    if (st)
        return st;
    *k = calib_conformal_k(n, alpha);
    *t = sorted[n - *k];
    return NM_OK;
}

nm_status calib_fnr_threshold(const float *sorted_bad, int n_bad, double beta, float *t,
                              int *k, nm_error *err)
{
    nm_status st = calib_check_achievable("FNR", beta, n_bad, "bad images", err);
    if (st)
        return st;
    *k = calib_conformal_k(n_bad, beta);
    *t = nextafterf(sorted_bad[*k - 1], -INFINITY);
    return NM_OK;
}

static double f1_at(const float *sg, int ng, const float *sb, int nb, float t)
{
    double tp = (double)calib_count_above(sb, (size_t)nb, t);
    double fp = (double)calib_count_above(sg, (size_t)ng, t);
    double fn = nb - tp;
    return tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
}

float calib_f1_threshold(const float *sg, int ng, const float *sb, int nb, double *f1)
{
    float lowest = sg[0] < sb[0] ? sg[0] : sb[0];
    float best_t = nextafterf(lowest, -INFINITY);
    double best = f1_at(sg, ng, sb, nb, best_t);
    /* ascending candidates with >=: a tie moves to the larger threshold */
    for (int pass = 0; pass < 2; pass++) {
        const float *v = pass ? sb : sg;
        int n = pass ? nb : ng;
        for (int i = 0; i < n; i++) {
            double f = f1_at(sg, ng, sb, nb, v[i]);
            if (f > best || (f == best && v[i] > best_t)) {
                best = f;
                best_t = v[i];
            }
        }
    }
    *f1 = best;
    return best_t;
}

/* Float bits -> an unsigned key with the same order (for radix counting). */
static uint32_t order_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float key_value(uint32_t key)
{
    uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Walk a 65536-bin histogram from the top to the bin holding the k-th
 * largest; *k becomes its rank inside that bin. */
static uint32_t bin_of_kth(const size_t *hist, size_t *k)
{
    uint32_t b = 65535;
    while (hist[b] < *k) {
        *k -= hist[b];
        b--;
    }
    return b;
}

nm_status calib_kth_largest(const float *v, size_t n, size_t k, float *out, nm_error *err)
{
    if (k < 1 || k > n)
        return nm_fail(err, NM_ERR_ARG, "rank %zu out of 1..%zu", k, n);
    size_t *hist = calloc(65536, sizeof *hist);
    if (!hist)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            free(hist);
            return nm_fail(err, NM_ERR_ARG, "value %zu is not finite", i);
        }
        hist[order_key(v[i]) >> 16]++;
    }
    uint32_t high = bin_of_kth(hist, &k);
    memset(hist, 0, 65536 * sizeof *hist);
    for (size_t i = 0; i < n; i++) {
        uint32_t key = order_key(v[i]);
        if (key >> 16 == high)
            hist[key & 0xffffu]++;
    }
    uint32_t low = bin_of_kth(hist, &k);
    free(hist);
    *out = key_value(high << 16 | low);
    return NM_OK;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int calib_holdout_pick(int n, double fraction, uint64_t seed, unsigned char *held)
{
    if (n < 2 || !(fraction > 0 && fraction < 1))
        return -1;
    int h = (int)floor(fraction * n + 0.5);
    h = h < 1 ? 1 : h > n - 1 ? n - 1 : h;
    int *idx = malloc(sizeof(int) * (size_t)n);
    if (!idx)
        return -1;
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        held[i] = 0;
    }
    uint64_t state = seed;
    for (int i = 0; i < h; i++) {
        int j = i + (int)(splitmix64(&state) % (uint64_t)(n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        held[idx[i]] = 1;
    }
    free(idx);
    return h;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

nm_status calib_sorted_copy(const float *v, int n, const char *what, float **out,
                            nm_error *err)
{
    *out = NULL;
    if (n < 1 || !v)
        return nm_fail(err, NM_ERR_ARG, "no %s to calibrate on", what);
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return nm_fail(err, NM_ERR_ARG, "score %d of the %s is not finite", i, what);
    float *s = malloc(sizeof(float) * (size_t)n);
    if (!s)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    memcpy(s, v, sizeof(float) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, compare_floats);
    *out = s;
    return NM_OK;
}

/* ------------------------------------------------------- building one */

void calibration_free(calibration *c)
{
    if (!c)
        return;
    free(c->good_scores);
    free(c->table);
    free(c->created);
    free(c->good_source);
    free(c->bad_source);
    for (int i = 0; c->held_out && i < c->pub.n_held_out; i++)
        free(c->held_out[i]);
    free(c->held_out);
    free(c);
}

static char *copy_or_null(const char *s, int *failed)
{
    char *c = s ? strdup(s) : NULL;
    if (s && !c)
        *failed = 1;
    return c;
}

static nm_tradeoff_row row_at(const nm_calibration *p, const float *bad, float t)
{
    nm_tradeoff_row r;
    size_t above = calib_count_above(p->good_scores, (size_t)p->n_good, t);
    r.threshold = t;
    r.fpr_good = (double)above / p->n_good;
    r.fpr_bound = (1.0 + (double)above) / (p->n_good + 1.0);
    r.fnr_bad = p->n_bad ? (double)(p->n_bad - calib_count_above(bad, (size_t)p->n_bad, t)) /
                               p->n_bad
                         : NAN;
    return r;
}

static int compare_rows_desc(const void *a, const void *b)
{
    float x = ((const nm_tradeoff_row *)a)->threshold;
    float y = ((const nm_tradeoff_row *)b)->threshold;
    return (x < y) - (x > y);
}

/* Rows: the conformal threshold of every achievable table alpha, the
 * chosen threshold and (with bad images) the F1-optimal one; no repeats. */
static nm_status build_table(calibration *c, const float *bad, nm_error *err)
{
    nm_calibration *p = &c->pub;
    c->table = malloc(sizeof *c->table * (N_TABLE_ALPHAS + 2));
    if (!c->table)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    float cand[N_TABLE_ALPHAS + 2];
    int n = 0;
    for (int i = 0; i < N_TABLE_ALPHAS; i++) {
        int k = calib_conformal_k(p->n_good, table_alphas[i]);
        if (k >= 1)
            cand[n++] = p->good_scores[p->n_good - k];
    }
    cand[n++] = p->threshold;
    if (p->n_bad) {
        double f1;
        cand[n++] = calib_f1_threshold(p->good_scores, p->n_good, bad, p->n_bad, &f1);
    }
    int rows = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < rows; j++)
            seen |= c->table[j].threshold == cand[i];
        if (!seen)
            c->table[rows++] = row_at(p, bad, cand[i]);
    }
    qsort(c->table, (size_t)rows, sizeof *c->table, compare_rows_desc);
    p->table = c->table;
    p->n_table = rows;
    return NM_OK;
}

static nm_status choose_threshold(calibration *c, const float *bad,
                                  const nm_calibration_target *t, nm_error *err)
{
    nm_calibration *p = &c->pub;
    p->kind = t->kind;
    p->target = t->target;
    if (t->kind != NM_CALIBRATE_FPR && p->n_bad < 1)
        return nm_fail(err, NM_ERR_ARG, "a target %s needs bad images",
                       t->kind == NM_CALIBRATE_F1 ? "F1" : "FNR");
    switch (t->kind) {
    case NM_CALIBRATE_FPR:
        if (t->target == 0) { /* the default: max(0.01, 1/(n+1)) */
            int k = calib_conformal_k(p->n_good, DEFAULT_FPR);
            p->target = k >= 1 ? DEFAULT_FPR : 1.0 / (p->n_good + 1.0);
        }
        return calib_fpr_threshold(p->good_scores, p->n_good, p->target, "good images",
                                   &p->threshold, &p->k, err);
    case NM_CALIBRATE_FNR:
        return calib_fnr_threshold(bad, p->n_bad, p->target, &p->threshold, &p->k, err);
    case NM_CALIBRATE_F1: {
        double f1;
        p->threshold = calib_f1_threshold(p->good_scores, p->n_good, bad, p->n_bad, &f1);
        p->target = f1; /* what was reached: there is no target to ask for */
        p->k = 0;
        return NM_OK;
    }
    }
    return nm_fail(err, NM_ERR_ARG, "unknown calibration kind %d", (int)t->kind);
}

static nm_status pixel_threshold(calibration *c, const nm_calibration_data *d, double alpha,
                                 nm_error *err)
{
    nm_calibration *p = &c->pub;
    if (!(alpha > 0 && alpha < 1))
        return nm_fail(err, NM_ERR_ARG, "target pixel FPR must be in (0, 1), got %g", alpha);
    if (!d->good_pixels || d->n_good_pixels == 0)
        return nm_fail(err, NM_ERR_ARG, "a pixel threshold needs the good images' maps");
    /* k = floor(alpha (N + 1)) in double: N can exceed an int */
    double x = alpha * ((double)d->n_good_pixels + 1.0);
    double kd = floor(x * (1.0 + 1e-12));
    if (kd < 1)
        return nm_fail(err, NM_ERR_ARG,
                       "target pixel FPR %g is not achievable with %zu good pixels", alpha,
                       d->n_good_pixels);
    size_t k = kd > (double)d->n_good_pixels ? d->n_good_pixels : (size_t)kd;
    nm_status st = calib_kth_largest(d->good_pixels, d->n_good_pixels, k,
                                     &p->pixel_threshold, err);
    if (st)
        return st;
    size_t above = 0, missed = 0;
    for (size_t i = 0; i < d->n_good_pixels; i++)
        above += d->good_pixels[i] > p->pixel_threshold;
    for (size_t i = 0; i < d->n_defect_pixels; i++)
        missed += !(d->defect_pixels[i] > p->pixel_threshold);
    p->has_pixel_threshold = 1;
    p->pixel_target = alpha;
    p->n_good_pixels = d->n_good_pixels;
    p->pixel_fpr_good = (double)above / (double)d->n_good_pixels;
    p->n_defect_pixels = d->n_defect_pixels;
    p->pixel_fnr_bad = d->n_defect_pixels ? (double)missed / (double)d->n_defect_pixels : NAN;
    return NM_OK;
}

static char *utc_now(void)
{
    char buf[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup(buf);
}

static nm_status copy_facts(calibration *c, const nm_calibration_data *d, nm_error *err)
{
    nm_calibration *p = &c->pub;
    int failed = 0;
    c->created = utc_now();
    failed |= !c->created;
    c->good_source = copy_or_null(d->good_source, &failed);
    c->bad_source = copy_or_null(d->bad_source, &failed);
    if (d->n_held_out > 0 && d->held_out) {
        c->held_out = calloc((size_t)d->n_held_out, sizeof *c->held_out);
        failed |= !c->held_out;
        for (int i = 0; c->held_out && i < d->n_held_out; i++) {
            c->held_out[i] = copy_or_null(d->held_out[i], &failed);
            p->n_held_out = i + 1;
        }
    }
    p->created = c->created;
    p->good_source = c->good_source;
    p->bad_source = c->bad_source;
    p->held_out = (const char *const *)c->held_out;
    return failed ? nm_fail(err, NM_ERR_NOMEM, "out of memory") : NM_OK;
}

nm_status calibration_build(const nm_calibration_data *d, const nm_calibration_target *t,
                            calibration **out, nm_error *err)
{
    if (!d || !t || !out)
        return nm_fail(err, NM_ERR_ARG, "calibration: missing argument");
    *out = NULL;
    calibration *c = calloc(1, sizeof *c);
    if (!c)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    nm_calibration *p = &c->pub;
    float *bad = NULL;
    nm_status st = calib_sorted_copy(d->good_scores, d->n_good, "good images",
                                     &c->good_scores, err);
    if (!st && d->n_bad > 0)
        st = calib_sorted_copy(d->bad_scores, d->n_bad, "bad images", &bad, err);
    if (!st) {
        p->n_good = d->n_good;
        p->good_scores = c->good_scores;
        p->n_bad = d->n_bad > 0 ? d->n_bad : 0;
        st = choose_threshold(c, bad, t, err);
    }
    if (!st) {
        nm_tradeoff_row r = row_at(p, bad, p->threshold);
        size_t missed = p->n_bad - calib_count_above(bad, (size_t)p->n_bad, p->threshold);
        p->fpr_good = r.fpr_good;
        p->fnr_bad = r.fnr_bad;
        /* guaranteed for the conformal kind, an estimate otherwise */
        p->fpr_bound = p->kind == NM_CALIBRATE_FPR ? p->k / (p->n_good + 1.0) : r.fpr_bound;
        p->fnr_bound = p->kind == NM_CALIBRATE_FNR ? p->k / (p->n_bad + 1.0)
                       : p->n_bad                  ? (1.0 + (double)missed) / (p->n_bad + 1.0)
                                                   : NAN;
        p->pixel_fnr_bad = NAN;
        st = build_table(c, bad, err);
    }
    if (!st && t->pixel_fpr > 0)
        st = pixel_threshold(c, d, t->pixel_fpr, err);
    if (!st)
        st = copy_facts(c, d, err);
    free(bad);
    if (st) {
        calibration_free(c);
        return st;
    }
    *out = c;
    return NM_OK;
}
