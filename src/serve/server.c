/*
 * `nominal serve`: civetweb setup, model loading and routing. The HTTP
 * threads only parse, route and wait; images are decoded and scored by
 * the worker pool (pool.c), each worker with its own model instances.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "image/render.h"
#include "serve/serve_internal.h"

/* HTTP threads beyond the pool's capacity: health checks and scrapes get
 * answered, and excess predict requests get a quick 503, while every
 * worker is busy and the queue is full. */
#define SPARE_HTTP_THREADS 4

/* Default worker count cap (each worker holds its own copy of the models). */
#define MAX_AUTO_WORKERS 8

void serve_options_default(serve_options *o)
{
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->queue = -1;
    o->max_body = (size_t)32 << 20;
    o->max_pixels = 25000000; /* 5000 x 5000: 75 MB decoded, 100 MB of map */
    o->timeout_s = 30;
}

int serve_workers(const serve *s) { return s->workers; }
int serve_threads_per_worker(const serve *s) { return s->threads_per_worker; }
const char *serve_name(const serve *s) { return s->name; }

/* ------------------------------------------------------------- models */

int serve_find_model(const serve *s, const char *name)
{
    for (int m = 0; m < s->n_models; m++)
        if (strcmp(s->models[m].name, name) == 0)
            return m;
    return -1;
}

/* "dir/bottle.nmm" -> "bottle"; names go into URLs and metric labels, so
 * only [A-Za-z0-9._-] is allowed. */
static nm_status model_name_of(const char *path, char **out, nm_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (len == 0)
        return nm_fail(err, NM_ERR_ARG, "%s: cannot name a model after this path", path);
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)base[i]) && !strchr("._-", base[i]))
            return nm_fail(err, NM_ERR_ARG,
                           "%s: model name '%.*s' may only use letters, digits, '.', '_' "
                           "and '-' (rename the file)", path, (int)len, base);
    *out = strndup(base, len);
    return *out ? NM_OK : nm_fail(err, NM_ERR_NOMEM, "out of memory");
}

static nm_status load_models(serve *s, nm_error *err)
{
    s->models = calloc((size_t)s->n_models, sizeof *s->models);
    s->instances = calloc((size_t)s->workers * (size_t)s->n_models, sizeof *s->instances);
    if (!s->models || !s->instances)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    for (int m = 0; m < s->n_models; m++) {
        served_model *sm = &s->models[m];
        const char *path = s->opt.model_paths[m];
        if (!(sm->path = strdup(path)))
            return nm_fail(err, NM_ERR_NOMEM, "out of memory");
        nm_status st = model_name_of(path, &sm->name, err);
        if (st)
            return st;
        for (int k = 0; k < m; k++)
            if (strcmp(s->models[k].name, sm->name) == 0)
                return nm_fail(err, NM_ERR_ARG, "%s and %s would both be served as '%s'",
                               s->models[k].path, path, sm->name);
        /* One instance per worker: each keeps its own scratch buffers. */
        for (int w = 0; w < s->workers; w++)
            if ((st = nm_model_load(path, s->threads_per_worker,
                                    &s->instances[w * s->n_models + m], err)))
                return st;
        nm_model_get_info(s->instances[m], &sm->info);
        sm->colour_top = render_scale_top(s->instances[m]);
    }
    return NM_OK;
}

/* ------------------------------------------------------ small endpoints */

static void handle_healthz(request *req)
{
    int queued, running;
    pool_counts(req->s->pool, &queued, &running);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "worker", req->s->name);
    cJSON_AddNumberToObject(o, "models", req->s->n_models);
    cJSON_AddNumberToObject(o, "workers", req->s->workers);
    cJSON_AddNumberToObject(o, "busy_workers", running);
    cJSON_AddNumberToObject(o, "queued", queued);
    reply_json(req, 200, o, NULL);
    cJSON_Delete(o);
}

static cJSON *model_json(const served_model *sm, const nm_model *first)
{
    const nm_model_info *in = &sm->info;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", sm->name);
    cJSON_AddStringToObject(o, "method", in->method);
    cJSON_AddStringToObject(o, "backbone", in->backbone);
    cJSON_AddStringToObject(o, "taps", in->taps);
    cJSON *input = cJSON_AddObjectToObject(o, "input");
    cJSON_AddNumberToObject(input, "resize_short", in->preprocess.resize_short);
    cJSON_AddNumberToObject(input, "crop_width", in->preprocess.crop_width);
    cJSON_AddNumberToObject(input, "crop_height", in->preprocess.crop_height);
    cJSON_AddNumberToObject(o, "memory_bank", (double)in->memory_bank);
    cJSON_AddNumberToObject(o, "feature_dim", in->feature_dim);
    cJSON_AddNumberToObject(o, "train_images", in->train_images);
    nm_calibration cal;
    if (nm_model_get_calibration(first, &cal)) {
        cJSON *c = cJSON_AddObjectToObject(o, "calibration");
        cJSON_AddStringToObject(c, "kind", nm_calibration_kind_name(cal.kind));
        cJSON_AddNumberToObject(c, "target", cal.target);
        cJSON_AddNumberToObject(c, "threshold", cal.threshold);
        cJSON_AddNumberToObject(c, "n_good", cal.n_good);
        cJSON_AddNumberToObject(c, "fpr_bound", cal.fpr_bound);
    } else {
        cJSON_AddNullToObject(o, "calibration");
    }
    return o;
}

static void handle_models(request *req, const char *name)
{
    serve *s = req->s;
    if (name) {
        int m = serve_find_model(s, name);
        if (m < 0) {
            reply_error(req, ERR_NOT_FOUND, "no model named '%s'", name);
            return;
        }
        req->model = m;
        cJSON *o = model_json(&s->models[m], s->instances[m]);
        reply_json(req, 200, o, NULL);
        cJSON_Delete(o);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "models");
    for (int m = 0; m < s->n_models; m++)
        cJSON_AddItemToArray(list, model_json(&s->models[m], s->instances[m]));
    reply_json(req, 200, root, NULL);
    cJSON_Delete(root);
}

static void handle_metrics(request *req)
{
    serve *s = req->s;
    pool_gauges g = {.workers = s->workers, .queue_capacity = s->queue};
    pool_counts(s->pool, &g.queued, &g.running);
    char *text = metrics_render(s->metrics, &g);
    if (!text) {
        reply_error(req, ERR_INTERNAL, "out of memory rendering metrics");
        return;
    }
    reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL);
    free(text);
}

/* GET /demo/NAME: an image from --demo-images DIR, so that the page can be
 * shown working without a file dialog (headless tests, demos). */
static void handle_demo(request *req, const char *file)
{
    const char *ext = strrchr(file, '.');
    const char *mime = !ext ? NULL
                       : strcmp(ext, ".png") == 0 ? "image/png"
                       : (strcmp(ext, ".jpg") == 0 || strcmp(ext, ".jpeg") == 0) ? "image/jpeg"
                                                                                   : NULL;
    int plain = file[0] && file[0] != '.';
    for (const char *c = file; plain && *c; c++)
        plain = isalnum((unsigned char)*c) || strchr("._-", *c);
    char path[4096];
    struct stat st;
    if (!mime || !plain ||
        snprintf(path, sizeof path, "%s/%s", req->s->opt.demo_dir, file) >= (int)sizeof path ||
        stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        reply_error(req, ERR_NOT_FOUND, "no demo image '%s'", file);
        return;
    }
    char header[192];
    snprintf(header, sizeof header, "X-Nominal-Worker: %s\r\n", req->s->name);
    req->status = 200;
    mg_send_mime_file2(req->conn, path, mime, header);
}

/* ------------------------------------------------------------- routing */

static int is_get(request *req, const char *method)
{
    if (strcmp(method, "GET") == 0)
        return 1;
    reply_error(req, ERR_METHOD_NOT_ALLOWED, "%s is not allowed here", method);
    return 0;
}

static void route(request *req, const char *method, const char *path)
{
    static const char models[] = "/v1/models";
    static const char demo[] = "/demo/";
    if (strcmp(path, "/") == 0) {
        req->ep = EP_PAGE;
        if (is_get(req, method))
            reply(req, 200, "text/html; charset=utf-8", SERVE_PAGE_HTML,
                  strlen(SERVE_PAGE_HTML), NULL);
    } else if (strcmp(path, "/healthz") == 0) {
        req->ep = EP_HEALTHZ;
        if (is_get(req, method))
            handle_healthz(req);
    } else if (strcmp(path, "/metrics") == 0) {
        req->ep = EP_METRICS;
        if (is_get(req, method))
            handle_metrics(req);
    } else if (strcmp(path, models) == 0 || strcmp(path, "/v1/models/") == 0) {
        req->ep = EP_MODELS;
        if (is_get(req, method))
            handle_models(req, NULL);
    } else if (strncmp(path, models, sizeof models - 1) == 0 &&
               path[sizeof models - 1] == '/') {
        /* /v1/models/NAME or /v1/models/NAME/predict; NAME whole (cut
         * short, a long one could match another model's name) */
        const char *start = path + sizeof models;
        const char *slash = strchr(start, '/');
        char *name = strndup(start, slash ? (size_t)(slash - start) : strlen(start));
        if (!name) {
            reply_error(req, ERR_INTERNAL, "out of memory");
        } else if (slash && strcmp(slash, "/predict") == 0) {
            req->ep = EP_PREDICT;
            handle_predict(req, name);
        } else if (!slash) {
            req->ep = EP_MODELS;
            if (is_get(req, method))
                handle_models(req, name);
        } else {
            reply_error(req, ERR_NOT_FOUND, "no such endpoint: %s", path);
        }
        free(name);
    } else if (req->s->opt.demo_dir && strncmp(path, demo, sizeof demo - 1) == 0) {
        req->ep = EP_DEMO;
        if (is_get(req, method))
            handle_demo(req, path + sizeof demo - 1);
    } else {
        reply_error(req, ERR_NOT_FOUND, "no such endpoint: %s", path);
    }
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
    serve *s = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    request req = {.conn = conn, .s = s, .t0 = serve_now(), .ep = EP_OTHER, .model = -1,
                   .status = 500};
    pthread_mutex_lock(&s->flight_lock);
    s->in_flight++;
    pthread_mutex_unlock(&s->flight_lock);
    if (atomic_load(&s->draining))
        reply_error(&req, ERR_SHUTTING_DOWN, "the server is shutting down");
    else
        route(&req, ri->request_method, ri->local_uri ? ri->local_uri : "/");
    metrics_request(s->metrics, req.ep, req.model, req.status, serve_now() - req.t0);
    pthread_mutex_lock(&s->flight_lock);
    if (--s->in_flight == 0)
        pthread_cond_broadcast(&s->flight_done);
    pthread_mutex_unlock(&s->flight_lock);
    return req.status;
}

static int on_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    fprintf(stderr, "nominal serve: http: %s\n", message);
    return 1;
}

/* -------------------------------------------------------- start / stop */

static void choose_sizes(serve *s)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = s->opt.threads > 0 ? s->opt.threads : (int)(cores > 0 ? cores : 1);
    /* One single-threaded worker per core gets the most images through
     * and suffers least when other programs take cores away (measured in
     * docs/deploy.md); past 8 workers the models' memory adds up, so
     * further cores make each worker wider instead. */
    s->workers = s->opt.workers > 0 ? s->opt.workers
                 : threads < MAX_AUTO_WORKERS ? threads
                                              : MAX_AUTO_WORKERS;
    s->threads_per_worker = threads / s->workers > 0 ? threads / s->workers : 1;
    s->queue = s->opt.queue >= 0 ? s->opt.queue : 2 * s->workers;
}

static nm_status start_http(serve *s, nm_error *err)
{
    char threads[16], timeout[32];
    snprintf(threads, sizeof threads, "%d", s->workers + s->queue + SPARE_HTTP_THREADS);
    snprintf(timeout, sizeof timeout, "%d", s->opt.timeout_s * 1000);
    const char *options[] = {
        "listening_ports", s->opt.listen,
        "num_threads", threads,
        "request_timeout_ms", timeout,
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "5000",
        NULL};
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = on_log;
    struct mg_init_data init = {.callbacks = &callbacks, .user_data = s,
                                .configuration_options = options};
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {.code = &code, .text = text, .text_buffer_size = sizeof text};
    s->http = mg_start2(&init, &error);
    if (!s->http)
        return nm_fail(err, NM_ERR_IO, "%s: cannot listen: %s", s->opt.listen,
                       text[0] ? text : "civetweb failed to start");
    mg_set_request_handler(s->http, "/", on_request, s);
    return NM_OK;
}

nm_status serve_start(const serve_options *o, serve **out, nm_error *err)
{
    *out = NULL;
    if (!o || o->n_models < 1 || !o->listen)
        return nm_fail(err, NM_ERR_ARG, "serve: no model or no listening address given");
    serve *s = calloc(1, sizeof *s);
    if (!s)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->flight_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->flight_done, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->draining, 0);
    s->opt = *o;
    s->n_models = o->n_models;
    if (o->name)
        snprintf(s->name, sizeof s->name, "%s", o->name);
    else
        snprintf(s->name, sizeof s->name, "%ld", (long)getpid());
    choose_sizes(s);
    nm_status st = load_models(s, err);
    const char **names = st ? NULL : malloc((size_t)s->n_models * sizeof *names);
    if (!st && !names)
        st = nm_fail(err, NM_ERR_NOMEM, "out of memory");
    for (int m = 0; !st && m < s->n_models; m++)
        names[m] = s->models[m].name;
    if (!st)
        st = metrics_create(names, s->n_models, &s->metrics, err);
    free(names);
    if (!st)
        st = pool_create(s->workers, s->queue, predict_worker_run, s, &s->pool, err);
    if (!st) {
        mg_init_library(0);
        st = start_http(s, err);
        if (st)
            mg_exit_library();
    }
    if (st) {
        serve_stop(s);
        return st;
    }
    *out = s;
    return NM_OK;
}

/* Turn new requests away (503 + Retry-After, connection closed: a load
 * balancer retries them elsewhere) and wait for those in flight, at most
 * about as long as one request may legitimately take. */
static void drain(serve *s)
{
    atomic_store(&s->draining, 1);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 2 * (time_t)s->opt.timeout_s + 10;
    pthread_mutex_lock(&s->flight_lock);
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->flight_done, &s->flight_lock, &deadline)) {
            fprintf(stderr, "nominal serve: %d requests still unfinished, stopping anyway\n",
                    s->in_flight);
            break;
        }
    pthread_mutex_unlock(&s->flight_lock);
}

void serve_stop(serve *s)
{
    if (!s)
        return;
    if (s->http) {
        drain(s);
        mg_stop(s->http);
        mg_exit_library();
    }
    pool_destroy(s->pool);
    metrics_free(s->metrics);
    for (int i = 0; s->instances && i < s->workers * s->n_models; i++)
        nm_model_close(s->instances[i]);
    free(s->instances);
    for (int m = 0; s->models && m < s->n_models; m++) {
        free(s->models[m].name);
        free(s->models[m].path);
    }
    free(s->models);
    pthread_cond_destroy(&s->flight_done);
    pthread_mutex_destroy(&s->flight_lock);
    free(s);
}
