/* `nominal serve`: argument parsing, signals and the server's lifetime. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/dataset.h"
#include "serve/server.h"

#define MAX_MODELS 64

static void print_help(void)
{
    printf("usage: nominal serve MODEL... [--listen ADDR:PORT] [--workers N] [--threads N]\n"
           "                      [--queue N] [--max-body SIZE] [--max-pixels N] [--timeout S]\n"
           "                      [--name NAME] [--demo-images DIR]\n"
           "\n"
           "Serve models over HTTP. Each MODEL is loaded once and named after its file\n"
           "(bottle.nmm -> bottle).\n"
           "\n"
           "  POST /v1/models/NAME/predict   body: a PNG or JPEG (Content-Type image/png,\n"
           "                                 image/jpeg or application/octet-stream)\n"
           "       -> {\"score\", \"decision\", \"p_value\", \"width\", \"height\", \"latency_ms\": {...}}\n"
           "       ?map=png | ?map=overlay -> the heatmap / overlay PNG instead\n"
           "                                 (score in the X-Nominal-Score header)\n"
           "  GET  /v1/models                the models: method, backbone, input size\n"
           "  GET  /healthz                  200 when ready\n"
           "  GET  /metrics                  Prometheus text: requests, latency, errors\n"
           "  GET  /                         a page to drop an image and see the overlay\n"
           "Errors are JSON: {\"error\": {\"kind\", \"message\"}}, with status 400 (bad image or\n"
           "request), 404, 405, 413 (body or image too large), 415 (not an image type),\n"
           "503 + Retry-After (busy or shutting down), 500.\n"
           "\n"
           "  --listen ADDR:PORT  where to listen (default 127.0.0.1:8080)\n"
           "  --threads N         compute threads in all (default: all cores)\n"
           "  --workers N         images scored at once, each on its own copy of the\n"
           "                      models with threads/N threads (default: one per thread,\n"
           "                      at most 8)\n"
           "  --queue N           requests that may wait for a worker before 503\n"
           "                      (default 2 per worker)\n"
           "  --max-body SIZE     largest request body, e.g. 32M (default), 512K\n"
           "  --max-pixels N      largest decoded image, width x height (default 25000000)\n"
           "  --timeout S         longest wait for a request body or a free worker (30)\n"
           "  --name NAME         X-Nominal-Worker response header (default: the pid)\n"
           "  --demo-images DIR   also serve DIR's images at /demo/FILE (for /?demo=...)\n"
           "\n"
           "SIGTERM or SIGINT: stop taking work (new requests get 503), finish the\n"
           "requests in flight, exit 0. Running several servers behind nginx:\n"
           "docs/deploy.md.\n");
}

/* "32M" -> 33554432; K, M, G are powers of 1024. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || s[0] == '-')
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || v == 0 || v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

typedef struct serve_cli {
    serve_options o;
    const char *models[MAX_MODELS];
} serve_cli;

static int parse_args(int argc, char **argv, serve_cli *c)
{
    serve_options *o = &c->o;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r, n;
        if (cli_is_help(argv[i])) {
            print_help();
            return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--listen", &v))) {
            if (r < 0 || !*v)
                return cli_usage_error("serve", "--listen needs ADDR:PORT");
            o->listen = v;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 4096, &o->threads))
                return cli_usage_error("serve", "--threads needs a number >= 1");
        } else if ((r = cli_opt(argc, argv, &i, "--workers", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 1024, &o->workers))
                return cli_usage_error("serve", "--workers needs a number >= 1");
        } else if ((r = cli_opt(argc, argv, &i, "--queue", &v))) {
            if (r < 0 || cli_parse_int(v, 0, 100000, &o->queue))
                return cli_usage_error("serve", "--queue needs a number >= 0");
        } else if ((r = cli_opt(argc, argv, &i, "--max-body", &v))) {
            if (r < 0 || parse_size(v, &o->max_body))
                return cli_usage_error("serve", "--max-body needs a size such as 32M");
        } else if ((r = cli_opt(argc, argv, &i, "--max-pixels", &v))) {
            if (r < 0 || parse_size(v, &o->max_pixels))
                return cli_usage_error("serve", "--max-pixels needs a number");
        } else if ((r = cli_opt(argc, argv, &i, "--timeout", &v))) {
            if (r < 0 || cli_parse_int(v, 1, 3600, &n))
                return cli_usage_error("serve", "--timeout needs seconds (1 to 3600)");
            o->timeout_s = n;
        } else if ((r = cli_opt(argc, argv, &i, "--name", &v))) {
            if (r < 0 || !*v || strpbrk(v, "\r\n") || strlen(v) > 100)
                return cli_usage_error("serve", "--name needs a short one-line name");
            o->name = v;
        } else if ((r = cli_opt(argc, argv, &i, "--demo-images", &v))) {
            if (r < 0 || !*v)
                return cli_usage_error("serve", "--demo-images needs a folder");
            if (path_is_dir(v) != 1) {
                fprintf(stderr, "nominal: %s: not a folder\n", v);
                return EXIT_IO;
            }
            o->demo_dir = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("serve", "unknown option '%s'", argv[i]);
        } else if (o->n_models == MAX_MODELS) {
            return cli_usage_error("serve", "at most %d models", MAX_MODELS);
        } else {
            c->models[o->n_models++] = argv[i];
        }
    }
    if (!o->n_models)
        return cli_usage_error("serve", "missing MODEL");
    o->model_paths = c->models;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    serve_cli c;
    memset(&c, 0, sizeof c);
    serve_options_default(&c.o);
    int rc = parse_args(argc, argv, &c);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;

    /* Every thread (HTTP, workers, OpenMP) inherits this mask, so the
     * signals reach only sigwait below; a client hanging up mid-answer
     * must not kill the server. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    nm_error err = {0};
    serve *s = NULL;
    if (serve_start(&c.o, &s, &err))
        return cli_report(&err);
    printf("nominal serve: listening on http://%s (%d model%s, %d worker%s x %d thread%s, "
           "name %s)\n", c.o.listen, c.o.n_models, c.o.n_models == 1 ? "" : "s",
           serve_workers(s), serve_workers(s) == 1 ? "" : "s", serve_threads_per_worker(s),
           serve_threads_per_worker(s) == 1 ? "" : "s", serve_name(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "nominal serve: %s: finishing requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_stop(s);
    fprintf(stderr, "nominal serve: stopped\n");
    return EXIT_OK;
}
