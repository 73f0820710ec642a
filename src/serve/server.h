/*
 * `nominal serve`: an HTTP inspection service (civetweb). Models are loaded
 * once, one instance per scoring worker (nm_model_score keeps per-model
 * scratch buffers, so one instance must never score two images at once).
 */
#ifndef NM_SERVE_SERVER_H
#define NM_SERVE_SERVER_H

#include <stddef.h>

#include "nominal.h"

typedef struct serve_options {
    const char *const *model_paths; /* each served as its file name without extension */
    int n_models;
    const char *listen;       /* civetweb listening_ports syntax: "127.0.0.1:8080" */
    int workers;              /* images scored at once; 0 = from threads */
    int threads;              /* compute threads in all; 0 = all cores */
    int queue;                /* requests that may wait for a worker; -1 = 2 x workers */
    size_t max_body;          /* bytes of one request body */
    size_t max_pixels;        /* decoded image size limit */
    int timeout_s;            /* longest wait for a body to arrive or for a worker */
    const char *name;         /* X-Nominal-Worker header; NULL = the process id */
    const char *demo_dir;     /* serve its images at /demo/NAME; NULL = off */
} serve_options;

void serve_options_default(serve_options *o);

typedef struct serve serve;

/* Load the models, start the workers and listen. On success the server
 * answers requests from its own threads until serve_stop. */
nm_status serve_start(const serve_options *o, serve **out, nm_error *err);

/* What the server settled on (valid until serve_stop). */
int serve_workers(const serve *s);
int serve_threads_per_worker(const serve *s);
const char *serve_name(const serve *s);

/* Graceful stop: close the listening socket, finish the requests in
 * flight, then free everything. */
void serve_stop(serve *s);

#endif
