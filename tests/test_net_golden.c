/*
 * Backbone runtime against PyTorch: the three shared models on the golden
 * vectors in ../shared/models/refvec (made by torch from the same weights),
 * odd input sizes and batches against fixtures made at test time by
 * tests/tools/gen_backbones.py (torch executing the same ONNX graphs), and
 * torchvision architectures with random weights exported by Debian's torch.
 *
 * Bound (issue 2): max |ours - torch| <= 1e-4 * max |torch| per tensor.
 */
#include "test_util.h"

#include <cjson/cJSON.h>

#include "nominal.h"

#define REL_TOL 1e-4

static const char *models_dir(void) { return tu_path("%s/models", tu_shared()); }

static cJSON *load_refvectors(void)
{
    const char *p = tu_path("%s/refvec/refvectors.json", models_dir());
    if (!tu_exists(p))
        return NULL;
    char *text = (char *)tu_read_file(p, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static size_t shape_count(const cJSON *shape)
{
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) n *= (size_t)d->valuedouble;
    return n;
}

static void assert_shape(const nm_tensor *t, const cJSON *shape, const char *what)
{
    int rank = cJSON_GetArraySize(shape);
    if (t->rank != rank)
        fail_msg("%s: rank %d, torch %d", what, t->rank, rank);
    for (int d = 0; d < rank; d++)
        if (t->dims[d] != (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble)
            fail_msg("%s: dim %d is %lld, torch %d", what, d, (long long)t->dims[d],
                     (int)cJSON_GetArrayItem(shape, d)->valuedouble);
}

static size_t tensor_count(const nm_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->dims[d];
    return n;
}

/* Check one output of one case against everything refvectors.json has. */
static void check_output(const nm_tensor *t, const cJSON *ref, const char *what)
{
    const cJSON *shape = cJSON_GetObjectItem(ref, "shape");
    assert_shape(t, shape, what);
    size_t n = tensor_count(t);
    double maxabs = fmax(fabs(cJSON_GetObjectItem(ref, "min")->valuedouble),
                         fabs(cJSON_GetObjectItem(ref, "max")->valuedouble));
    double tol = REL_TOL * maxabs;
    const cJSON *file = cJSON_GetObjectItem(ref, "file");
    if (file) { /* full tensor stored */
        float *r = tu_read_f32(tu_path("%s/refvec/%s", models_dir(), file->valuestring), n);
        assert_non_null(r);
        size_t worst;
        double rel = tu_max_rel_err(t->data, r, n, &worst);
        printf("  %-40s full   max err %.2e x max|ref|\n", what, rel);
        if (!(rel <= REL_TOL))
            fail_msg("%s: max err %.3e x max|ref| at %zu (ours %g, torch %g)", what, rel,
                     worst, t->data[worst], r[worst]);
        free(r);
    }
    const cJSON *crop = cJSON_GetObjectItem(ref, "crop");
    if (crop && t->rank == 4) {
        /* [:, 0:8, 0:8, 0:8] of batch item 0; the crop's own shape says how
         * much of that exists (7x7 maps give 8x7x7) */
        const cJSON *cs = cJSON_GetObjectItem(crop, "shape");
        int cc = (int)cJSON_GetArrayItem(cs, 1)->valuedouble;
        int ch = (int)cJSON_GetArrayItem(cs, 2)->valuedouble;
        int cw = (int)cJSON_GetArrayItem(cs, 3)->valuedouble;
        float *r = tu_read_f32(tu_path("%s/refvec/%s", models_dir(),
                                       cJSON_GetObjectItem(crop, "file")->valuestring),
                               (size_t)cc * ch * cw);
        assert_non_null(r);
        double maxerr = 0;
        for (int c = 0; c < cc; c++)
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++) {
                    float o = t->data[((size_t)c * t->dims[2] + y) * t->dims[3] + x];
                    maxerr = fmax(maxerr, fabs(o - r[(c * ch + y) * cw + x]));
                }
        free(r);
        printf("  %-40s crop   max err %.2e x max|ref|\n", what, maxerr / maxabs);
        if (!(maxerr <= tol))
            fail_msg("%s: crop err %.3e > %.3e", what, maxerr, tol);
    }
    const cJSON *s;
    double maxerr = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(ref, "samples"))
    {
        size_t idx = (size_t)cJSON_GetObjectItem(s, "flat_index")->valuedouble;
        assert_true(idx < n);
        maxerr = fmax(maxerr, fabs(t->data[idx] - cJSON_GetObjectItem(s, "value")->valuedouble));
    }
    if (!(maxerr <= tol))
        fail_msg("%s: sampled err %.3e > %.3e", what, maxerr, tol);
    /* whole-tensor summaries catch errors the samples miss */
    double sum = 0, l2 = 0;
    for (size_t i = 0; i < n; i++) {
        sum += t->data[i];
        l2 += (double)t->data[i] * t->data[i];
    }
    l2 = sqrt(l2);
    double rsum = cJSON_GetObjectItem(ref, "sum")->valuedouble;
    double rl2 = cJSON_GetObjectItem(ref, "l2")->valuedouble;
    if (!(fabs(l2 - rl2) <= 1e-4 * rl2))
        fail_msg("%s: L2 %.6f vs torch %.6f", what, l2, rl2);
    /* a sum can be near zero: compare against the L1 scale, not the sum */
    if (!(fabs(sum - rsum) <= 1e-5 * (double)n * maxabs + 1e-4 * fabs(rsum)))
        fail_msg("%s: sum %.6f vs torch %.6f", what, sum, rsum);
}

static const char *onnx_file_for(const char *model, const cJSON *m)
{
    const cJSON *f = cJSON_GetObjectItem(m, "onnx");
    return tu_path("%s/%s", models_dir(), f ? f->valuestring : model);
}

/* Every model x case x output in refvectors.json. */
static void test_shared_models_match_torch_refvec(void **state)
{
    (void)state;
    TU_REQUIRE_FILE(tu_path("%s/refvec/refvectors.json", models_dir()));
    cJSON *root = load_refvectors();
    assert_non_null(root);
    const cJSON *inputs = cJSON_GetObjectItem(root, "inputs");
    const cJSON *model;
    int checked = 0;
    cJSON_ArrayForEach(model, cJSON_GetObjectItem(root, "models"))
    {
        nm_net *net = NULL;
        nm_error err = {0};
        nm_net_options opts = {0};
        if (nm_net_open(onnx_file_for(model->string, model), &opts, &net, &err))
            fail_msg("%s", err.msg);
        const cJSON *kase;
        cJSON_ArrayForEach(kase, cJSON_GetObjectItem(model, "cases"))
        {
            const cJSON *in = cJSON_GetObjectItem(
                inputs, cJSON_GetObjectItem(kase, "input")->valuestring);
            const cJSON *shape = cJSON_GetObjectItem(in, "shape");
            float *x = tu_read_f32(tu_path("%s/refvec/%s", models_dir(),
                                           cJSON_GetObjectItem(in, "file")->valuestring),
                                   shape_count(shape));
            assert_non_null(x);
            const cJSON *outs = cJSON_GetObjectItem(kase, "outputs");
            const char *names[16];
            int n = 0;
            const cJSON *o;
            cJSON_ArrayForEach(o, outs) names[n++] = o->string;
            nm_tensor taps[16];
            if (nm_net_set_taps(net, names, n, &err) ||
                nm_net_run(net, x, (int)cJSON_GetArrayItem(shape, 0)->valuedouble,
                           (int)cJSON_GetArrayItem(shape, 2)->valuedouble,
                           (int)cJSON_GetArrayItem(shape, 3)->valuedouble, taps, &err))
                fail_msg("%s: %s", model->string, err.msg);
            for (int t = 0; t < n; t++) {
                const char *what = tu_path("%s/%s/%s", model->string, kase->string, names[t]);
                check_output(&taps[t], cJSON_GetObjectItem(outs, names[t]), what);
                checked++;
            }
            free(x);
        }
        nm_net_close(net);
    }
    printf("  %d outputs checked\n", checked);
    assert_true(checked >= 36);
    cJSON_Delete(root);
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* SqueezeNet is a full classifier: its logits must rank the same class first. */
static void test_squeezenet_top1_matches_torch(void **state)
{
    (void)state;
    const char *onnx = tu_path("%s/squeezenet1.1.onnx", models_dir());
    TU_REQUIRE_FILE(onnx);
    nm_net *net = NULL;
    nm_error err = {0};
    if (nm_net_open(onnx, NULL, &net, &err))
        fail_msg("%s", err.msg);
    const char *tap = "logits";
    if (nm_net_set_taps(net, &tap, 1, &err))
        fail_msg("%s", err.msg);
    const char *cases[] = {"bottle224", "random224"};
    for (int c = 0; c < 2; c++) {
        float *x = tu_read_f32(tu_path("%s/refvec/inputs/%s.bin", models_dir(), cases[c]),
                               3 * 224 * 224);
        float *ref = tu_read_f32(
            tu_path("%s/refvec/squeezenet1.1/%s.logits.bin", models_dir(), cases[c]), 1000);
        assert_non_null(x);
        assert_non_null(ref);
        nm_tensor out;
        if (nm_net_run(net, x, 1, 224, 224, &out, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(out.rank, 2);
        assert_int_equal(out.dims[1], 1000);
        int ours = argmax(out.data, 1000), theirs = argmax(ref, 1000);
        printf("  %s: top-1 ours %d, torch %d\n", cases[c], ours, theirs);
        assert_int_equal(ours, theirs);
        assert_true(tu_max_rel_err(out.data, ref, 1000, NULL) <= REL_TOL);
        free(x);
        free(ref);
    }
    nm_net_close(net);
}

/* cases.txt from gen_backbones.py: odd sizes, batches, torchvision exports. */
static void test_fixture_cases_match_torch(void **state)
{
    (void)state;
    const char *list = tu_path("%s/backbones/cases.txt", tu_fixtures());
    TU_REQUIRE_FILE(list);
    FILE *f = fopen(list, "r");
    assert_non_null(f);
    char line[4096], cur_model[1024] = "";
    nm_net *net = NULL;
    nm_error err = {0};
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        char model[1024], input[1024], tap[256], ref[1024];
        int n, c, h, w, rank;
        long long d[4] = {0, 0, 0, 0};
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int got = sscanf(line, "%1023s %1023s %d %d %d %d %255s %1023s %d %lld %lld %lld %lld",
                         model, input, &n, &c, &h, &w, tap, ref, &rank, &d[0], &d[1], &d[2],
                         &d[3]);
        if (got < 11)
            fail_msg("bad line in %s: %s", list, line);
        if (strcmp(model, cur_model) != 0) {
            nm_net_close(net);
            net = NULL;
            if (nm_net_open(model, NULL, &net, &err))
                fail_msg("%s", err.msg);
            snprintf(cur_model, sizeof cur_model, "%s", model);
        }
        float *x = tu_read_f32(input, (size_t)n * c * h * w);
        assert_non_null(x);
        size_t count = 1;
        for (int i = 0; i < rank; i++)
            count *= (size_t)d[i];
        float *r = tu_read_f32(ref, count);
        assert_non_null(r);
        const char *taps[1] = {tap};
        nm_tensor out;
        if (nm_net_set_taps(net, taps, 1, &err) || nm_net_run(net, x, n, h, w, &out, &err))
            fail_msg("%s %dx%dx%dx%d: %s", model, n, c, h, w, err.msg);
        assert_int_equal(out.rank, rank);
        for (int i = 0; i < rank; i++)
            if (out.dims[i] != d[i])
                fail_msg("%s %s: dim %d is %lld, torch %lld", model, tap, i,
                         (long long)out.dims[i], d[i]);
        size_t worst;
        double rel = tu_max_rel_err(out.data, r, count, &worst);
        const char *base = strrchr(model, '/');
        printf("  %-28s %-12s %dx%dx%dx%d  max err %.2e x max|ref|\n", base ? base + 1 : model,
               tap, n, c, h, w, rel);
        if (!(rel <= REL_TOL))
            fail_msg("%s %s: err %.3e x max|ref| at %zu (ours %g torch %g)", model, tap, rel,
                     worst, out.data[worst], r[worst]);
        free(x);
        free(r);
        checked++;
    }
    fclose(f);
    nm_net_close(net);
    printf("  %d fixture outputs checked\n", checked);
    assert_true(checked > 0);
}

/* Taps can be any intermediate value, and asking for a tap must not change
 * it (no fusion may swallow a value the caller sees). stage2 computed alone
 * must equal stage2 computed with stage3. */
static void test_taps_subset_equals_full_run(void **state)
{
    (void)state;
    const char *onnx = tu_path("%s/resnet50v2_trunk.onnx", models_dir());
    TU_REQUIRE_FILE(onnx);
    nm_net *net = NULL;
    nm_error err = {0};
    if (nm_net_open(onnx, NULL, &net, &err))
        fail_msg("%s", err.msg);
    float *x = tu_read_f32(tu_path("%s/refvec/inputs/small_random_64x80.bin", models_dir()),
                           3 * 64 * 80);
    assert_non_null(x);
    const char *both[2] = {"stage2", "stage3"};
    nm_tensor t2[2], t1;
    if (nm_net_set_taps(net, both, 2, &err) || nm_net_run(net, x, 1, 64, 80, t2, &err))
        fail_msg("%s", err.msg);
    size_t n = tensor_count(&t2[0]);
    float *keep = malloc(n * sizeof(float));
    memcpy(keep, t2[0].data, n * sizeof(float));
    if (nm_net_set_taps(net, both, 1, &err) || nm_net_run(net, x, 1, 64, 80, &t1, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(tensor_count(&t1), n);
    assert_true(tu_max_rel_err(t1.data, keep, n, NULL) <= 1e-6);
    /* an unknown tap is a clear error naming it */
    const char *bad = "no_such_tensor";
    assert_int_equal(nm_net_set_taps(net, &bad, 1, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "no_such_tensor"));
    free(keep);
    free(x);
    nm_net_close(net);
}

/* A second run at the same shape must not allocate any tensor memory: all
 * activations, weights and scratchpad live in the plan. We watch the
 * allocator by interposing malloc & co. (not under ASan, which owns malloc).
 * oneDNN's C API itself builds a small std::unordered_map of arguments on
 * every dnnl_primitive_execute; those node-sized allocations are outside our
 * control, so the bound is on size: nothing as large as a page. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#else
#define COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static volatile long alloc_calls;
static volatile size_t alloc_largest;
static void note_alloc(size_t n)
{
    alloc_calls++;
    if (n > alloc_largest)
        alloc_largest = n;
}
void *malloc(size_t n)
{
    note_alloc(n);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    note_alloc(a * b);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    note_alloc(n);
    return __libc_realloc(p, n);
}
int posix_memalign(void **p, size_t al, size_t n)
{
    note_alloc(n);
    *p = __libc_memalign(al, n);
    return *p ? 0 : 12;
}
void *aligned_alloc(size_t al, size_t n)
{
    note_alloc(n);
    return __libc_memalign(al, n);
}
#endif

static void test_second_run_allocates_nothing(void **state)
{
    (void)state;
#if !COUNT_ALLOCS
    skip();
#else
    const char *onnx = tu_path("%s/resnet50v2_trunk.onnx", models_dir());
    TU_REQUIRE_FILE(onnx);
    nm_net *net = NULL;
    nm_error err = {0};
    if (nm_net_open(onnx, NULL, &net, &err))
        fail_msg("%s", err.msg);
    float *x = calloc(2 * 3 * 64 * 64, sizeof(float));
    nm_tensor t[3];
    if (nm_net_run(net, x, 2, 64, 64, t, &err))
        fail_msg("%s", err.msg);
    long before = alloc_calls;
    alloc_largest = 0;
    for (int i = 0; i < 3; i++)
        if (nm_net_run(net, x, 2, 64, 64, t, &err))
            fail_msg("%s", err.msg);
    long during = alloc_calls - before;
    size_t largest = alloc_largest;
    printf("  3 runs after the first: %ld allocator calls, largest %zu bytes\n", during,
           largest);
    assert_true(largest < 4096);
    /* the watcher itself works: a new shape builds a plan with big buffers */
    alloc_largest = 0;
    if (nm_net_run(net, x, 1, 64, 64, t, &err))
        fail_msg("%s", err.msg);
    assert_true(alloc_largest >= 4096);
    free(x);
    nm_net_close(net);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_models_match_torch_refvec),
        cmocka_unit_test(test_squeezenet_top1_matches_torch),
        cmocka_unit_test(test_fixture_cases_match_torch),
        cmocka_unit_test(test_taps_subset_equals_full_run),
        cmocka_unit_test(test_second_run_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
