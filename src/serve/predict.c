/*
 * POST /v1/models/{name}/predict: the request body is a PNG or JPEG; the
 * answer is JSON (score, decision, p-value, latency split) or, with
 * ?map=png|overlay, the heatmap or overlay picture with the score in
 * headers. The HTTP thread checks and reads the request; a pool worker
 * decodes and scores it on its own model instance.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/render.h"
#include "serve/serve_internal.h"

typedef enum map_want { MAP_NONE, MAP_HEATMAP, MAP_OVERLAY } map_want;

typedef struct predict_job {
    int model;
    const uint8_t *body;
    size_t size;
    map_want want;
    /* results, filled by the worker */
    nm_status status;
    nm_error err;
    int decoded;        /* 0: the body was not a usable image */
    float score;
    int width, height;
    stage_times t;      /* queue time is filled in by the HTTP thread */
    uint8_t *png;       /* MAP_HEATMAP / MAP_OVERLAY */
    size_t png_size;
} predict_job;

void predict_worker_run(void *ctx, int worker, void *job)
{
    serve *s = ctx;
    predict_job *j = job;
    nm_model *model = s->instances[worker * s->n_models + j->model];
    nm_image img = {0};
    nm_result r = {0};
    double t0 = serve_now();
    j->status = nm_image_decode(j->body, j->size, "request body", s->opt.max_pixels, &img,
                                &j->err);
    double t1 = serve_now();
    j->t.decode = (t1 - t0) * 1e3;
    if (j->status)
        return;
    j->decoded = 1;
    j->status = nm_model_score(model, &img, j->want != MAP_NONE, &r, &j->err);
    if (!j->status) {
        j->score = r.score;
        j->width = r.width;
        j->height = r.height;
        j->t.preprocess = r.ms_preprocess;
        j->t.backbone = r.ms_backbone;
        j->t.method = r.ms_method;
        j->t.map = r.ms_map;
    }
    if (!j->status && j->want != MAP_NONE) {
        double t2 = serve_now();
        j->status = render_map_png(j->want == MAP_OVERLAY ? RENDER_OVERLAY : RENDER_HEATMAP,
                                   &img, &r, s->models[j->model].colour_top, &j->png,
                                   &j->png_size, &j->err);
        j->t.render = (serve_now() - t2) * 1e3;
    }
    nm_result_free(&r);
    nm_image_free(&img);
}

/* ------------------------------------------------------- request checks */

/* ?map=png|overlay; 0 on success. */
static int parse_map(request *req, map_want *want)
{
    const char *q = mg_get_request_info(req->conn)->query_string;
    char value[32];
    *want = MAP_NONE;
    /* -1: no map=; -2: a value too long for any choice (not "none") */
    int got = q ? mg_get_var(q, strlen(q), "map", value, sizeof value) : -1;
    if (got == -1)
        return 0;
    if (got < 0) {
        reply_error(req, ERR_BAD_REQUEST,
                    "map= is %zu bytes or longer: expected map=png or map=overlay",
                    sizeof value);
        return -1;
    }
    if (strcmp(value, "png") == 0 || strcmp(value, "heatmap") == 0)
        *want = MAP_HEATMAP;
    else if (strcmp(value, "overlay") == 0)
        *want = MAP_OVERLAY;
    else if (strcmp(value, "none") != 0 && value[0]) {
        reply_error(req, ERR_BAD_REQUEST, "map=%s: expected map=png or map=overlay", value);
        return -1;
    }
    return 0;
}

/* The body is sniffed (PNG or JPEG magic), but the declared type must
 * allow an image: a form or JSON posted here by mistake gets a 415 that
 * says what to send, not a confusing decode error. */
static int check_content_type(request *req)
{
    static const char *const ok[] = {"image/png", "image/jpeg", "image/jpg",
                                      "application/octet-stream"};
    const char *ct = mg_get_header(req->conn, "Content-Type");
    size_t len = ct ? strcspn(ct, "; \t") : 0;
    for (size_t i = 0; ct && i < sizeof ok / sizeof ok[0]; i++)
        if (len == strlen(ok[i]) && strncasecmp(ct, ok[i], len) == 0)
            return 0;
    reply_error(req, ERR_UNSUPPORTED_MEDIA_TYPE,
                "Content-Type %s%.*s%s: send the image bytes as image/png or image/jpeg",
                ct ? "'" : "", ct ? (int)(len > 64 ? 64 : len) : 7, ct ? ct : "missing",
                ct ? "'" : "");
    return -1;
}

/* Read the whole body (Content-Length or chunked) into *out, at most
 * max_body bytes; 0 on success, else the error was answered. */
static int read_body(request *req, uint8_t **out, size_t *size)
{
    size_t max = req->s->opt.max_body;
    long long declared = mg_get_request_info(req->conn)->content_length;
    *out = NULL;
    *size = 0;
    if (declared > 0 && (unsigned long long)declared > max) {
        reply_error(req, ERR_BODY_TOO_LARGE,
                    "request body of %lld bytes is over the limit of %zu bytes (--max-body)",
                    declared, max);
        return -1;
    }
    if (declared == 0) {
        req->body_read = 1;
        reply_error(req, ERR_EMPTY_BODY, "empty request body: send a PNG or JPEG image");
        return -1;
    }
    /* Chunked bodies have no declared size: grow, but never past max + 1
     * bytes (the one extra byte tells "too large" from "exactly max"). */
    size_t cap = declared > 0 ? (size_t)declared : 65536;
    uint8_t *buf = malloc(cap);
    size_t got = 0;
    while (buf) {
        if (got == cap) {
            if (declared > 0 || cap > max)
                break;
            size_t grown = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *p = realloc(buf, grown);
            if (!p)
                break;
            buf = p;
            cap = grown;
        }
        int n = mg_read(req->conn, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (!buf) {
        reply_error(req, ERR_INTERNAL, "out of memory for a %zu-byte body", cap);
        return -1;
    }
    if (got > max) {
        free(buf);
        reply_error(req, ERR_BODY_TOO_LARGE,
                    "request body is over the limit of %zu bytes (--max-body)", max);
        return -1;
    }
    req->body_read = 1;
    if (declared > 0 && got < (size_t)declared) {
        free(buf);
        reply_error(req, ERR_TRUNCATED_BODY,
                    "request body ended after %zu of %lld bytes", got, declared);
        return -1;
    }
    if (got == 0) {
        free(buf);
        reply_error(req, ERR_EMPTY_BODY, "empty request body: send a PNG or JPEG image");
        return -1;
    }
    *out = buf;
    *size = got;
    return 0;
}

/* After an early error answer, read what the client is still sending:
 * closing a socket with unread data makes the kernel reset the connection,
 * and the client may then lose the answer. A client that asked
 * "Expect: 100-continue" has been told not to send, and one that declared
 * a far larger body is not worth the time: close on those. */
static void discard_body(request *req)
{
    const char *expect = mg_get_header(req->conn, "Expect");
    long long declared = mg_get_request_info(req->conn)->content_length;
    unsigned long long limit = 2ull * req->s->opt.max_body;
    if (req->body_read || (expect && strcasecmp(expect, "100-continue") == 0) ||
        (declared > 0 && (unsigned long long)declared > limit))
        return;
    char scratch[4096]; /* small: HTTP threads have small stacks */
    unsigned long long seen = 0;
    int n;
    while (seen < limit && (n = mg_read(req->conn, scratch, sizeof scratch)) > 0)
        seen += (unsigned long long)n;
}

/* ------------------------------------------------------------- answers */

static serve_error_kind kind_of_failure(const predict_job *j)
{
    switch (j->status) {
    case NM_ERR_FORMAT: return j->decoded ? ERR_INTERNAL : ERR_BAD_IMAGE;
    case NM_ERR_LIMIT: return ERR_IMAGE_TOO_LARGE;
    case NM_ERR_UNSUPPORTED: return ERR_UNSUPPORTED_IMAGE;
    case NM_ERR_ARG: return j->decoded ? ERR_BAD_IMAGE : ERR_INTERNAL;
    default: return ERR_INTERNAL;
    }
}

/* Milliseconds to the microsecond: finer digits are noise. */
static double ms3(double ms)
{
    return round(ms * 1e3) / 1e3;
}

static void reply_scored(request *req, const predict_job *j)
{
    const stage_times *t = &j->t;
    double total = (serve_now() - req->t0) * 1e3;
    if (j->want != MAP_NONE) {
        char headers[256];
        int anomalous = 0;
        double p_value = 0;
        int n = snprintf(headers, sizeof headers,
                         "X-Nominal-Score: %.9g\r\nX-Nominal-Latency-Ms: %.3f\r\n",
                         (double)j->score, total);
        if (nm_decide(req->s->instances[j->model], j->score, &anomalous, &p_value, NULL) ==
            NM_OK)
            snprintf(headers + n, sizeof headers - (size_t)n,
                     "X-Nominal-Decision: %s\r\nX-Nominal-P-Value: %.6g\r\n",
                     anomalous ? "ANOMALY" : "OK", p_value);
        reply(req, 200, "image/png", j->png, j->png_size, headers);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", req->s->models[j->model].name);
    /* the same number, printed the same way, as `nominal predict --json` */
    cJSON_AddNumberToObject(o, "score", j->score);
    /* decision and p-value as `nominal predict --json` gives them; null for
     * an uncalibrated model (every instance of a model file carries the
     * same calibration, so instance 0's is asked) */
    int anomalous = 0;
    double p_value = 0;
    const nm_model *first = req->s->instances[j->model];
    if (nm_decide(first, j->score, &anomalous, &p_value, NULL) == NM_OK) {
        cJSON_AddStringToObject(o, "decision", anomalous ? "ANOMALY" : "OK");
        cJSON_AddNumberToObject(o, "p_value", p_value);
    } else {
        cJSON_AddNullToObject(o, "decision");
        cJSON_AddNullToObject(o, "p_value");
    }
    cJSON_AddNumberToObject(o, "width", j->width);
    cJSON_AddNumberToObject(o, "height", j->height);
    cJSON *ms = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(ms, "total", ms3(total));
    cJSON_AddNumberToObject(ms, "queue", ms3(t->queue));
    cJSON_AddNumberToObject(ms, "decode", ms3(t->decode));
    cJSON_AddNumberToObject(ms, "preprocess", ms3(t->preprocess));
    cJSON_AddNumberToObject(ms, "backbone", ms3(t->backbone));
    cJSON_AddNumberToObject(ms, "method", ms3(t->method));
    cJSON_AddNumberToObject(ms, "map", ms3(t->map));
    cJSON_AddStringToObject(o, "worker", req->s->name);
    reply_json(req, 200, o, NULL);
    cJSON_Delete(o);
}

void handle_predict(request *req, const char *model_name)
{
    serve *s = req->s;
    const char *method = mg_get_request_info(req->conn)->request_method;
    int m = serve_find_model(s, model_name);
    if (m < 0) {
        reply_error(req, ERR_NOT_FOUND, "no model named '%s' (GET /v1/models lists them)",
                    model_name);
        discard_body(req);
        return;
    }
    req->model = m;
    if (strcmp(method, "POST") != 0) {
        reply_error(req, ERR_METHOD_NOT_ALLOWED, "%s: predict takes a POST with an image",
                    method);
        discard_body(req);
        return;
    }
    predict_job j = {.model = m};
    uint8_t *body;
    if (parse_map(req, &j.want) || check_content_type(req) ||
        read_body(req, &body, &j.size)) {
        discard_body(req);
        return;
    }
    j.body = body;
    pool_task task = {.job = &j};
    switch (pool_run(s->pool, &task, s->opt.timeout_s)) {
    case POOL_DONE:
        j.t.queue = task.queue_ms;
        if (j.status)
            reply_error(req, kind_of_failure(&j), "%s", j.err.msg);
        else
            reply_scored(req, &j);
        metrics_stages(s->metrics, m, &j.t);
        break;
    case POOL_FULL:
        reply_error(req, ERR_OVERLOADED, "all %d workers are busy and %d requests wait",
                    s->workers, s->queue);
        break;
    case POOL_TIMEOUT:
        reply_error(req, ERR_TIMEOUT, "no worker was free within %d s", s->opt.timeout_s);
        break;
    case POOL_STOPPED:
        reply_error(req, ERR_SHUTTING_DOWN, "the server is shutting down");
        break;
    }
    free(j.png);
    free(body);
}
