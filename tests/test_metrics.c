/*
 * Evaluation metrics (src/eval/metrics.c): hand-computed cases, agreement
 * with tests/tools/gen_metrics_ref.py (tu_fixtures()/metrics_ref: sklearn
 * or an independent NumPy formulation for the binary metrics, the official
 * MVTec AD compute_pro/trapezoid_area for AU-PRO), errors, and a timing of
 * pixel AUROC + AU-PRO on 20 M pixels (printed, not asserted).
 */
#include "test_util.h"

#include <time.h>

#include "eval/metrics.h"
#include "nominal.h"

#define EXACT 1e-12
#define REF_TOLERANCE 1e-6

/* ------------------------------------------------------------ helpers */

static binary_metrics binary_ok(const float *s, const uint8_t *l, size_t n)
{
    binary_metrics m;
    nm_error err = {0};
    nm_status st = metrics_binary(s, l, n, &m, &err);
    if (st != NM_OK)
        fail_msg("metrics_binary: %s", err.msg);
    return m;
}

/* All pixel results of a set of same-sized images. */
static void pixel_run(const float *maps, const uint8_t *masks, int images,
                      int w, int h, double limit, pixel_result *r)
{
    pixel_metrics *pm = NULL;
    nm_error err = {0};
    assert_int_equal(pixel_metrics_create(&pm, &err), NM_OK);
    size_t npix = (size_t)w * (size_t)h;
    for (int i = 0; i < images; i++) {
        if (pixel_metrics_add(pm, maps + i * npix, masks + i * npix, w, h,
                              &err) != NM_OK)
            fail_msg("pixel_metrics_add: %s", err.msg);
    }
    if (pixel_metrics_finish(pm, limit, r, &err) != NM_OK)
        fail_msg("pixel_metrics_finish: %s", err.msg);
    pixel_metrics_free(pm);
}

/* Pixel AUROC and AU-PRO of a set of same-sized images. */
static void pixel_ok(const float *maps, const uint8_t *masks, int images,
                     int w, int h, double limit, double *auroc, double *aupro)
{
    static pixel_result r;
    pixel_run(maps, masks, images, w, h, limit, &r);
    *auroc = r.auroc;
    *aupro = r.au_pro;
}

/* The curve is exactly these n points. */
static void curve_is(const metric_curve *c, const double *xy, int n)
{
    if (c->n != n)
        fail_msg("curve has %d points, expected %d", c->n, n);
    for (int i = 0; i < n; i++) {
        if (fabs(c->x[i] - xy[2 * i]) > EXACT || fabs(c->y[i] - xy[2 * i + 1]) > EXACT)
            fail_msg("curve point %d is (%g, %g), expected (%g, %g)", i, c->x[i],
                     c->y[i], xy[2 * i], xy[2 * i + 1]);
    }
}

/* Trapezoid area under a curve's points. */
static double curve_area(const metric_curve *c)
{
    double a = 0;
    for (int i = 1; i < c->n; i++)
        a += 0.5 * (c->y[i] + c->y[i - 1]) * (c->x[i] - c->x[i - 1]);
    return a;
}

/* Thinned as promised: starts at (0, 0), ends at end_x, never decreases,
 * kept points a step apart (except the final one), few enough points, and
 * its area within one step of the exact area. */
static void curve_is_thinned(const metric_curve *c, double end_x, double end_y,
                             double exact_area)
{
    assert_true(c->n >= 2);
    assert_true(c->n <= (int)((end_x + 1.0) / METRIC_CURVE_STEP) + 2);
    assert_float_equal(c->x[0], 0.0, 0);
    assert_float_equal(c->y[0], 0.0, 0);
    assert_float_equal(c->x[c->n - 1], end_x, EXACT);
    if (end_y >= 0)
        assert_float_equal(c->y[c->n - 1], end_y, EXACT);
    for (int i = 1; i < c->n; i++) {
        assert_true(c->x[i] >= c->x[i - 1] && c->y[i] >= c->y[i - 1]);
        if (i < c->n - 1)
            assert_true(c->x[i] - c->x[i - 1] + c->y[i] - c->y[i - 1] >=
                        METRIC_CURVE_STEP);
    }
    double area = curve_area(c);
    printf("  curve: %d points, area %.6f, exact %.6f\n", c->n, area, exact_area);
    assert_true(fabs(area - exact_area) <= METRIC_CURVE_STEP);
}

static double pixel_aupro(const float *map, const uint8_t *mask, int w, int h,
                          double limit)
{
    double auroc, aupro;
    pixel_ok(map, mask, 1, w, h, limit, &auroc, &aupro);
    return aupro;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------ binary by hand */

static void test_binary_perfect_reversed_tied(void **state)
{
    (void)state;
    const float s[4] = {0.1f, 0.2f, 0.8f, 0.9f};
    const uint8_t good_last[4] = {0, 0, 1, 1}, good_first[4] = {1, 1, 0, 0};
    binary_metrics m = binary_ok(s, good_last, 4);
    assert_float_equal(m.auroc, 1.0, EXACT);
    assert_float_equal(m.aupr, 1.0, EXACT);
    assert_float_equal(m.f1_max, 1.0, EXACT);
    assert_float_equal(m.f1_threshold, 0.8f, 0);

    /* Reversed: AUROC 0. AP: at t=0.2 recall 1/2, precision 1/3; at t=0.1
     * recall 1, precision 1/2 -> 1/2 * 1/3 + 1/2 * 1/2 = 5/12. */
    m = binary_ok(s, good_first, 4);
    assert_float_equal(m.auroc, 0.0, EXACT);
    assert_float_equal(m.aupr, 5.0 / 12.0, EXACT);

    /* All tied: one threshold; AUROC 1/2, AP = precision = 1/2,
     * F1 = 2*2 / (4 + 2) = 2/3. */
    const float t[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t l[4] = {0, 1, 0, 1};
    m = binary_ok(t, l, 4);
    assert_float_equal(m.auroc, 0.5, EXACT);
    assert_float_equal(m.aupr, 0.5, EXACT);
    assert_float_equal(m.f1_max, 2.0 / 3.0, EXACT);
    assert_float_equal(m.f1_threshold, 0.5f, 0);
}

static void test_binary_small_tie(void **state)
{
    (void)state;
    /* positives {0.9, 0.5}, negatives {0.5, 0.1}. Pairs (pos, neg):
     * (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=1/2 (0.5,0.1)=1 -> AUROC 3.5/4.
     * AP: t=0.9 recall 1/2 precision 1; t=0.5 recall 1 precision 2/3
     * -> 1/2 + 1/2 * 2/3 = 5/6. */
    const float s[4] = {0.9f, 0.5f, 0.5f, 0.1f};
    const uint8_t l[4] = {1, 1, 0, 0};
    binary_metrics m = binary_ok(s, l, 4);
    assert_float_equal(m.auroc, 0.875, EXACT);
    assert_float_equal(m.aupr, 5.0 / 6.0, EXACT);
}

static void test_binary_f1_threshold(void **state)
{
    (void)state;
    /* P = 3. F1 = 2TP / (TP + FP + P) at t = 0.9 0.8 0.7 0.6 0.5:
     * 2/4, 2/5, 4/6, 6/7, 6/8 -> max 6/7 at t = 0.6. Order scrambled to
     * check that the sort, not the input order, matters. */
    const float s[5] = {0.6f, 0.9f, 0.5f, 0.8f, 0.7f};
    const uint8_t l[5] = {1, 1, 0, 0, 1};
    binary_metrics m = binary_ok(s, l, 5);
    assert_float_equal(m.f1_max, 6.0 / 7.0, EXACT);
    assert_float_equal(m.f1_threshold, 0.6f, 0);
}

static void test_binary_negative_and_signed_zero(void **state)
{
    (void)state;
    /* -0 and +0 tie; negative scores order below positive ones. */
    const float s[4] = {-0.0f, 0.0f, -2.0f, 3.0f};
    const uint8_t l[4] = {1, 0, 0, 1};
    binary_metrics m = binary_ok(s, l, 4);
    /* pairs: (0,0)=1/2 (0,-2)=1 (3,0)=1 (3,-2)=1 -> 3.5/4 */
    assert_float_equal(m.auroc, 0.875, EXACT);
}

static void test_binary_errors(void **state)
{
    (void)state;
    binary_metrics m;
    nm_error err = {0};
    const float s[3] = {0.1f, NAN, 0.3f};
    const float ok[3] = {0.1f, 0.2f, 0.3f};
    const uint8_t l[3] = {0, 1, 1}, zeros[3] = {0, 0, 0}, ones[3] = {1, 1, 1};
    assert_int_equal(metrics_binary(ok, l, 0, &m, &err), NM_ERR_ARG);
    assert_int_equal(metrics_binary(s, l, 3, &m, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "score 1 is NaN"));
    assert_int_equal(metrics_binary(ok, zeros, 3, &m, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "no anomalous"));
    assert_int_equal(metrics_binary(ok, ones, 3, &m, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "no normal"));
    assert_int_equal(metrics_binary(NULL, l, 3, &m, &err), NM_ERR_ARG);
    assert_int_equal(metrics_binary(ok, l, 3, NULL, NULL), NM_ERR_ARG);
}

/* ------------------------------------------------------- pixel by hand */

static void test_pixel_one_pixel_regions(void **state)
{
    (void)state;
    /* Two 1-pixel regions, two normal pixels. Curve (FPR, PRO):
     * (0,0) (0,1/2) [0.9] (1/2,1/2) [0.8] (1/2,1) [0.7] (1,1) [0.1].
     * Area to 1: 1/2 * 1/2 + 1/2 * 1 = 3/4. To 0.3: the limit falls
     * between (0,1/2) and (1/2,1/2): 0.3 * 1/2, / 0.3 = 1/2.
     * AUROC pairs: (.9,.8) (.9,.1) (.7,.1) win, (.7,.8) loses -> 3/4. */
    const float map[4] = {0.9f, 0.8f, 0.7f, 0.1f};
    const uint8_t mask[4] = {1, 0, 1, 0};
    double auroc, aupro;
    pixel_ok(map, mask, 1, 4, 1, 1.0, &auroc, &aupro);
    assert_float_equal(auroc, 0.75, EXACT);
    assert_float_equal(aupro, 0.75, EXACT);
    assert_float_equal(pixel_aupro(map, mask, 4, 1, 0.3), 0.5, EXACT);
}

static void test_pixel_interpolation_at_limit(void **state)
{
    (void)state;
    /* One 1-pixel region, 3 normal pixels; 0.5 is a tie group holding the
     * defect pixel and a normal one, so the curve rises while FPR moves:
     * (0,0) (1/3,0) [0.9] (2/3,1) [0.5] (1,1) [0.1]. At limit 1/2:
     * PRO interpolates to 1/2, area = 1/2 * (0 + 1/2) * (1/2 - 1/3)
     * = 1/24, divided by 1/2 -> 1/12. */
    const float map[4] = {0.9f, 0.5f, 0.5f, 0.1f};
    const uint8_t mask[4] = {0, 1, 0, 0};
    assert_float_equal(pixel_aupro(map, mask, 4, 1, 0.5), 1.0 / 12.0, EXACT);
    /* at 2/3 no interpolation: 1/2 * 1/3 * 1 / (2/3) = 1/4 */
    assert_float_equal(pixel_aupro(map, mask, 4, 1, 2.0 / 3.0), 0.25, 1e-12);
}

static void test_pixel_diagonal_is_connected(void **state)
{
    (void)state;
    /* 3x2 mask   1 0 0     (0,0) touches (1,1) diagonally, which touches
     *            0 1 1     (2,1): one region of 3 pixels (8-connected).
     * Only (0,0) scores above the normal pixels: PRO 1/3 over the whole
     * FPR range -> AU-PRO(1) = 1/3 (4-connectivity would give 1/2). */
    const float map[6] = {0.9f, 0.5f, 0.4f, 0.3f, 0.05f, 0.04f};
    const uint8_t mask[6] = {1, 0, 0, 0, 1, 1};
    assert_float_equal(pixel_aupro(map, mask, 3, 2, 1.0), 1.0 / 3.0, EXACT);

    /* 3x2 mask   1 0 1     (0,0) alone (1 pixel) and (2,0)-(2,1) (2 pixels):
     *            0 0 1     two regions; (0,0) first -> PRO 1/2 throughout,
     * AU-PRO(1) = 1/2 (one merged region would give 1/3). */
    const float map2[6] = {0.9f, 0.5f, 0.05f, 0.4f, 0.3f, 0.04f};
    const uint8_t mask2[6] = {1, 0, 1, 0, 0, 1};
    assert_float_equal(pixel_aupro(map2, mask2, 3, 2, 1.0), 0.5, EXACT);
}

static void test_pixel_empty_mask_image(void **state)
{
    (void)state;
    /* Image 0: good (all normal). Image 1: one 1-pixel defect at 0.5.
     * Normal pixels (7): 0.6 0.1 0.2 0.3 0.4 0.0 0.05. Curve: (1/7,0)
     * [0.6] (1/7,1) [0.5] ... (1,1). AU-PRO(1) = 6/7; AU-PRO(0.3) =
     * (0.3 - 1/7) / 0.3. AUROC: 0.5 beats 6 of the 7 normal pixels. */
    const float maps[8] = {0.6f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.0f, 0.05f};
    const uint8_t masks[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    double auroc, aupro;
    pixel_ok(maps, masks, 2, 2, 2, 1.0, &auroc, &aupro);
    assert_float_equal(auroc, 6.0 / 7.0, EXACT);
    assert_float_equal(aupro, 6.0 / 7.0, EXACT);
    pixel_ok(maps, masks, 2, 2, 2, 0.3, &auroc, &aupro);
    assert_float_equal(aupro, (0.3 - 1.0 / 7.0) / 0.3, EXACT);
}

static void test_pixel_finish_twice_and_add_after(void **state)
{
    (void)state;
    const float map[4] = {0.9f, 0.8f, 0.7f, 0.1f};
    const uint8_t mask[4] = {1, 0, 1, 0};
    pixel_metrics *pm = NULL;
    pixel_result r1, r2;
    assert_int_equal(pixel_metrics_create(&pm, NULL), NM_OK);
    assert_int_equal(pixel_metrics_add(pm, map, mask, 2, 2, NULL), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 1.0, &r1, NULL), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 1.0, &r2, NULL), NM_OK);
    assert_float_equal(r1.auroc, r2.auroc, 0);
    assert_float_equal(r1.au_pro, r2.au_pro, 0);
    /* the same image again: AUROC and AU-PRO unchanged (4 regions now) */
    assert_int_equal(pixel_metrics_add(pm, map, mask, 2, 2, NULL), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 1.0, &r2, NULL), NM_OK);
    assert_float_equal(r1.auroc, r2.auroc, EXACT);
    assert_float_equal(r1.au_pro, r2.au_pro, EXACT);
    pixel_metrics_free(pm);
}

static void test_pixel_errors(void **state)
{
    (void)state;
    pixel_metrics *pm = NULL;
    nm_error err = {0};
    pixel_result r;
    const float map[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const float nan_map[4] = {0.1f, 0.2f, 0.3f, NAN};
    const uint8_t none[4] = {0, 0, 0, 0}, all[4] = {1, 1, 1, 1};
    assert_int_equal(pixel_metrics_create(&pm, &err), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 0.3, &r, &err),
                     NM_ERR_ARG); /* nothing added */
    assert_int_equal(pixel_metrics_add(pm, map, none, 0, 2, &err), NM_ERR_ARG);
    assert_int_equal(pixel_metrics_add(pm, map, none, 2, -1, &err), NM_ERR_ARG);
    assert_int_equal(pixel_metrics_add(pm, nan_map, none, 2, 2, &err),
                     NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "(1, 1) is NaN"));
    assert_int_equal(pixel_metrics_add(pm, map, none, 2, 2, &err), NM_OK);
    /* only normal pixels: NaN outputs, no curves and an error */
    assert_int_equal(pixel_metrics_finish(pm, 0.3, &r, &err),
                     NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "no defect pixels"));
    assert_true(isnan(r.auroc) && isnan(r.au_pro) && isnan(r.f1_max) &&
                isnan(r.f1_threshold));
    assert_int_equal(r.roc.n, 0);
    assert_int_equal(r.pro.n, 0);
    pixel_metrics_free(pm);

    assert_int_equal(pixel_metrics_create(&pm, &err), NM_OK);
    assert_int_equal(pixel_metrics_add(pm, map, all, 2, 2, &err), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 0.3, &r, &err),
                     NM_ERR_ARG); /* no normal pixels */
    assert_int_equal(pixel_metrics_add(pm, map, none, 2, 2, &err), NM_OK);
    assert_int_equal(pixel_metrics_finish(pm, 0.0, &r, &err),
                     NM_ERR_ARG);
    assert_int_equal(pixel_metrics_finish(pm, 1.5, &r, &err),
                     NM_ERR_ARG);
    assert_int_equal(pixel_metrics_finish(pm, 0.3, &r, &err),
                     NM_OK);
    pixel_metrics_free(pm);
    pixel_metrics_free(NULL);
}

/* ------------------------------------------------- curves and F1 by hand */

static void test_binary_roc_curve(void **state)
{
    (void)state;
    static metric_curve roc;
    binary_metrics m;
    const float s[4] = {0.1f, 0.2f, 0.8f, 0.9f};
    const uint8_t l[4] = {0, 0, 1, 1};
    assert_int_equal(metrics_binary_roc(s, l, 4, &m, &roc, NULL), NM_OK);
    const double perfect[] = {0, 0, 0, 0.5, 0, 1, 0.5, 1, 1, 1};
    curve_is(&roc, perfect, 5);
    /* one tie group: the diagonal */
    const float t[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t lt[4] = {0, 1, 0, 1};
    assert_int_equal(metrics_binary_roc(t, lt, 4, &m, &roc, NULL), NM_OK);
    const double diagonal[] = {0, 0, 1, 1};
    curve_is(&roc, diagonal, 2);
    /* an error leaves no curve */
    assert_int_equal(metrics_binary_roc(t, lt, 0, &m, &roc, NULL), NM_ERR_ARG);
    assert_int_equal(roc.n, 0);
}

static void test_pixel_curves_and_f1(void **state)
{
    (void)state;
    static pixel_result r;
    /* As test_pixel_one_pixel_regions: two 1-pixel regions (0.9, 0.7), two
     * normal pixels (0.8, 0.1). P = 2, F1 = 2TP / (TP + FP + 2) at 0.9 0.8
     * 0.7 0.1: 2/3, 2/4, 4/5, 4/6 -> 4/5 at 0.7. Each region is one pixel,
     * so TPR and PRO coincide. */
    const float map[4] = {0.9f, 0.8f, 0.7f, 0.1f};
    const uint8_t mask[4] = {1, 0, 1, 0};
    pixel_run(map, mask, 1, 2, 2, 1.0, &r);
    assert_float_equal(r.f1_max, 0.8, EXACT);
    assert_float_equal(r.f1_threshold, 0.7f, 0);
    const double full[] = {0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1};
    curve_is(&r.roc, full, 5);
    curve_is(&r.pro, full, 5);
    /* to FPR 0.3 the PRO curve stops at the limit, PRO interpolated */
    pixel_run(map, mask, 1, 2, 2, 0.3, &r);
    const double to_limit[] = {0, 0, 0, 0.5, 0.3, 0.5};
    curve_is(&r.pro, to_limit, 3);
    curve_is(&r.roc, full, 5);

    /* As test_pixel_interpolation_at_limit: (1/3, 0) then (2/3, 1); at
     * limit 1/2 the last point is (1/2, 1/2). */
    const float map2[4] = {0.9f, 0.5f, 0.5f, 0.1f};
    const uint8_t mask2[4] = {0, 1, 0, 0};
    pixel_run(map2, mask2, 1, 4, 1, 0.5, &r);
    const double interp[] = {0, 0, 1.0 / 3.0, 0, 0.5, 0.5};
    curve_is(&r.pro, interp, 3);
}

/* ------------------------------------------------- against references */

static const char *fixture(const char *name)
{
    return tu_path("%s/metrics_ref/%s", tu_fixtures(), name);
}

/* Value of "key": in the flat expected.json. */
static double json_number(const char *json, const char *key)
{
    const char *quoted = tu_path("\"%s\":", key);
    const char *p = strstr(json, quoted);
    if (!p)
        fail_msg("expected.json: no key %s", key);
    return strtod(p + strlen(quoted), NULL);
}

static void check_ref(const char *what, double got, double ref)
{
    double e = fabs(got - ref);
    printf("  %-22s %.12f  ref %.12f  err %.1e\n", what, got, ref, e);
    if (!(e <= REF_TOLERANCE))
        fail_msg("%s: got %.12f, reference %.12f", what, got, ref);
}

static char *load_expected(void)
{
    TU_REQUIRE_FILE(fixture("expected.json"));
    char *json = (char *)tu_read_file(fixture("expected.json"), NULL);
    assert_non_null(json);
    return json;
}

static void test_binary_matches_reference(void **state)
{
    (void)state;
    char *json = load_expected();
    int cases = (int)json_number(json, "bin_count");
    assert_true(cases > 0);
    for (int k = 0; k < cases; k++) {
        size_t n = (size_t)json_number(json, tu_path("bin%d_n", k));
        float *s = tu_read_f32(fixture(tu_path("bin%d.f32", k)), n);
        size_t ln = 0;
        uint8_t *l = tu_read_file(fixture(tu_path("bin%d.u8", k)), &ln);
        assert_non_null(s);
        assert_non_null(l);
        assert_int_equal(ln, n);
        binary_metrics m = binary_ok(s, l, n);
        printf(" case %d (n = %zu)\n", k, n);
        check_ref("auroc", m.auroc, json_number(json, tu_path("bin%d_auroc", k)));
        check_ref("aupr", m.aupr, json_number(json, tu_path("bin%d_aupr", k)));
        check_ref("f1_max", m.f1_max, json_number(json, tu_path("bin%d_f1", k)));
        check_ref("f1_threshold", m.f1_threshold,
                  json_number(json, tu_path("bin%d_f1_threshold", k)));
        free(s);
        free(l);
    }
    free(json);
}

/* The reference maps and masks: images x h x w each. */
typedef struct pixel_fixture {
    int images, w, h;
    float *maps;
    uint8_t *masks;
} pixel_fixture;

static pixel_fixture load_pixel_fixture(const char *json)
{
    pixel_fixture px;
    px.images = (int)json_number(json, "pixel_images");
    px.w = (int)json_number(json, "pixel_width");
    px.h = (int)json_number(json, "pixel_height");
    size_t total = (size_t)px.images * (size_t)px.w * (size_t)px.h, ln = 0;
    px.maps = tu_read_f32(fixture("pixel_maps.f32"), total);
    px.masks = tu_read_file(fixture("pixel_masks.u8"), &ln);
    assert_non_null(px.maps);
    assert_non_null(px.masks);
    assert_int_equal(ln, total);
    return px;
}

static void test_pixel_matches_official(void **state)
{
    (void)state;
    char *json = load_expected();
    pixel_fixture px = load_pixel_fixture(json);
    static const struct { double limit; const char *key; } lims[] = {
        {0.3, "au_pro_0.3"}, {0.1, "au_pro_0.1"}, {1.0, "au_pro_1"}};
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        double auroc, aupro;
        pixel_ok(px.maps, px.masks, px.images, px.w, px.h, lims[i].limit, &auroc, &aupro);
        if (i == 0)
            check_ref("pixel_auroc", auroc, json_number(json, "pixel_auroc"));
        check_ref(lims[i].key, aupro, json_number(json, lims[i].key));
    }
    free(px.maps);
    free(px.masks);
    free(json);
}

/* On the reference pixel data (30 k pixels, thousands of thresholds): the
 * thinned curves keep their promises, and pixel F1-max, its threshold and
 * the ROC curve equal those of metrics_binary_roc on the same pixels
 * pooled (whose F1 is checked against the reference above). */
static void test_pixel_curves_on_reference(void **state)
{
    (void)state;
    char *json = load_expected();
    pixel_fixture px = load_pixel_fixture(json);
    static pixel_result r;
    static metric_curve roc;
    pixel_run(px.maps, px.masks, px.images, px.w, px.h, 0.3, &r);
    curve_is_thinned(&r.roc, 1.0, 1.0, r.auroc);
    curve_is_thinned(&r.pro, 0.3, -1.0, r.au_pro * 0.3);
    binary_metrics m;
    size_t total = (size_t)px.images * (size_t)px.w * (size_t)px.h;
    assert_int_equal(metrics_binary_roc(px.maps, px.masks, total, &m, &roc, NULL), NM_OK);
    check_ref("pixel f1_max", r.f1_max, m.f1_max);
    assert_float_equal(r.f1_threshold, m.f1_threshold, 0);
    assert_float_equal(r.auroc, m.auroc, EXACT);
    assert_int_equal(r.roc.n, roc.n);
    for (int i = 0; i < roc.n; i++) {
        assert_float_equal(r.roc.x[i], roc.x[i], 0);
        assert_float_equal(r.roc.y[i], roc.y[i], 0);
    }
    free(px.maps);
    free(px.masks);
    free(json);
}

/* --------------------------------------------------------------- speed */

static void test_pixel_timing(void **state)
{
    (void)state;
    enum { W = 1000, H = 800, IMAGES = 25 }; /* 20 M pixels */
    float *map = malloc((size_t)W * H * sizeof *map);
    uint8_t *mask = malloc((size_t)W * H);
    assert_non_null(map);
    assert_non_null(mask);
    uint32_t rng = 12345;
    pixel_metrics *pm = NULL;
    nm_error err = {0};
    assert_int_equal(pixel_metrics_create(&pm, &err), NM_OK);
    double t0 = now_s(), t_fill = 0;
    for (int im = 0; im < IMAGES; im++) {
        double f0 = now_s();
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                rng = rng * 1664525u + 1013904223u;
                /* a defect rectangle per image (none in every 5th) */
                int defect = im % 5 && x >= 100 + im * 10 && x < 300 + im * 10 &&
                             y >= 200 && y < 350;
                mask[(size_t)y * W + x] = (uint8_t)defect;
                map[(size_t)y * W + x] = (float)(rng >> 8) / 16777216.0f +
                                         (defect ? 0.3f : 0.0f);
            }
        }
        t_fill += now_s() - f0;
        if (pixel_metrics_add(pm, map, mask, W, H, &err) != NM_OK)
            fail_msg("%s", err.msg);
    }
    double t1 = now_s();
    static pixel_result r;
    if (pixel_metrics_finish(pm, 0.3, &r, &err) != NM_OK)
        fail_msg("%s", err.msg);
    double t2 = now_s();
    printf("  20 M pixels: add %.2f s, finish %.2f s (auroc %.4f, "
           "au-pro %.4f)\n", t1 - t0 - t_fill, t2 - t1, r.auroc, r.au_pro);
    pixel_metrics_free(pm);
    free(map);
    free(mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_perfect_reversed_tied),
        cmocka_unit_test(test_binary_small_tie),
        cmocka_unit_test(test_binary_f1_threshold),
        cmocka_unit_test(test_binary_negative_and_signed_zero),
        cmocka_unit_test(test_binary_errors),
        cmocka_unit_test(test_pixel_one_pixel_regions),
        cmocka_unit_test(test_pixel_interpolation_at_limit),
        cmocka_unit_test(test_pixel_diagonal_is_connected),
        cmocka_unit_test(test_pixel_empty_mask_image),
        cmocka_unit_test(test_pixel_finish_twice_and_add_after),
        cmocka_unit_test(test_pixel_errors),
        cmocka_unit_test(test_binary_roc_curve),
        cmocka_unit_test(test_pixel_curves_and_f1),
        cmocka_unit_test(test_binary_matches_reference),
        cmocka_unit_test(test_pixel_matches_official),
        cmocka_unit_test(test_pixel_curves_on_reference),
        cmocka_unit_test(test_pixel_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
