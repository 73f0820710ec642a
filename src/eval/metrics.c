/*
 * Anomaly-detection metrics (see metrics.h for the definitions).
 *
 * Every metric here is a walk down the samples sorted by score, descending,
 * that looks at the running counts only at the last sample of each group of
 * equal scores (a threshold between two distinct scores). So each sample is
 * packed into one 64-bit key: the score's bits, made to sort like the float,
 * in the high half and a payload (label or region id) in the low half. One
 * LSD radix sort on the high half orders them in O(n); the payload travels
 * with its score and the order inside a tie group does not matter.
 *
 * Pixel data is packed into keys as it is added (8 bytes a pixel, plus 4
 * bytes per defect region); finish needs a second buffer of the same size
 * for the radix sort, so the peak is about 16 bytes per pixel.
 */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ------------------------------------------------------------------ keys */

/* Maps a float to a uint32 that orders like the float (total order for
 * non-NaN values): negative floats have all bits flipped, positive ones
 * get the sign bit set. -0 is folded into +0 first so that they tie. */
static uint32_t score_bits(float s)
{
    uint32_t u;
    s += 0.0f; /* -0.0f + 0.0f == +0.0f */
    memcpy(&u, &s, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static uint64_t make_key(float score, uint32_t payload)
{
    return ((uint64_t)score_bits(score) << 32) | payload;
}

static uint32_t key_score(uint64_t key) { return (uint32_t)(key >> 32); }
static uint32_t key_payload(uint64_t key) { return (uint32_t)key; }

/* The float whose score_bits are s (the inverse of score_bits). */
static float bits_to_score(uint32_t s)
{
    uint32_t u = (s & 0x80000000u) ? (s & 0x7FFFFFFFu) : ~s;
    float score;
    memcpy(&score, &u, sizeof score);
    return score;
}

/* Sorts keys[n] ascending by their high 32 bits (LSD radix, 4 passes of one
 * byte; a pass whose byte is the same for every key is skipped). Uses
 * scratch[n]; returns whichever of the two buffers holds the result. */
static uint64_t *radix_sort_high(uint64_t *keys, uint64_t *scratch, size_t n)
{
    size_t count[4][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint32_t h = key_score(keys[i]);
        for (int d = 0; d < 4; d++)
            count[d][(h >> (8 * d)) & 0xFFu]++;
    }
    uint64_t *src = keys, *dst = scratch;
    for (int d = 0; d < 4; d++) {
        int shift = 32 + 8 * d;
        if (n > 0 && count[d][(key_score(src[0]) >> (8 * d)) & 0xFFu] == n)
            continue; /* all keys share this byte: the pass would be a copy */
        size_t pos[256], sum = 0;
        for (int b = 0; b < 256; b++) {
            pos[b] = sum;
            sum += count[d][b];
        }
        for (size_t i = 0; i < n; i++)
            dst[pos[(src[i] >> shift) & 0xFFu]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

/* Allocates the scratch buffer and sorts; the result is in *sorted (keys or
 * *scratch_out, which the caller frees). */
static nm_status sort_keys(uint64_t *keys, size_t n, uint64_t **sorted,
                           uint64_t **scratch_out, nm_error *err)
{
    uint64_t *scratch = malloc((n ? n : 1) * sizeof *scratch);
    if (!scratch)
        return nm_fail(err, NM_ERR_NOMEM,
                       "metrics: cannot allocate %zu bytes to sort %zu scores",
                       n * sizeof *scratch, n);
    *sorted = radix_sort_high(keys, scratch, n);
    *scratch_out = scratch;
    return NM_OK;
}

/* Area under ROC from integer counts, exact: the trapezoid between two
 * thresholds is dfp * (tp_old + tp_new) / 2, summed as integers (at most
 * 2 * P * N, far below 2^64 for any image set that fits in memory). */
typedef struct roc_acc {
    uint64_t twice_area;
    uint64_t tp, fp;
} roc_acc;

static void roc_step(roc_acc *r, uint64_t tp, uint64_t fp)
{
    r->twice_area += (fp - r->fp) * (tp + r->tp);
    r->tp = tp;
    r->fp = fp;
}

static double roc_value(const roc_acc *r, uint64_t pos, uint64_t neg)
{
    return (double)r->twice_area / 2.0 / ((double)pos * (double)neg);
}

/* ---------------------------------------------------------------- curves */

static void curve_start(metric_curve *c)
{
    c->n = 1;
    c->x[0] = 0.0;
    c->y[0] = 0.0;
    c->pending = 0;
}

/* Keeps (x, y) if it is a step away from the last kept point, else holds it
 * as pending so that curve_end can keep the final point. The capacity check
 * is a guard only: a monotone curve in the unit square needs 2 / step + 2. */
static void curve_push(metric_curve *c, double x, double y)
{
    if (!c)
        return;
    int last = c->n - 1;
    if (fabs(x - c->x[last]) + fabs(y - c->y[last]) >= METRIC_CURVE_STEP &&
        c->n < METRIC_CURVE_MAX - 1) {
        c->x[c->n] = x;
        c->y[c->n] = y;
        c->n++;
        c->pending = 0;
    } else {
        c->pending_x = x;
        c->pending_y = y;
        c->pending = 1;
    }
}

static void curve_end(metric_curve *c)
{
    if (c && c->pending) {
        c->x[c->n] = c->pending_x;
        c->y[c->n] = c->pending_y;
        c->n++;
        c->pending = 0;
    }
}

/* F1 = 2TP / (2TP + FP + FN) = 2TP / (TP + FP + P); strict '>' keeps the
 * highest threshold among equal F1 values. */
typedef struct f1_acc {
    double best;
    float threshold;
} f1_acc;

static void f1_step(f1_acc *a, uint64_t tp, uint64_t fp, uint64_t pos, float score)
{
    double f1 = 2.0 * (double)tp / (double)(tp + fp + pos);
    if (f1 > a->best) {
        a->best = f1;
        a->threshold = score;
    }
}

/* ---------------------------------------------------------------- binary */

/* Walks the sorted keys (ascending, so from the end) group by group. */
static void binary_walk(const uint64_t *sorted, size_t n, uint64_t pos,
                        uint64_t neg, binary_metrics *out, metric_curve *curve)
{
    roc_acc roc = {0, 0, 0};
    f1_acc f1 = {-1.0, 0.0f};
    uint64_t tp = 0, fp = 0;
    double ap = 0.0, prev_recall = 0.0;
    size_t i = n;
    while (i > 0) {
        uint32_t s = key_score(sorted[i - 1]);
        while (i > 0 && key_score(sorted[i - 1]) == s) {
            if (key_payload(sorted[i - 1]))
                tp++;
            else
                fp++;
            i--;
        }
        roc_step(&roc, tp, fp);
        curve_push(curve, (double)fp / (double)neg, (double)tp / (double)pos);
        double recall = (double)tp / (double)pos;
        double precision = (double)tp / (double)(tp + fp);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        f1_step(&f1, tp, fp, pos, bits_to_score(s));
    }
    curve_end(curve);
    out->auroc = roc_value(&roc, pos, neg);
    out->aupr = ap;
    out->f1_max = f1.best;
    out->f1_threshold = f1.threshold;
}

nm_status metrics_binary(const float *scores, const uint8_t *labels, size_t n,
                         binary_metrics *out, nm_error *err)
{
    return metrics_binary_roc(scores, labels, n, out, NULL, err);
}

nm_status metrics_binary_roc(const float *scores, const uint8_t *labels, size_t n,
                             binary_metrics *out, metric_curve *roc, nm_error *err)
{
    if (roc)
        roc->n = 0;
    if (!scores || !labels || !out)
        return nm_fail(err, NM_ERR_ARG, "metrics_binary: NULL argument");
    if (n == 0)
        return nm_fail(err, NM_ERR_ARG, "metrics_binary: no samples");
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i]))
            return nm_fail(err, NM_ERR_ARG, "metrics_binary: score %zu is NaN",
                           i);
        pos += labels[i] != 0;
    }
    uint64_t neg = n - pos;
    if (pos == 0 || neg == 0)
        return nm_fail(err, NM_ERR_ARG,
                       "metrics_binary: all %zu samples are %s; need both "
                       "classes (no %s sample)", n,
                       pos ? "anomalous" : "normal",
                       pos ? "normal" : "anomalous");
    uint64_t *keys = malloc(n * sizeof *keys);
    if (!keys)
        return nm_fail(err, NM_ERR_NOMEM, "metrics_binary: out of memory");
    for (size_t i = 0; i < n; i++)
        keys[i] = make_key(scores[i], labels[i] != 0);
    uint64_t *sorted = NULL, *scratch = NULL;
    nm_status st = sort_keys(keys, n, &sorted, &scratch, err);
    if (st == NM_OK) {
        if (roc)
            curve_start(roc);
        binary_walk(sorted, n, pos, neg, out, roc);
    }
    free(scratch);
    free(keys);
    return st;
}

/* ----------------------------------------------------------------- pixel */

struct pixel_metrics {
    uint64_t *keys;        /* score bits << 32 | region id (0 = normal) */
    size_t n, cap;
    uint32_t *region_size; /* region_size[id - 1], ids unique over images */
    size_t n_regions, region_cap;
    uint64_t n_defect;     /* pixels inside some region */
    size_t n_images;       /* for error messages */
};

nm_status pixel_metrics_create(pixel_metrics **out, nm_error *err)
{
    if (!out)
        return nm_fail(err, NM_ERR_ARG, "pixel_metrics_create: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return nm_fail(err, NM_ERR_NOMEM, "pixel_metrics_create: out of memory");
    return NM_OK;
}

void pixel_metrics_free(pixel_metrics *pm)
{
    if (!pm)
        return;
    free(pm->keys);
    free(pm->region_size);
    free(pm);
}

/* Grows *buf (elements of size elem) to hold at least need, by 1.5x. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c += c / 2;
    if (c > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*buf, c * elem);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* Labels the 8-connected defect regions of one mask, writing each pixel's
 * global region id into the low half of keys[0 .. w*h) (which arrive with
 * id 0, so 0 doubles as "not yet labelled"). Flood fill with an explicit
 * stack: every pixel is pushed at most once, so stack[w*h] suffices. */
static nm_status label_regions(pixel_metrics *pm, uint64_t *keys,
                               const uint8_t *mask, int w, int h,
                               size_t *stack, nm_error *err)
{
    size_t npix = (size_t)w * (size_t)h;
    for (size_t seed = 0; seed < npix; seed++) {
        if (!mask[seed] || key_payload(keys[seed]))
            continue;
        if (pm->n_regions >= UINT32_MAX - 1)
            return nm_fail(err, NM_ERR_LIMIT,
                           "pixel_metrics_add: more than %u defect regions",
                           (unsigned)(UINT32_MAX - 1));
        if (grow((void **)&pm->region_size, &pm->region_cap,
                 pm->n_regions + 1, sizeof *pm->region_size))
            return nm_fail(err, NM_ERR_NOMEM, "pixel_metrics_add: out of memory");
        uint32_t id = (uint32_t)(pm->n_regions + 1);
        uint32_t size = 0;
        size_t top = 0;
        stack[top++] = seed;
        keys[seed] |= id;
        while (top > 0) {
            size_t p = stack[--top];
            int x = (int)(p % (size_t)w), y = (int)(p / (size_t)w);
            size++;
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    int nx = x + dx, ny = y + dy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                        continue;
                    size_t q = (size_t)ny * (size_t)w + (size_t)nx;
                    if (mask[q] && !key_payload(keys[q])) {
                        keys[q] |= id;
                        stack[top++] = q;
                    }
                }
            }
        }
        pm->region_size[pm->n_regions++] = size;
        pm->n_defect += size;
    }
    return NM_OK;
}

nm_status pixel_metrics_add(pixel_metrics *pm, const float *map, const uint8_t *mask,
                            int width, int height, nm_error *err)
{
    if (!pm || !map || !mask)
        return nm_fail(err, NM_ERR_ARG, "pixel_metrics_add: NULL argument");
    if (width <= 0 || height <= 0)
        return nm_fail(err, NM_ERR_ARG,
                       "pixel_metrics_add: image %zu has size %dx%d",
                       pm->n_images, width, height);
    size_t npix = (size_t)width * (size_t)height;
    for (size_t i = 0; i < npix; i++) {
        if (isnan(map[i]))
            return nm_fail(err, NM_ERR_ARG,
                           "pixel_metrics_add: image %zu: score at (%zu, %zu) "
                           "is NaN", pm->n_images, i % (size_t)width,
                           i / (size_t)width);
    }
    if (grow((void **)&pm->keys, &pm->cap, pm->n + npix, sizeof *pm->keys))
        return nm_fail(err, NM_ERR_NOMEM,
                       "pixel_metrics_add: out of memory for %zu pixels",
                       pm->n + npix);
    size_t *stack = malloc(npix * sizeof *stack);
    if (!stack)
        return nm_fail(err, NM_ERR_NOMEM, "pixel_metrics_add: out of memory");
    uint64_t *keys = pm->keys + pm->n;
    for (size_t i = 0; i < npix; i++)
        keys[i] = make_key(map[i], 0);
    size_t regions_before = pm->n_regions;
    uint64_t defect_before = pm->n_defect;
    nm_status st = label_regions(pm, keys, mask, width, height, stack, err);
    free(stack);
    if (st != NM_OK) { /* leave pm as it was before this image */
        pm->n_regions = regions_before;
        pm->n_defect = defect_before;
        return st;
    }
    pm->n += npix;
    pm->n_images++;
    return NM_OK;
}

/* Trapezoid integration of PRO over FPR up to limit, fed one curve point at
 * a time (starting after the implicit (0, 0)); stops accumulating once a
 * point passes the limit, adding the piece up to the interpolated value. */
typedef struct pro_acc {
    double limit, area;
    double fpr, pro; /* previous point */
    int done;
    metric_curve *curve; /* the points up to the limit */
} pro_acc;

static void pro_step(pro_acc *a, double fpr, double pro)
{
    if (a->done)
        return;
    if (pro > 1.0) /* rounding in the running sum; the official code clips */
        pro = 1.0;
    if (fpr <= a->limit) {
        a->area += 0.5 * (pro + a->pro) * (fpr - a->fpr);
        curve_push(a->curve, fpr, pro);
    } else {
        if (a->fpr < a->limit) {
            double y = a->pro + (pro - a->pro) * (a->limit - a->fpr) / (fpr - a->fpr);
            a->area += 0.5 * (y + a->pro) * (a->limit - a->fpr);
            curve_push(a->curve, a->limit, y);
        }
        a->done = 1;
    }
    a->fpr = fpr;
    a->pro = pro;
}

/* One walk down the sorted pixels: ROC counts, F1 and the PRO curve. */
static void pixel_walk(const pixel_metrics *pm, const uint64_t *sorted,
                       double fpr_limit, pixel_result *out)
{
    uint64_t neg = pm->n - pm->n_defect;
    roc_acc roc = {0, 0, 0};
    f1_acc f1 = {-1.0, 0.0f};
    curve_start(&out->roc);
    curve_start(&out->pro);
    pro_acc pro = {fpr_limit, 0.0, 0.0, 0.0, 0, &out->pro};
    uint64_t tp = 0, fp = 0;
    double overlap = 0.0; /* sum over seen defect pixels of 1 / region size */
    size_t i = pm->n;
    while (i > 0) {
        uint32_t s = key_score(sorted[i - 1]);
        while (i > 0 && key_score(sorted[i - 1]) == s) {
            uint32_t id = key_payload(sorted[i - 1]);
            if (id) {
                tp++;
                overlap += 1.0 / (double)pm->region_size[id - 1];
            } else {
                fp++;
            }
            i--;
        }
        roc_step(&roc, tp, fp);
        curve_push(&out->roc, (double)fp / (double)neg,
                   (double)tp / (double)pm->n_defect);
        f1_step(&f1, tp, fp, pm->n_defect, bits_to_score(s));
        pro_step(&pro, (double)fp / (double)neg,
                 overlap / (double)pm->n_regions);
    }
    curve_end(&out->roc);
    curve_end(&out->pro);
    out->auroc = roc_value(&roc, pm->n_defect, neg);
    out->au_pro = pro.area / fpr_limit;
    out->f1_max = f1.best;
    out->f1_threshold = f1.threshold;
}

/* Sorts the pixels added so far (in place; finish may be called again, and
 * more images added in between). Without defect pixels there are no regions:
 * AU-PRO is undefined and so is pixel AUROC, so the outputs stay NaN and
 * NM_ERR_ARG is returned; likewise when no pixel is normal. */
nm_status pixel_metrics_finish(pixel_metrics *pm, double fpr_limit, pixel_result *out,
                               nm_error *err)
{
    if (out) {
        out->auroc = out->au_pro = out->f1_max = out->f1_threshold = NAN;
        out->roc.n = out->pro.n = 0;
    }
    if (!pm || !out)
        return nm_fail(err, NM_ERR_ARG, "pixel_metrics_finish: NULL argument");
    if (!(fpr_limit > 0.0 && fpr_limit <= 1.0))
        return nm_fail(err, NM_ERR_ARG,
                       "pixel_metrics_finish: fpr_limit %g not in (0, 1]",
                       fpr_limit);
    if (pm->n == 0)
        return nm_fail(err, NM_ERR_ARG, "pixel_metrics_finish: no pixels added");
    if (pm->n_defect == 0)
        return nm_fail(err, NM_ERR_ARG,
                       "pixel_metrics_finish: no defect pixels in %zu images "
                       "(pixel AUROC undefined, AU-PRO has no regions)",
                       pm->n_images);
    if (pm->n_defect == pm->n)
        return nm_fail(err, NM_ERR_ARG,
                       "pixel_metrics_finish: every pixel of %zu images is a "
                       "defect pixel (no normal pixels)", pm->n_images);
    uint64_t *sorted = NULL, *scratch = NULL;
    nm_status st = sort_keys(pm->keys, pm->n, &sorted, &scratch, err);
    if (st != NM_OK)
        return st;
    pixel_walk(pm, sorted, fpr_limit, out);
    free(scratch);
    return NM_OK;
}
