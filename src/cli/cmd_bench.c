/* `nominal bench backbone`: time a backbone forward pass. A benchmark, not
 * a test: it prints figures and never fails on speed. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "nn/net.h"

#define MAX_TAPS 16

static void print_help(void)
{
    printf("usage: nominal bench predict MODEL IMAGE [--iters N] [--threads N] [--batch N]\n"
           "\n"
           "Score IMAGE repeatedly with a model (warm) and report ms/image split into\n"
           "preprocess / backbone / method (features + search) / map, the model's\n"
           "load time and peak RSS. The last line is `ms/image: X`.\n"
           "\n"
           "options:\n"
           "  --iters N      timed calls (default 20, after 2 untimed)\n"
           "  --threads N    compute threads (default: all cores)\n"
           "  --batch N      copies of IMAGE scored per call, as `predict --batch N`\n"
           "                 does (default 1; 1..%d); times are per image\n"
           "\n", NM_SCORE_BATCH_MAX);
    printf("usage: nominal bench backbone MODEL.onnx [options]\n"
           "\n"
           "Run the backbone on random input up to the given taps and report the\n"
           "median time per image. The last line is `ms/image: X`.\n"
           "\n"
           "options:\n"
           "  --taps A,B     tensors to compute (default: all graph outputs)\n"
           "  --size N       input height and width (default 224)\n"
           "  --batch N      images per forward pass (default 1)\n"
           "  --threads N    compute threads (default: all cores)\n"
           "  --iters N      timed passes (default 20)\n"
           "  --warmup N     untimed passes first (default 3)\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int bench_predict(int argc, char **argv)
{
    const char *model_path = NULL, *image_path = NULL;
    int iters = 20, threads = 0, batch = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            print_help();
            return EXIT_OK;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, NM_SCORE_BATCH_MAX, &batch))
                return cli_usage_error("bench", "--batch needs 1..%d", NM_SCORE_BATCH_MAX);
        } else if ((r = cli_opt(argc, argv, &i, "--iters", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 100000, &iters))
                return cli_usage_error("bench", "--iters needs 1..100000");
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &threads))
                return cli_usage_error("bench", "--threads needs a number");
        } else if (argv[i][0] == '-') {
            return cli_usage_error("bench", "unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else if (!image_path) {
            image_path = argv[i];
        } else {
            return cli_usage_error("bench", "bench predict takes MODEL and one IMAGE");
        }
    }
    if (!model_path || !image_path)
        return cli_usage_error("bench", "bench predict needs MODEL and IMAGE");
    nm_error err = {0};
    nm_model *m = NULL;
    nm_image img = {0};
    double t0 = cli_now_seconds();
    if (nm_model_load(model_path, threads, &m, &err) ||
        nm_image_load(image_path, 0, &img, &err)) {
        int rc = cli_report(&err);
        nm_model_close(m);
        return rc;
    }
    double load_ms = (cli_now_seconds() - t0) * 1e3;
    double *t[5];
    int rc = EXIT_OK;
    const nm_image *imgs[NM_SCORE_BATCH_MAX];
    nm_result r[NM_SCORE_BATCH_MAX];
    for (int k = 0; k < batch; k++)
        imgs[k] = &img;
    for (int k = 0; k < 5; k++)
        if (!(t[k] = calloc((size_t)iters, sizeof(double))))
            if (rc == EXIT_OK) {
                nm_fail(&err, NM_ERR_NOMEM, "bench: out of memory for %d timings", iters);
                rc = cli_report(&err);
            }
    for (int i = -2; i < iters && rc == EXIT_OK; i++) { /* two warm-up runs */
        double s = cli_now_seconds();
        if (nm_model_score_batch(m, imgs, batch, 1, r, &err)) {
            rc = cli_report(&err);
            break;
        }
        double total = (cli_now_seconds() - s) * 1e3 / batch;
        if (i >= 0) { /* ms_* are already the batch's times per image */
            t[0][i] = r[0].ms_preprocess;
            t[1][i] = r[0].ms_backbone;
            t[2][i] = r[0].ms_method;
            t[3][i] = r[0].ms_map;
            t[4][i] = total;
        }
        for (int k = 0; k < batch; k++)
            nm_result_free(&r[k]);
    }
    if (rc == EXIT_OK) {
        nm_model_info info;
        nm_model_get_info(m, &info);
        printf("model:      %s (%s, bank %zu x %d), load %.0f ms\n", model_path, info.method,
               info.memory_bank, info.feature_dim, load_ms);
        printf("image:      %s (%dx%d), %d runs of %d image%s, medians per image:\n",
               image_path, img.width, img.height, iters, batch, batch > 1 ? "s" : "");
        printf("  preprocess %8.2f ms\n", median_of(t[0], iters));
        printf("  backbone   %8.2f ms\n", median_of(t[1], iters));
        printf("  method     %8.2f ms (the method: features + search / distances)\n",
               median_of(t[2], iters));
        printf("  map        %8.2f ms (upsample, blur, back to %dx%d)\n", median_of(t[3], iters),
               img.width, img.height);
        printf("peak RSS:   %.0f MiB\n", (double)cli_peak_rss() / 1048576.0);
        printf("ms/image: %.2f\n", median_of(t[4], iters));
    }
    for (int k = 0; k < 5; k++)
        free(t[k]);
    nm_image_free(&img);
    nm_model_close(m);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        print_help();
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "predict") == 0)
        return bench_predict(argc - 1, argv + 1);
    if (strcmp(argv[1], "backbone") != 0)
        return cli_usage_error("bench", "unknown benchmark '%s' (available: backbone, predict)",
                               argv[1]);
    const char *model = NULL;
    char *taps[MAX_TAPS];
    int n_taps = 0, size = 224, batch = 1, threads = 0, iters = 20, warmup = 3;
    int rc = EXIT_OK;
    for (int i = 2; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            print_help();
            return EXIT_OK;
        } else if ((r = cli_opt(argc, argv, &i, "--taps", &v))) {
            if (r < 0 || (n_taps = cli_split_list(v, taps, MAX_TAPS)) <= 0)
                return cli_usage_error("bench", "--taps needs 1 to %d names", MAX_TAPS);
        } else if ((r = cli_opt(argc, argv, &i, "--size", &v))) {
            if (r < 0 || cli_parse_int(v, 8, 8192, &size))
                return cli_usage_error("bench", "--size needs 8..8192");
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 1024, &batch))
                return cli_usage_error("bench", "--batch needs 1..1024");
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 1024, &threads))
                return cli_usage_error("bench", "--threads needs a number");
        } else if ((r = cli_opt(argc, argv, &i, "--iters", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 100000, &iters))
                return cli_usage_error("bench", "--iters needs 1..100000");
        } else if ((r = cli_opt(argc, argv, &i, "--warmup", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 100000, &warmup))
                return cli_usage_error("bench", "--warmup needs 0..100000");
        } else if (argv[i][0] == '-') {
            return cli_usage_error("bench", "unknown option '%s'", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return cli_usage_error("bench", "only one MODEL may be given");
        }
    }
    if (!model)
        return cli_usage_error("bench", "missing MODEL.onnx");

    nm_error err = {0};
    nm_net *net = NULL;
    nm_net_options opts = {.threads = threads};
    size_t n_in = (size_t)batch * 3 * (size_t)size * (size_t)size;
    float *input = malloc(sizeof(float) * n_in);
    double *times = malloc(sizeof(double) * (size_t)iters);
    nm_tensor out[MAX_TAPS];
    if (!input || !times) {
        fprintf(stderr, "nominal: out of memory\n");
        rc = EXIT_FAILURE_GENERIC;
        goto done;
    }
    /* deterministic pseudo-random input (xorshift), roughly N(0,1)-scaled */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n_in; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        input[i] = (float)((x >> 8) * (1.0 / 16777216.0) * 4.0 - 2.0);
    }
    if (nm_net_open(model, &opts, &net, &err) ||
        (n_taps && nm_net_set_taps(net, (const char *const *)taps, n_taps, &err))) {
        rc = cli_report(&err);
        goto done;
    }
    double t0 = cli_now_seconds();
    if (nm_net_run(net, input, batch, size, size, out, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    double first = cli_now_seconds() - t0;
    for (int i = 0; i < warmup; i++)
        if (nm_net_run(net, input, batch, size, size, out, &err)) {
            rc = cli_report(&err);
            goto done;
        }
    for (int i = 0; i < iters; i++) {
        double s = cli_now_seconds();
        if (nm_net_run(net, input, batch, size, size, out, &err)) {
            rc = cli_report(&err);
            goto done;
        }
        times[i] = (cli_now_seconds() - s) * 1000.0 / batch;
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    double median = iters % 2 ? times[iters / 2]
                              : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
    printf("model:      %s\n", model);
    printf("backend:    %s\n", net_backend_description(net));
    printf("input:      %dx3x%dx%d f32, %d layers after fusion\n", batch, size, size,
           net_layer_count(net));
    printf("first run:  %.1f ms (plan build + run)\n", first * 1000.0);
    printf("min/max:    %.2f / %.2f ms/image over %d runs\n", times[0], times[iters - 1], iters);
    printf("activation memory: %.1f MiB, peak RSS %.1f MiB\n",
           net_plan_memory(net) / 1048576.0, cli_peak_rss() / 1048576.0);
    printf("ms/image: %.2f\n", median);
done:
    for (int t = 0; t < n_taps; t++)
        free(taps[t]);
    free(input);
    free(times);
    nm_net_close(net);
    return rc;
}
