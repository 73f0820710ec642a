/*
 * A fixed set of worker threads taking tasks from a bounded FIFO queue.
 * Scoring is CPU-bound, so the pool, not the HTTP threads, decides how much
 * runs at once; a full queue refuses work at once (the caller answers 503)
 * instead of letting memory and latency grow without bound.
 */
#ifndef NM_SERVE_POOL_H
#define NM_SERVE_POOL_H

#include "nominal.h"

typedef struct pool pool;

/* Runs one task on worker number `worker` (0 .. workers-1): each worker
 * may own state (its own model instances) indexed by that number. */
typedef void (*pool_run_fn)(void *ctx, int worker, void *job);

typedef enum pool_outcome {
    POOL_DONE,    /* the task ran */
    POOL_FULL,    /* queue at capacity: not queued */
    POOL_TIMEOUT, /* waited too long for a worker: taken off the queue, not run */
    POOL_STOPPED  /* the pool is shutting down: not queued */
} pool_outcome;

/* A task lives in the caller's frame until pool_run returns. */
typedef struct pool_task {
    void *job;
    double queue_ms; /* out: time spent waiting for a worker */
    /* the pool's bookkeeping */
    struct pool_task *next;
    int state;
    double t_queued;
} pool_task;

/* queue_capacity: tasks that may wait while every worker is busy (>= 0). */
nm_status pool_create(int workers, int queue_capacity, pool_run_fn run, void *ctx,
                      pool **out, nm_error *err);

/* Queue t and block until a worker has run it, or until it has waited
 * queue_timeout_s seconds without a worker starting it. */
pool_outcome pool_run(pool *p, pool_task *t, double queue_timeout_s);

/* Snapshot for metrics and health: tasks waiting and tasks running. */
void pool_counts(pool *p, int *queued, int *running);

/* Refuse new tasks, let the workers finish everything queued, join them,
 * and wait until every pool_run caller has returned. */
void pool_destroy(pool *p);

#endif
