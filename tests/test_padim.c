/*
 * PaDiM against the reference written in torch/numpy float64
 * (tests/tools/gen_padim_ref.py -> tu_fixtures()/padim_ref): the channel
 * choice from the seed (including the real 1792 -> 550 case), the
 * embedding (nearest upsampling of deeper taps with whole and fractional
 * ratios, channel selection), the streamed per-position mean and unbiased
 * covariance + 0.01 I (blocks of 1 to 5 images merged), and the distances
 * of the full, diagonal and low-rank models through the method interface,
 * batched and one image at a time (bit for bit the same), before and after
 * a save/load round trip. Also the rejection of non-finite features and of covariances that
 * are not positive definite, of damaged model sections, and argument
 * errors.
 */
#include "test_util.h"

#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"
#include "io/model_file.h"
#include "methods/method.h"
#include "methods/padim_embed.h"
#include "methods/padim_gauss.h"
#include "methods/padim_kernels.h"

#define MAX_TAPS 4
/* Relative to the largest reference value of the array (the brief's bound;
 * the measured errors are printed, about 1e-6). */
#define TOLERANCE 1e-4

static const char *fixture(const char *name)
{
    return tu_path("%s/padim_ref/%s", tu_fixtures(), name);
}

static FILE *open_manifest(const char *name)
{
    const char *path = fixture(name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("fixture %s missing: run tests/tools/gen_padim_ref.py", path);
    return f;
}

static void *read_fixture(const char *name, const char *ext, size_t count)
{
    const char *path = fixture(tu_path("%s.%s", name, ext));
    float *data = tu_read_f32(path, count); /* int32 files have the same size */
    if (!data)
        fail_msg("fixture %s missing or wrong size", path);
    return data;
}

typedef struct pd_case {
    char name[64];
    int seed, d, n_fit, n_test, rank, n_taps;
    int shape[MAX_TAPS][3];
    int total;
    size_t positions;
} pd_case;

static int read_case(FILE *m, pd_case *c)
{
    memset(c, 0, sizeof *c);
    if (fscanf(m, "%63s %d %d %d %d %d %d", c->name, &c->seed, &c->d, &c->n_fit, &c->n_test,
               &c->rank, &c->n_taps) != 7)
        return 0;
    assert_true(c->n_taps >= 1 && c->n_taps <= MAX_TAPS);
    for (int t = 0; t < c->n_taps; t++) {
        assert_int_equal(fscanf(m, "%d %d %d", &c->shape[t][0], &c->shape[t][1],
                                &c->shape[t][2]), 3);
        c->total += c->shape[t][0];
    }
    c->positions = (size_t)c->shape[0][1] * (size_t)c->shape[0][2];
    return 1;
}

static size_t tap_floats(const pd_case *c, int t)
{
    return (size_t)c->shape[t][0] * (size_t)c->shape[t][1] * (size_t)c->shape[t][2];
}

/* Taps of images [n0, n0 + n) of a fixture holding `all` images. */
static void taps_of(const pd_case *c, float *data, int all, int n0, int n, nm_tensor *taps)
{
    for (int t = 0; t < c->n_taps; t++) {
        taps[t].rank = 4;
        taps[t].dims[0] = n;
        for (int k = 0; k < 3; k++)
            taps[t].dims[k + 1] = c->shape[t][k];
        taps[t].data = data + (size_t)n0 * tap_floats(c, t);
        data += (size_t)all * tap_floats(c, t);
    }
}

static float *read_taps(const pd_case *c, const char *ext, int n)
{
    size_t count = 0;
    for (int t = 0; t < c->n_taps; t++)
        count += (size_t)n * tap_floats(c, t);
    return read_fixture(c->name, ext, count);
}

/* max |got - ref| / max |ref| over one position's values. */
static double rel_err_double(const double *got, const float *ref, size_t n)
{
    double maxref = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        double e = fabs(got[i] - ref[i]);
        maxerr = e > maxerr || isnan(e) ? (isnan(e) ? INFINITY : e) : maxerr;
    }
    return maxref > 0 ? maxerr / maxref : maxerr;
}

/* ----------------------------------------------------------- embedding */

static void test_channel_choice_matches_reference(void **state)
{
    (void)state;
    FILE *m = open_manifest("choices.txt");
    int seed, total, d, cases = 0, saw_real = 0;
    while (fscanf(m, "%d %d %d", &seed, &total, &d) == 3) {
        int32_t *ref = read_fixture(tu_path("choice_%d_%d_%d", seed, total, d), "channels",
                                    (size_t)d);
        int32_t *got = malloc((size_t)d * sizeof *got);
        nm_error err = {0};
        assert_int_equal(padim_choose_channels((uint64_t)seed, total, d, got, &err), NM_OK);
        assert_memory_equal(got, ref, (size_t)d * sizeof *got);
        saw_real |= total == 1792 && d == 550;
        free(ref);
        free(got);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 4 && saw_real);
    int32_t out[4];
    nm_error err = {0};
    assert_int_equal(padim_choose_channels(0, 3, 4, out, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "d=4"));
    assert_int_equal(padim_choose_channels(0, 3, 0, out, &err), NM_ERR_ARG);
}

static void test_default_d(void **state)
{
    (void)state;
    assert_int_equal(padim_default_d(1792), 550); /* ResNet-50 / WRN-50 layer1-3 */
    assert_int_equal(padim_default_d(448), 100);  /* ResNet-18 layer1-3 */
    assert_int_equal(padim_default_d(1000), 307); /* 1000 * 550 / 1792 */
    assert_int_equal(padim_default_d(200), 100);  /* at least 100 */
    assert_int_equal(padim_default_d(60), 60);    /* or all of them */
    assert_int_equal(padim_default_d(3840), 550); /* at most 550 */
}

static void test_triangle_layout(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(padim_tri_offset(i + 1) - padim_tri_offset(i), padim_tri_row_len(i));
    assert_int_equal(padim_tri_row_len(0), 16);
    assert_int_equal(padim_tri_row_len(15), 16);
    assert_int_equal(padim_tri_row_len(16), 32);
    /* 34 full 16-row blocks (rows 0..543) and 6 rows of 560 */
    assert_int_equal(padim_tri_size(550), 128 * 34 * 35 + 6 * 560);
    assert_int_equal(padim_pad(550), 560);
    assert_int_equal(padim_pad(16), 16);
}

static void test_gather_matches_reference(void **state)
{
    (void)state;
    FILE *m = open_manifest("cases.txt");
    pd_case c;
    int cases = 0, saw_fraction = 0;
    while (read_case(m, &c)) {
        float *fit = read_taps(&c, "fit", c.n_fit);
        int32_t *ch = read_fixture(c.name, "channels", (size_t)c.d);
        float *emb = read_fixture(c.name, "emb", (size_t)c.n_fit * c.positions * (size_t)c.d);
        nm_tensor taps[MAX_TAPS];
        taps_of(&c, fit, c.n_fit, 0, c.n_fit, taps);
        int d_pad = padim_pad(c.d);
        size_t stride = (size_t)c.n_fit * (size_t)d_pad;
        float *got = calloc(c.positions * stride, sizeof *got);
        /* in two calls, the second at an image offset, as fit does */
        int half = c.n_fit / 2;
        padim_gather(taps, c.n_taps, ch, c.d, 0, half, got, stride, (size_t)d_pad, 2);
        padim_gather(taps, c.n_taps, ch, c.d, half, c.n_fit - half, got + (size_t)half * d_pad,
                     stride, (size_t)d_pad, 3);
        for (int n = 0; n < c.n_fit; n++)
            for (size_t p = 0; p < c.positions; p++)
                for (int k = 0; k < d_pad; k++) {
                    float g = got[p * stride + (size_t)n * d_pad + (size_t)k];
                    float r = k < c.d ? emb[((size_t)n * c.positions + p) * c.d + (size_t)k] : 0;
                    if (g != r)
                        fail_msg("%s: image %d position %zu channel %d: %g, reference %g",
                                 c.name, n, p, k, g, r);
                }
        for (int t = 1; t < c.n_taps; t++)
            saw_fraction |= c.shape[0][1] % c.shape[t][1] != 0;
        printf("  %-7s gather of %d images x %zu positions x %d channels: exact\n", c.name,
               c.n_fit, c.positions, c.d);
        free(fit);
        free(ch);
        free(emb);
        free(got);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 3 && saw_fraction);
    /* torch's nearest indices, by hand: 4 -> 7 reads 0 0 1 1 2 2 3 */
    static const int want[7] = {0, 0, 1, 1, 2, 2, 3};
    for (int o = 0; o < 7; o++)
        assert_int_equal(padim_nearest_index(o, 4, 7), want[o]);
    assert_int_equal(padim_nearest_index(5, 28, 56), 2);
}

/* ---------------------------------------------------------- statistics */

static void check_stats(const pd_case *c, padim_cov cov)
{
    float *fit = read_taps(c, "fit", c->n_fit);
    int32_t *ch = read_fixture(c->name, "channels", (size_t)c->d);
    float *ref_mean = read_fixture(c->name, "mean", c->positions * (size_t)c->d);
    float *ref_cov = read_fixture(c->name, "cov", c->positions * (size_t)c->d * (size_t)c->d);
    nm_tensor taps[MAX_TAPS];
    taps_of(c, fit, c->n_fit, 0, c->n_fit, taps);
    int d_pad = padim_pad(c->d);
    size_t stride = (size_t)c->n_fit * (size_t)d_pad;
    float *x = calloc(c->positions * stride, sizeof *x);
    padim_gather(taps, c->n_taps, ch, c->d, 0, c->n_fit, x, stride, (size_t)d_pad, 2);
    padim_accum a;
    nm_error err = {0};
    assert_int_equal(padim_accum_init(&a, cov, c->positions, c->d, &err), NM_OK);
    static const int blocks[] = {1, 3, 2, 5};
    for (int n0 = 0, b = 0; n0 < c->n_fit; b++) {
        int k = blocks[b % 4] < c->n_fit - n0 ? blocks[b % 4] : c->n_fit - n0;
        assert_int_equal(padim_accum_add(&a, x + (size_t)n0 * d_pad, stride, k, 2, &err), NM_OK);
        n0 += k;
    }
    assert_int_equal(a.count, c->n_fit);
    size_t dd = (size_t)c->d * (size_t)c->d;
    double *got = malloc(dd * sizeof *got);
    double worst_mean = 0, worst_cov = 0;
    for (size_t p = 0; p < c->positions; p++) {
        worst_mean = fmax(worst_mean, rel_err_double(a.mean + p * c->d,
                                                     ref_mean + p * c->d, (size_t)c->d));
        padim_accum_covariance(&a, p, 0.01, got);
        const float *ref = ref_cov + p * dd;
        if (cov == PADIM_COV_DIAG) {
            for (int i = 0; i < c->d; i++)
                for (int j = 0; j < c->d; j++) {
                    size_t ij = (size_t)i * c->d + (size_t)j;
                    if (i == j)
                        worst_cov = fmax(worst_cov, fabs(got[ij] - ref[ij]) / fabs(ref[ij]));
                    else
                        assert_true(got[ij] == 0);
                }
        } else {
            worst_cov = fmax(worst_cov, rel_err_double(got, ref, dd));
        }
    }
    printf("  %-7s %-7s mean max rel err %.1e, covariance %.1e\n", c->name,
           padim_cov_name(cov), worst_mean, worst_cov);
    assert_true(worst_mean <= TOLERANCE);
    assert_true(worst_cov <= TOLERANCE);
    padim_accum_free(&a);
    free(got);
    free(x);
    free(fit);
    free(ch);
    free(ref_mean);
    free(ref_cov);
}

static void test_streamed_statistics_match_numpy(void **state)
{
    (void)state;
    FILE *m = open_manifest("cases.txt");
    pd_case c;
    int cases = 0;
    while (read_case(m, &c)) {
        check_stats(&c, PADIM_COV_FULL);
        check_stats(&c, PADIM_COV_DIAG);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 3);
}

/* ------------------------------------------------------- through the method */

typedef struct fitted {
    const method_ops *ops;
    void *state;
    nm_backend *be;
    method_context ctx;
} fitted;

static nm_status fit_method(const pd_case *c, float *fit, const char *cov, int batch,
                            int threads, fitted *f, nm_error *err)
{
    f->ops = method_find("padim");
    assert_non_null(f->ops);
    assert_int_equal(backend_create(threads, &f->be, err), NM_OK);
    f->ctx = (method_context){.backend = f->be, .seed = (uint64_t)c->seed};
    char d[16], rank[16];
    snprintf(d, sizeof d, "%d", c->d);
    snprintf(rank, sizeof rank, "%d", c->rank);
    nm_param params[3] = {{"d", d}, {"cov", cov}, {"rank", rank}};
    nm_status st = f->ops->create(params, strcmp(cov, "lowrank") == 0 ? 3 : 2, &f->state, err);
    assert_int_equal(st, NM_OK);
    nm_tensor taps[MAX_TAPS];
    for (int n0 = 0; n0 < c->n_fit && !st; n0 += batch) {
        int n = batch < c->n_fit - n0 ? batch : c->n_fit - n0;
        taps_of(c, fit, c->n_fit, n0, n, taps);
        st = f->ops->fit_add(f->state, &f->ctx, taps, c->n_taps, err);
    }
    if (!st)
        st = f->ops->fit_finish(f->state, &f->ctx, err);
    return st;
}

static void fitted_free(fitted *f)
{
    if (f->state)
        f->ops->destroy(f->state);
    backend_destroy(f->be);
}

/* Scores of images [n0, n0 + n) of the test taps. */
static void score(fitted *f, void *state, const pd_case *c, float *test, int n0, int n,
                  float *patch, float *image)
{
    nm_tensor taps[MAX_TAPS];
    taps_of(c, test, c->n_test, n0, n, taps);
    nm_error err = {0};
    nm_status st = f->ops->score(state, &f->ctx, taps, c->n_taps, patch, image, &err);
    if (st)
        fail_msg("%s: score: %s", c->name, err.msg);
}

/* Save the fitted state into a model file and load it back. */
static void *round_trip(fitted *f, model_file **file)
{
    char dir[] = "/tmp/nominal-padim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *path = tu_path("%s/m.nmm", dir);
    nm_error err = {0};
    model_writer *w = NULL;
    assert_int_equal(model_writer_open(path, &w, &err), NM_OK);
    assert_int_equal(f->ops->save(f->state, w, &err), NM_OK);
    assert_int_equal(model_writer_commit(w, &err), NM_OK);
    cJSON *obj = cJSON_CreateObject();
    f->ops->describe(f->state, obj);
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    obj = cJSON_Parse(text);
    free(text);
    assert_int_equal(model_file_read(path, file, &err), NM_OK);
    void *loaded = NULL;
    if (f->ops->load(obj, *file, &loaded, &err))
        fail_msg("load: %s", err.msg);
    cJSON_Delete(obj);
    unlink(path);
    rmdir(dir);
    return loaded;
}

static void check_scores(const pd_case *c, const char *cov)
{
    float *fit = read_taps(c, "fit", c->n_fit);
    float *test = read_taps(c, "test", c->n_test);
    size_t count = (size_t)c->n_test * c->positions;
    float *ref = read_fixture(c->name, cov, count);
    fitted f = {0};
    nm_error err = {0};
    if (fit_method(c, fit, cov, 4, 2, &f, &err))
        fail_msg("%s %s: fit: %s", c->name, cov, err.msg);
    float *patch = malloc(count * sizeof *patch), *image = malloc((size_t)c->n_test * sizeof *image);
    float *one = malloc(count * sizeof *one), *img1 = malloc((size_t)c->n_test * sizeof *img1);
    score(&f, f.state, c, test, 0, c->n_test, patch, image);
    double e = tu_max_rel_err(patch, ref, count, NULL);
    for (int n = 0; n < c->n_test; n++) {
        float top = 0;
        for (size_t p = 0; p < c->positions; p++)
            top = fmaxf(top, patch[(size_t)n * c->positions + p]);
        assert_true(image[n] == top);
        score(&f, f.state, c, test, n, 1, one + (size_t)n * c->positions, img1 + n);
    }
    /* the batch a score comes in does not change it */
    assert_memory_equal(one, patch, count * sizeof *patch);
    /* the shifted patch (1, 1) of the first test image scores highest
     * (lowrank with a small rank may miss it: the shift can lie along a
     * kept direction) */
    if (strcmp(cov, "lowrank") != 0)
        assert_true(image[0] == patch[1 * c->shape[0][2] + 1]);
    model_file *file = NULL;
    void *loaded = round_trip(&f, &file);
    float *again = malloc(count * sizeof *again);
    score(&f, loaded, c, test, 0, c->n_test, again, img1);
    assert_memory_equal(again, patch, count * sizeof *patch);
    f.ops->destroy(loaded);
    model_file_free(file);
    printf("  %-7s %-7s distances: max rel err %.1e (batch of %d; one by one and "
           "after reload identical)\n", c->name, cov, e, c->n_test);
    assert_true(e <= TOLERANCE);
    fitted_free(&f);
    free(fit);
    free(test);
    free(ref);
    free(patch);
    free(image);
    free(one);
    free(img1);
    free(again);
}

static void test_distances_match_numpy(void **state)
{
    (void)state;
    FILE *m = open_manifest("cases.txt");
    pd_case c;
    int cases = 0, lowrank = 0;
    while (read_case(m, &c)) {
        check_scores(&c, "full");
        check_scores(&c, "diag");
        if (c.rank > 0) {
            check_scores(&c, "lowrank");
            lowrank++;
        }
        cases++;
    }
    fclose(m);
    assert_true(cases >= 3 && lowrank >= 2);
}

/* Each position is one thread's work: any thread count gives the same bits. */
static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    FILE *m = open_manifest("cases.txt");
    pd_case c;
    assert_true(read_case(m, &c));
    fclose(m);
    float *fit = read_taps(&c, "fit", c.n_fit);
    float *test = read_taps(&c, "test", c.n_test);
    size_t count = (size_t)c.n_test * c.positions;
    float *first = malloc(count * sizeof *first), *out = malloc(count * sizeof *out);
    float image[64];
    static const int threads[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        fitted f = {0};
        nm_error err = {0};
        assert_int_equal(fit_method(&c, fit, "full", 7, threads[i], &f, &err), NM_OK);
        score(&f, f.state, &c, test, 0, c.n_test, i ? out : first, image);
        fitted_free(&f);
    }
    assert_memory_equal(first, out, count * sizeof *out);
    free(first);
    free(out);
    free(fit);
    free(test);
}

/* ------------------------------------------------------------ rejections */

static void test_rejects_non_finite_features(void **state)
{
    (void)state;
    FILE *m = open_manifest("cases.txt");
    pd_case c;
    assert_true(read_case(m, &c));
    fclose(m);
    float *fit = read_taps(&c, "fit", c.n_fit);
    c.d = c.total; /* every channel kept, so the damaged one is used */
    /* image 3, tap 0, channel 2, grid position (x 5, y 1) */
    fit[3 * tap_floats(&c, 0) + 2 * (size_t)c.shape[0][1] * c.shape[0][2] + 1 * c.shape[0][2] + 5] = NAN;
    static const char *const covs[] = {"full", "diag", "lowrank"};
    for (int i = 0; i < 3; i++) {
        fitted f = {0};
        nm_error err = {0};
        assert_int_equal(fit_method(&c, fit, covs[i], 4, 2, &f, &err), NM_ERR_FORMAT);
        printf("  %s: %s\n", covs[i], err.msg);
        assert_non_null(strstr(err.msg, "not finite"));
        assert_non_null(strstr(err.msg, "(5, 1)"));
        fitted_free(&f);
    }
    free(fit);
}

/* Sums that no set of images produces: a 2 x 2 covariance [[1.01, 2],
 * [2, 1.01]] (eigenvalues 3.01 and -0.99) at the only position; for diag a
 * negative variance. */
static void test_rejects_covariance_not_positive_definite(void **state)
{
    (void)state;
    static const padim_cov covs[] = {PADIM_COV_FULL, PADIM_COV_LOWRANK, PADIM_COV_DIAG};
    for (int i = 0; i < 3; i++) {
        padim_accum a;
        padim_gauss g;
        nm_error err = {0};
        assert_int_equal(padim_accum_init(&a, covs[i], 1, 2, &err), NM_OK);
        a.count = 3;
        if (covs[i] == PADIM_COV_DIAG) {
            a.m2_diag[0] = -4;
            a.m2_diag[1] = 2;
        } else {
            a.m2[padim_tri_offset(0)] = 2;
            a.m2[padim_tri_offset(1)] = 4;
            a.m2[padim_tri_offset(1) + 1] = 2;
        }
        assert_int_equal(padim_gauss_fit(&a, 0.01, 1, 1, 1, &g, &err), NM_ERR_FORMAT);
        printf("  %s: %s\n", padim_cov_name(covs[i]), err.msg);
        assert_non_null(strstr(err.msg, "not positive definite"));
        assert_non_null(strstr(err.msg, "(0, 0)"));
        assert_null(a.m2);
        assert_null(g.factor);
    }
    /* the same sums with the sign that makes them valid are accepted */
    padim_accum a;
    padim_gauss g;
    nm_error err = {0};
    assert_int_equal(padim_accum_init(&a, PADIM_COV_FULL, 1, 2, &err), NM_OK);
    a.count = 3;
    a.m2[0] = 2;
    a.m2[padim_tri_offset(1)] = 1;
    a.m2[padim_tri_offset(1) + 1] = 2;
    assert_int_equal(padim_gauss_fit(&a, 0.01, 1, 1, 1, &g, &err), NM_OK);
    /* cov [[1.01, .5], [.5, 1.01]]: L = C^-1, C = chol(cov); x = (1, 0)
     * gives x^T cov^-1 x = 1.01 / (1.01^2 - .25), by hand */
    float x[16] = {1};
    float q;
    assert_int_equal(padim_gauss_score(&g, x, 16, 1, &q, 1, &err), NM_OK);
    assert_true(fabs(q - 1.01 / (1.01 * 1.01 - 0.25)) <= 1e-6);
    padim_gauss_free(&g);
}

static void expect_create_error(const char *key, const char *value, const char *want)
{
    const method_ops *ops = method_find("padim");
    nm_param p[2] = {{key, value}, {"rank", "8"}};
    void *s = NULL;
    nm_error err = {0};
    assert_int_equal(ops->create(p, strcmp(key, "cov") == 0 ? 2 : 1, &s, &err), NM_ERR_ARG);
    if (!strstr(err.msg, want))
        fail_msg("%s=%s: '%s' lacks '%s'", key, value, err.msg, want);
    assert_null(s);
}

static void test_argument_errors(void **state)
{
    (void)state;
    expect_create_error("k", "1", "unknown setting 'k'");
    expect_create_error("d", "0", "d=0");
    expect_create_error("d", "ten", "d=ten");
    expect_create_error("cov", "banana", "cov=banana");
    expect_create_error("cov", "full", "rank applies to cov=lowrank only");

    FILE *m = open_manifest("cases.txt");
    pd_case c;
    assert_true(read_case(m, &c));
    fclose(m);
    float *fit = read_taps(&c, "fit", c.n_fit);
    fitted f = {0};
    nm_error err = {0};
    int d = c.d;
    c.d = c.total + 1;
    assert_int_equal(fit_method(&c, fit, "full", 4, 1, &f, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "exceeds the 28 channels"));
    fitted_free(&f);
    c.d = d;
    c.rank = d;
    f = (fitted){0};
    assert_int_equal(fit_method(&c, fit, "lowrank", 4, 1, &f, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "rank=20 must be below d=20"));
    fitted_free(&f);
    c.rank = 2;
    int n_fit = c.n_fit;
    c.n_fit = 1;
    f = (fitted){0};
    assert_int_equal(fit_method(&c, fit, "full", 4, 1, &f, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "at least 2 training images, got 1"));
    fitted_free(&f);
    c.n_fit = n_fit;

    /* a fitted model refuses taps of another shape, in fit and in score */
    f = (fitted){0};
    assert_int_equal(fit_method(&c, fit, "diag", 8, 1, &f, &err), NM_OK);
    nm_tensor taps[MAX_TAPS];
    taps_of(&c, fit, c.n_fit, 0, 2, taps);
    taps[1].dims[3] = 3;
    float patch[2 * 64], image[2];
    assert_int_equal(f.ops->score(f.state, &f.ctx, taps, c.n_taps, patch, image, &err),
                     NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "tap 1 has shape 10x4x3, the model was fitted on 10x4x4"));
    assert_int_equal(f.ops->score(f.state, &f.ctx, taps, 2, patch, image, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "got 2 taps, the model has 3"));
    fitted_free(&f);

    /* no training images at all */
    const method_ops *ops = method_find("padim");
    void *s = NULL;
    assert_int_equal(ops->create(NULL, 0, &s, &err), NM_OK);
    method_context ctx = {0};
    assert_int_equal(ops->fit_finish(s, &ctx, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "no training images"));
    ops->destroy(s);
    free(fit);
}

/* A diag model (d=4 of 28 channels on a 2x2 grid) written section by
 * section: loads when consistent; each damage is named. */
static nm_status load_crafted(const char *settings, int32_t *channels, size_t mean_floats,
                              size_t factor_floats, nm_error *err)
{
    char dir[] = "/tmp/nominal-padim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *path = tu_path("%s/m.nmm", dir);
    float zeros[256] = {0};
    model_writer *w = NULL;
    assert_int_equal(model_writer_open(path, &w, err), NM_OK);
    assert_int_equal(model_writer_add(w, "PDCH", channels, 4 * sizeof(int32_t), err), NM_OK);
    if (mean_floats)
        assert_int_equal(model_writer_add(w, "PDMU", zeros, mean_floats * sizeof(float), err),
                         NM_OK);
    assert_int_equal(model_writer_add(w, "PDFA", zeros, factor_floats * sizeof(float), err),
                     NM_OK);
    assert_int_equal(model_writer_commit(w, err), NM_OK);
    model_file *f = NULL;
    assert_int_equal(model_file_read(path, &f, err), NM_OK);
    cJSON *obj = cJSON_Parse(settings);
    assert_non_null(obj);
    void *state = NULL;
    const method_ops *ops = method_find("padim");
    nm_status st = ops->load(obj, f, &state, err);
    assert_true(st ? state == NULL : state != NULL);
    if (state)
        ops->destroy(state);
    cJSON_Delete(obj);
    model_file_free(f);
    unlink(path);
    rmdir(dir);
    return st;
}

static void expect_load_error(const char *settings, int32_t *channels, size_t mean,
                              size_t factor, const char *want)
{
    nm_error err = {0};
    assert_int_equal(load_crafted(settings, channels, mean, factor, &err), NM_ERR_FORMAT);
    if (!strstr(err.msg, want))
        fail_msg("'%s' lacks '%s'", err.msg, want);
    printf("  %s\n", err.msg);
}

static void test_load_rejects_damaged_models(void **state)
{
    (void)state;
    const char *ok = "{\"d\":4,\"cov\":\"diag\",\"tap_shapes\":[[6,2,2],[22,1,1]]}";
    int32_t ch[4] = {0, 5, 9, 27}, unsorted[4] = {0, 9, 5, 27}, beyond[4] = {0, 5, 9, 28};
    nm_error err = {0};
    /* 4 positions x 16 floats (d padded) of means and inverse variances */
    assert_int_equal(load_crafted(ok, ch, 64, 64, &err), NM_OK);
    expect_load_error(ok, ch, 64, 63, "PDFA holds 252 bytes, expected 256");
    expect_load_error(ok, ch, 0, 64, "has no PDMU section");
    expect_load_error(ok, unsorted, 64, 64, "channel list is damaged");
    expect_load_error(ok, beyond, 64, 64, "channel list is damaged");
    expect_load_error("{\"d\":29,\"cov\":\"diag\",\"tap_shapes\":[[6,2,2],[22,1,1]]}", ch,
                      64, 64, "invalid PaDiM settings");
    expect_load_error("{\"d\":4,\"cov\":\"dense\",\"tap_shapes\":[[6,2,2],[22,1,1]]}", ch,
                      64, 64, "invalid PaDiM settings");
    expect_load_error("{\"d\":4,\"cov\":\"lowrank\",\"rank\":4,\"tap_shapes\":[[6,2,2]]}",
                      ch, 64, 64, "invalid PaDiM settings");
    expect_load_error("{\"d\":4,\"cov\":\"diag\",\"tap_shapes\":[[6,2]]}", ch, 64, 64,
                      "invalid PaDiM settings");
    /* sizes no file holds: refused before any size is multiplied out */
    expect_load_error("{\"d\":65536,\"cov\":\"full\",\"tap_shapes\":[[65536,65536,65536]]}",
                      ch, 64, 64, "invalid PaDiM settings");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_choice_matches_reference),
        cmocka_unit_test(test_default_d),
        cmocka_unit_test(test_triangle_layout),
        cmocka_unit_test(test_gather_matches_reference),
        cmocka_unit_test(test_streamed_statistics_match_numpy),
        cmocka_unit_test(test_distances_match_numpy),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_rejects_non_finite_features),
        cmocka_unit_test(test_rejects_covariance_not_positive_definite),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_load_rejects_damaged_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
