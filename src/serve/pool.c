/* Worker pool with a bounded FIFO (see pool.h). */
#include "serve/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"

enum { TASK_QUEUED, TASK_RUNNING, TASK_DONE };

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work;   /* a task was queued, or stopping */
    pthread_cond_t done;   /* some task finished (waiters check their own) */
    pool_task *head, *tail;
    int queued, running, capacity, stopping;
    int callers;           /* threads inside pool_run */
    pool_run_fn run;
    void *ctx;
    int n_threads;         /* started, to join */
    pthread_t *threads;
};

typedef struct worker_arg {
    pool *p;
    int index;
} worker_arg;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static pool_task *take_head(pool *p)
{
    pool_task *t = p->head;
    p->head = t->next;
    if (!p->head)
        p->tail = NULL;
    p->queued--;
    return t;
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    pool *p = wa.p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (!p->head)
            break; /* stopping and nothing left */
        pool_task *t = take_head(p);
        t->state = TASK_RUNNING;
        t->queue_ms = now_ms() - t->t_queued;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        p->run(p->ctx, wa.index, t->job);
        pthread_mutex_lock(&p->lock);
        t->state = TASK_DONE;
        p->running--;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

nm_status pool_create(int workers, int queue_capacity, pool_run_fn run, void *ctx,
                      pool **out, nm_error *err)
{
    *out = NULL;
    if (workers < 1 || queue_capacity < 0 || !run)
        return nm_fail(err, NM_ERR_ARG, "pool: %d workers, queue %d", workers, queue_capacity);
    pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)workers, sizeof *p->threads))) {
        free(p);
        return nm_fail(err, NM_ERR_NOMEM, "pool: out of memory");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* queue timeouts must not jump with the wall clock */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    p->capacity = queue_capacity;
    p->run = run;
    p->ctx = ctx;
    for (int i = 0; i < workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        int rc = wa ? 0 : ENOMEM;
        if (wa) {
            *wa = (worker_arg){p, i};
            rc = pthread_create(&p->threads[i], NULL, worker_main, wa);
            if (rc)
                free(wa);
        }
        if (rc) {
            pool_destroy(p);
            return nm_fail(err, NM_ERR_NOMEM, "pool: cannot start worker %d of %d", i + 1,
                           workers);
        }
        p->n_threads++;
    }
    *out = p;
    return NM_OK;
}

static void unlink_task(pool *p, pool_task *t)
{
    pool_task **link = &p->head, *prev = NULL;
    while (*link && *link != t) {
        prev = *link;
        link = &(*link)->next;
    }
    if (!*link)
        return;
    *link = t->next;
    if (p->tail == t)
        p->tail = prev;
    p->queued--;
}

static struct timespec deadline_after(double seconds)
{
    struct timespec d;
    clock_gettime(CLOCK_MONOTONIC, &d);
    double whole = (double)(long)seconds;
    d.tv_sec += (time_t)whole;
    d.tv_nsec += (long)((seconds - whole) * 1e9);
    if (d.tv_nsec >= 1000000000L) {
        d.tv_sec++;
        d.tv_nsec -= 1000000000L;
    }
    return d;
}

/* Called with the lock held; t is queued. */
static pool_outcome wait_for(pool *p, pool_task *t, double queue_timeout_s)
{
    struct timespec deadline = deadline_after(queue_timeout_s);
    while (t->state != TASK_DONE) {
        if (t->state == TASK_RUNNING) {
            /* started: it cannot be interrupted, and it is bounded */
            pthread_cond_wait(&p->done, &p->lock);
        } else if (pthread_cond_timedwait(&p->done, &p->lock, &deadline) == ETIMEDOUT &&
                   t->state == TASK_QUEUED) {
            unlink_task(p, t);
            return POOL_TIMEOUT;
        }
    }
    return POOL_DONE;
}

pool_outcome pool_run(pool *p, pool_task *t, double queue_timeout_s)
{
    pool_outcome outcome;
    pthread_mutex_lock(&p->lock);
    p->callers++;
    if (p->stopping) {
        outcome = POOL_STOPPED;
    } else if (p->queued + p->running >= p->n_threads + p->capacity) {
        /* Room for one task per worker plus `capacity` waiting ones (a task
         * a worker has not picked up yet counts as waiting until it does). */
        outcome = POOL_FULL;
    } else {
        t->next = NULL;
        t->state = TASK_QUEUED;
        t->t_queued = now_ms();
        t->queue_ms = 0;
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->queued++;
        pthread_cond_signal(&p->work);
        outcome = wait_for(p, t, queue_timeout_s);
    }
    /* pool_destroy waits for the last caller to leave */
    if (--p->callers == 0 && p->stopping)
        pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->lock);
    return outcome;
}

void pool_counts(pool *p, int *queued, int *running)
{
    pthread_mutex_lock(&p->lock);
    *queued = p->queued;
    *running = p->running;
    pthread_mutex_unlock(&p->lock);
}

void pool_destroy(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    /* callers whose tasks just finished may still be on their way out */
    pthread_mutex_lock(&p->lock);
    while (p->callers > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
