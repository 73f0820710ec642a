/*
 * Anomaly maps against references from tests/tools/gen_patchcore_ref.py
 * (tu_fixtures()/patchcore_ref): map_resize vs torch bilinear / PIL's
 * float triangle filter, map_gaussian_blur vs scipy.ndimage.gaussian_filter
 * (including radii larger than the map), the render chain for MVTec-like
 * geometries (square, landscape, padded crop), plus colour rendering.
 */
#include "test_util.h"

#include <time.h>

#include "methods/anomaly_map.h"
#include "nominal.h"

/* Relative to max|ref|; measured errors are printed (about 1e-7). */
#define TOLERANCE 1e-5

static const char *fixture(const char *name)
{
    return tu_path("%s/patchcore_ref/%s", tu_fixtures(), name);
}

static FILE *open_manifest(const char *name)
{
    const char *path = fixture(name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("fixture %s missing: run tests/tools/gen_patchcore_ref.py",
                 path);
    return f;
}

static float *read_fixture(const char *name, const char *ext, size_t count)
{
    const char *path = fixture(tu_path("%s.%s", name, ext));
    float *data = tu_read_f32(path, count);
    if (!data)
        fail_msg("fixture %s missing or wrong size", path);
    return data;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void check_close(const char *what, const float *got, const float *ref,
                        size_t n)
{
    size_t worst = 0;
    double e = tu_max_rel_err(got, ref, n, &worst);
    printf("  %-22s max rel err %.2e\n", what, e);
    if (!(e <= TOLERANCE))
        fail_msg("%s: rel err %.3g at %zu (got %.8g, ref %.8g)", what, e,
                 worst, got[worst], ref[worst]);
}

/* ------------------------------------------------------------------ resize */

static void test_resize_matches_reference(void **state)
{
    (void)state;
    FILE *m = open_manifest("resize_cases.txt");
    char name[128];
    int sw, sh, dw, dh, cases = 0;
    while (fscanf(m, "%127s %d %d %d %d", name, &sw, &sh, &dw, &dh) == 5) {
        float *src = read_fixture(name, "src", (size_t)sw * sh);
        float *ref = read_fixture(name, "ref", (size_t)dw * dh);
        float *got = malloc((size_t)dw * dh * sizeof *got);
        nm_error err = {0};
        if (map_resize(src, sw, sh, got, dw, dh, &err) != NM_OK)
            fail_msg("%s: %s", name, err.msg);
        check_close(name, got, ref, (size_t)dw * dh);
        free(src);
        free(ref);
        free(got);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 6);
}

/* Weights sum to one on every path: a constant stays constant. */
static void test_resize_keeps_constants(void **state)
{
    (void)state;
    static const int sizes[][4] = {
        {5, 7, 40, 3}, {100, 100, 9, 9}, {3, 3, 3, 3}, {1, 9, 7, 1}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2],
            dh = sizes[s][3];
        float *src = malloc((size_t)sw * sh * sizeof *src);
        float *dst = malloc((size_t)dw * dh * sizeof *dst);
        for (int i = 0; i < sw * sh; i++)
            src[i] = 2.5f;
        assert_int_equal(map_resize(src, sw, sh, dst, dw, dh, NULL), NM_OK);
        for (int i = 0; i < dw * dh; i++)
            assert_float_equal(dst[i], 2.5f, 1e-5);
        free(src);
        free(dst);
    }
}

static void test_resize_rejects_bad_arguments(void **state)
{
    (void)state;
    float a[4] = {0}, b[4];
    nm_error err = {0};
    assert_int_equal(map_resize(a, 0, 2, b, 2, 2, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "0x2"));
    assert_int_equal(map_resize(a, 2, 2, b, 2, -1, &err), NM_ERR_ARG);
    assert_int_equal(map_resize(NULL, 2, 2, b, 2, 2, &err), NM_ERR_ARG);
    assert_int_equal(map_resize(a, 2, 2, NULL, 2, 2, NULL), NM_ERR_ARG);
}

/* -------------------------------------------------------------------- blur */

static void test_blur_matches_scipy(void **state)
{
    (void)state;
    FILE *m = open_manifest("blur_cases.txt");
    char name[128];
    int w, h, cases = 0;
    float sigma;
    while (fscanf(m, "%127s %d %d %f", name, &w, &h, &sigma) == 4) {
        float *map = read_fixture(name, "src", (size_t)w * h);
        float *ref = read_fixture(name, "ref", (size_t)w * h);
        nm_error err = {0};
        if (map_gaussian_blur(map, w, h, sigma, &err) != NM_OK)
            fail_msg("%s: %s", name, err.msg);
        check_close(name, map, ref, (size_t)w * h);
        free(map);
        free(ref);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 5);
}

static void test_blur_rejects_bad_sigma(void **state)
{
    (void)state;
    float map[9] = {0};
    nm_error err = {0};
    assert_int_equal(map_gaussian_blur(map, 3, 3, -1.0f, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "sigma"));
    assert_int_equal(map_gaussian_blur(map, 3, 3, NAN, &err), NM_ERR_ARG);
    assert_int_equal(map_gaussian_blur(map, 3, 3, INFINITY, &err), NM_ERR_ARG);
    assert_int_equal(map_gaussian_blur(map, 3, 3, 1e9f, &err), NM_ERR_LIMIT);
    assert_int_equal(map_gaussian_blur(map, 0, 3, 1.0f, &err), NM_ERR_ARG);
    assert_int_equal(map_gaussian_blur(NULL, 3, 3, 1.0f, NULL), NM_ERR_ARG);
}

/* ------------------------------------------------------------------ render */

typedef struct render_case {
    char name[128];
    int pw, ph;
    nm_geometry g;
    float sigma;
} render_case;

static int read_render_case(FILE *m, render_case *c)
{
    nm_geometry *g = &c->g;
    return fscanf(m, "%127s %d %d %d %d %d %d %d %d %d %d %f", c->name, &c->pw,
                  &c->ph, &g->src_width, &g->src_height, &g->resized_width,
                  &g->resized_height, &g->crop_x, &g->crop_y, &g->out_width,
                  &g->out_height, &c->sigma) == 12;
}

static void check_render_case(const render_case *c)
{
    const nm_geometry *g = &c->g;
    size_t n_crop = (size_t)g->out_width * g->out_height;
    size_t n_img = (size_t)g->src_width * g->src_height;
    float *scores = read_fixture(c->name, "scores", (size_t)c->pw * c->ph);
    float *ref_crop = read_fixture(c->name, "crop", n_crop);
    float *ref_img = read_fixture(c->name, "image", n_img);
    float *crop = malloc(n_crop * sizeof *crop);
    float *img = malloc(n_img * sizeof *img);
    float *img_only = malloc(n_img * sizeof *img_only);
    nm_error err = {0};
    if (anomaly_map_render(scores, c->pw, c->ph, g, c->sigma, crop, img,
                           &err) != NM_OK)
        fail_msg("%s: %s", c->name, err.msg);
    check_close(tu_path("%s crop", c->name), crop, ref_crop, n_crop);
    check_close(tu_path("%s image", c->name), img, ref_img, n_img);

    /* either output may be NULL, and the other is unchanged by that */
    memset(crop, 0, n_crop * sizeof *crop);
    assert_int_equal(anomaly_map_render(scores, c->pw, c->ph, g, c->sigma,
                                        NULL, img_only, &err), NM_OK);
    assert_memory_equal(img, img_only, n_img * sizeof *img);
    assert_int_equal(anomaly_map_render(scores, c->pw, c->ph, g, c->sigma,
                                        crop, NULL, &err), NM_OK);
    check_close(tu_path("%s crop only", c->name), crop, ref_crop, n_crop);
    free(scores);
    free(ref_crop);
    free(ref_img);
    free(crop);
    free(img);
    free(img_only);
}

static void test_render_matches_reference(void **state)
{
    (void)state;
    FILE *m = open_manifest("render_cases.txt");
    render_case c;
    int cases = 0;
    while (read_render_case(m, &c)) {
        check_render_case(&c);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 3);
}

static void test_render_rejects_bad_arguments(void **state)
{
    (void)state;
    float scores[4] = {0}, crop[16], img[16];
    nm_geometry g = {4, 4, 4, 4, 0, 0, 4, 4};
    nm_error err = {0};
    assert_int_equal(anomaly_map_render(scores, 2, 2, &g, 1.0f, crop, img,
                                        &err), NM_OK);
    assert_int_equal(anomaly_map_render(NULL, 2, 2, &g, 1.0f, crop, img,
                                        &err), NM_ERR_ARG);
    assert_int_equal(anomaly_map_render(scores, 0, 2, &g, 1.0f, crop, img,
                                        &err), NM_ERR_ARG);
    assert_int_equal(anomaly_map_render(scores, 2, 2, NULL, 1.0f, crop, img,
                                        &err), NM_ERR_ARG);
    assert_int_equal(anomaly_map_render(scores, 2, 2, &g, -1.0f, crop, img,
                                        &err), NM_ERR_ARG);
    nm_geometry bad = g;
    bad.resized_width = 0;
    assert_int_equal(anomaly_map_render(scores, 2, 2, &bad, 1.0f, crop, img,
                                        &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "resized"));
    /* a crop entirely outside the resized image leaves only zeros */
    bad = g;
    bad.crop_x = 10;
    for (int i = 0; i < 4; i++)
        scores[i] = 1.0f;
    assert_int_equal(anomaly_map_render(scores, 2, 2, &bad, 1.0f, NULL, img,
                                        &err), NM_OK);
    for (int i = 0; i < 16; i++)
        assert_float_equal(img[i], 0.0f, 0.0);
}

/* Timings the brief asks for (printed, not asserted: CI machines vary). */
static void test_render_timing(void **state)
{
    (void)state;
    nm_geometry g = {900, 900, 256, 256, 16, 16, 224, 224};
    float scores[28 * 28];
    for (int i = 0; i < 28 * 28; i++)
        scores[i] = (float)((i * 7) % 23);
    float *crop = malloc(224 * 224 * sizeof *crop);
    float *img = malloc(900 * 900 * sizeof *img);
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ms();
        assert_int_equal(anomaly_map_render(scores, 28, 28, &g, 4.0f, crop, img,
                                            NULL), NM_OK);
        double dt = now_ms() - t0;
        best = dt < best ? dt : best;
    }
    printf("  render 28x28 -> 224 crop -> 900x900: %.2f ms\n", best);
    best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ms();
        assert_int_equal(map_gaussian_blur(img, 900, 900, 4.0f, NULL), NM_OK);
        double dt = now_ms() - t0;
        best = dt < best ? dt : best;
    }
    printf("  blur 900x900 sigma 4: %.2f ms\n", best);
    free(crop);
    free(img);
}

/* ------------------------------------------------------------------ colour */

static int lightness(const uint8_t *c)
{
    return 299 * c[0] + 587 * c[1] + 114 * c[2];
}

static void test_colorize_ends_clamp_and_nan(void **state)
{
    (void)state;
    const float v[7] = {0.0f, 1.0f, -5.0f, 7.0f, NAN, 0.5f, INFINITY};
    uint8_t rgb[7 * 3];
    map_colorize(v, 7, 1, 0.0f, 1.0f, rgb);
    const uint8_t *lo = rgb, *hi = rgb + 3;
    assert_true(lo[2] > lo[0]);           /* 0: blue dominates */
    assert_true(hi[0] > hi[2] + 100);     /* 1: red dominates */
    assert_true(lightness(lo) < 100000);  /* 0 is dark */
    assert_memory_equal(rgb + 6, lo, 3);  /* below lo clamps to lo */
    assert_memory_equal(rgb + 9, hi, 3);  /* above hi clamps to hi */
    assert_memory_equal(rgb + 18, hi, 3); /* +inf too */
    const uint8_t black[3] = {0, 0, 0};
    assert_memory_equal(rgb + 12, black, 3); /* NaN */
    assert_true(lightness(rgb + 15) > lightness(lo)); /* middle is brighter */
}

/* The ramp is continuous (no jumps between neighbouring values) and its
 * 256 samples take many distinct colours. */
static void test_colorize_is_smooth(void **state)
{
    (void)state;
    float v[256];
    uint8_t rgb[256 * 3];
    for (int i = 0; i < 256; i++)
        v[i] = (float)i / 255.0f;
    map_colorize(v, 16, 16, 0.0f, 1.0f, rgb);
    int distinct = 0;
    for (int i = 1; i < 256; i++) {
        int diff = 0;
        for (int c = 0; c < 3; c++)
            diff += abs(rgb[3 * i + c] - rgb[3 * (i - 1) + c]);
        assert_true(diff <= 12);
        distinct += diff > 0;
    }
    assert_true(distinct > 200);
}

static void test_colorize_degenerate_range(void **state)
{
    (void)state;
    const float v[3] = {1.0f, 2.0f, 3.0f};
    uint8_t rgb[9], lo[3], hi[3];
    map_colorize(v, 3, 1, 2.0f, 2.0f, rgb); /* lo == hi: a step, no NaN */
    const float zero = 0.0f, one = 1.0f;
    map_colorize(&zero, 1, 1, 0.0f, 1.0f, lo);
    map_colorize(&one, 1, 1, 0.0f, 1.0f, hi);
    assert_memory_equal(rgb, lo, 3);
    assert_memory_equal(rgb + 3, lo, 3);
    assert_memory_equal(rgb + 6, hi, 3);
}

static void test_overlay(void **state)
{
    (void)state;
    uint8_t rgb_px[4 * 3] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220};
    uint8_t gray_px[4] = {10, 100, 150, 250};
    const float map[4] = {0.0f, 1.0f, NAN, 0.25f};
    nm_image rgb_img = {4, 1, 3, rgb_px}, gray_img = {4, 1, 1, gray_px};
    uint8_t out[12], heat[12];
    map_colorize(map, 4, 1, 0.0f, 1.0f, heat);

    /* alpha 0: the photo */
    map_overlay(&rgb_img, map, 0.0f, 1.0f, 0.0f, out);
    assert_memory_equal(out, rgb_px, 12);
    /* alpha 1: normal (t = 0) and NaN keep the photo, t = 1 is pure heat,
     * t = 0.25 is half way (a = 0.5) */
    map_overlay(&rgb_img, map, 0.0f, 1.0f, 1.0f, out);
    assert_memory_equal(out, rgb_px, 3);
    assert_memory_equal(out + 3, heat + 3, 3);
    assert_memory_equal(out + 6, rgb_px + 6, 3);
    for (int c = 0; c < 3; c++)
        assert_true(abs(out[9 + c] - (rgb_px[9 + c] + heat[9 + c]) / 2) <= 1);
    /* gray photos are expanded to RGB */
    map_overlay(&gray_img, map, 0.0f, 1.0f, 0.6f, out);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(out[c], gray_px[0]);
        assert_int_equal(out[6 + c], gray_px[2]);
        int expect = (int)(0.4f * gray_px[1] + 0.6f * heat[3 + c] + 0.5f);
        assert_true(abs(out[3 + c] - expect) <= 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_matches_reference),
        cmocka_unit_test(test_resize_keeps_constants),
        cmocka_unit_test(test_resize_rejects_bad_arguments),
        cmocka_unit_test(test_blur_matches_scipy),
        cmocka_unit_test(test_blur_rejects_bad_sigma),
        cmocka_unit_test(test_render_matches_reference),
        cmocka_unit_test(test_render_rejects_bad_arguments),
        cmocka_unit_test(test_render_timing),
        cmocka_unit_test(test_colorize_ends_clamp_and_nan),
        cmocka_unit_test(test_colorize_is_smooth),
        cmocka_unit_test(test_colorize_degenerate_range),
        cmocka_unit_test(test_overlay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
