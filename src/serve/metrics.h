/*
 * Counters behind GET /metrics (Prometheus text format 0.0.4): requests by
 * endpoint, model and status code, a latency histogram per model, the time
 * spent in each stage, and errors by kind. All label values come from fixed
 * tables (model names known at start), so no request can grow the series.
 */
#ifndef NM_SERVE_METRICS_H
#define NM_SERVE_METRICS_H

#include "nominal.h"

typedef enum serve_endpoint {
    EP_PREDICT,
    EP_MODELS,
    EP_HEALTHZ,
    EP_METRICS,
    EP_PAGE,
    EP_DEMO,
    EP_OTHER,
    EP_COUNT
} serve_endpoint;

/* What went wrong, as the "kind" of an error response and a metrics label. */
typedef enum serve_error_kind {
    ERR_BAD_REQUEST,
    ERR_NOT_FOUND,
    ERR_METHOD_NOT_ALLOWED,
    ERR_UNSUPPORTED_MEDIA_TYPE,
    ERR_BODY_TOO_LARGE,
    ERR_EMPTY_BODY,
    ERR_TRUNCATED_BODY,
    ERR_BAD_IMAGE,
    ERR_IMAGE_TOO_LARGE,
    ERR_UNSUPPORTED_IMAGE,
    ERR_OVERLOADED,
    ERR_TIMEOUT,
    ERR_SHUTTING_DOWN,
    ERR_INTERNAL,
    ERR_KIND_COUNT
} serve_error_kind;

const char *serve_error_kind_name(serve_error_kind kind);

/* Milliseconds spent in each stage of one scored image. */
typedef struct stage_times {
    double queue, decode, preprocess, backbone, method, map, render;
} stage_times;

typedef struct serve_metrics serve_metrics;

nm_status metrics_create(const char *const *model_names, int n_models,
                         serve_metrics **out, nm_error *err);
void metrics_free(serve_metrics *m);

/* model: index into model_names, or -1 (none / unknown). */
void metrics_request(serve_metrics *m, serve_endpoint ep, int model, int status,
                     double seconds);
void metrics_error(serve_metrics *m, serve_error_kind kind);
void metrics_stages(serve_metrics *m, int model, const stage_times *t);

/* Gauges sampled at scrape time. */
typedef struct pool_gauges {
    int workers, queue_capacity, queued, running;
} pool_gauges;

/* The exposition text, malloc'ed (NULL when out of memory). */
char *metrics_render(serve_metrics *m, const pool_gauges *g);

#endif
