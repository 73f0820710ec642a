/* What the files of src/serve/ share: the server state and one request. */
#ifndef NM_SERVE_INTERNAL_H
#define NM_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "serve/metrics.h"
#include "serve/pool.h"
#include "serve/server.h"

typedef struct served_model {
    char *name;
    char *path;
    nm_model_info info;  /* of instance 0; strings valid while it is open */
    float colour_top;    /* render scale, the same for every instance */
} served_model;

struct serve {
    serve_options opt;
    char name[128];
    int n_models;
    served_model *models;
    int workers, threads_per_worker, queue;
    nm_model **instances;  /* [workers][n_models] */
    pool *pool;
    serve_metrics *metrics;
    struct mg_context *http;
    /* Graceful stop: civetweb's mg_stop aborts writes in progress, so
     * serve_stop first turns new requests away and waits for these. */
    pthread_mutex_t flight_lock;
    pthread_cond_t flight_done;
    int in_flight;        /* requests inside on_request */
    atomic_int draining;  /* set once: answer 503 and close connections */
};

/* One HTTP request being answered. */
typedef struct request {
    struct mg_connection *conn;
    serve *s;
    double t0;            /* seconds, monotonic */
    serve_endpoint ep;
    int model;            /* index, -1 = none */
    int status;           /* the status sent */
    int body_read;        /* the request body was consumed */
} request;

double serve_now(void);
/* Index of the model served as name, or -1. */
int serve_find_model(const serve *s, const char *name);

/* Responses; each sets req->status. extra_headers: "Name: value\r\n" lines
 * or NULL. */
void reply(request *req, int status, const char *content_type, const void *body,
           size_t size, const char *extra_headers);
void reply_json(request *req, int status, cJSON *body, const char *extra_headers);
/* {"error": {"kind": ..., "message": ...}} with the kind's status code;
 * counted in the metrics. */
void reply_error(request *req, serve_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* POST /v1/models/{name}/predict (name already split off the path). */
void handle_predict(request *req, const char *model_name);

/* The pool's job function: decode and score one predict job. */
void predict_worker_run(void *ctx, int worker, void *job);

/* The browser page served at GET /. */
extern const char SERVE_PAGE_HTML[];

#endif
