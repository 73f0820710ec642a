/*
 * The serve worker pool (src/serve/pool.c): tasks run in FIFO order, a
 * full queue refuses at once, a task that waits past its timeout is taken
 * off the queue and never run, several workers run tasks side by side, and
 * destroying the pool still runs what was queued. Blocking jobs wait on a
 * gate the test opens, so nothing depends on timing except the one
 * timeout, which only has to elapse.
 */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "serve/pool.h"
#include "test_util.h"

typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    int order[16]; /* job ids in the order they ran */
    int n_ran;
} gate;

typedef struct job {
    gate *g;
    int id;
    int block;     /* wait for the gate before returning */
    int worker;    /* out */
    int ran;       /* out */
} job;

static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static void run_job(void *ctx, int worker, void *arg)
{
    (void)ctx;
    job *j = arg;
    pthread_mutex_lock(&j->g->lock);
    j->ran++;
    j->worker = worker;
    j->g->order[j->g->n_ran++] = j->id;
    while (j->block && !j->g->open)
        pthread_cond_wait(&j->g->cond, &j->g->lock);
    pthread_mutex_unlock(&j->g->lock);
}

typedef struct submitter {
    pool *p;
    job *j;
    pool_task task;
    pool_outcome outcome;
    pthread_t tid;
} submitter;

static void *submit_main(void *arg)
{
    submitter *s = arg;
    s->task = (pool_task){.job = s->j};
    s->outcome = pool_run(s->p, &s->task, 60.0);
    return NULL;
}

static void submit_async(submitter *s, pool *p, job *j)
{
    s->p = p;
    s->j = j;
    assert_int_equal(pthread_create(&s->tid, NULL, submit_main, s), 0);
}

/* Poll until the pool shows this many waiting and running tasks. */
static void wait_counts(pool *p, int queued, int running)
{
    for (int i = 0; i < 20000; i++) {
        int q, r;
        pool_counts(p, &q, &r);
        if (q == queued && r == running)
            return;
        usleep(500);
    }
    fail_msg("pool never reached %d queued, %d running", queued, running);
}

static void test_fifo_and_full(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    pool *p = NULL;
    assert_int_equal(pool_create(1, 1, run_job, NULL, &p, NULL), NM_OK);
    job j1 = {.g = &g, .id = 1, .block = 1}, j2 = {.g = &g, .id = 2}, j3 = {.g = &g, .id = 3};
    submitter s1, s2;
    submit_async(&s1, p, &j1);
    wait_counts(p, 0, 1);
    submit_async(&s2, p, &j2);
    wait_counts(p, 1, 1);
    /* one running + one waiting = capacity: the third is refused at once */
    pool_task t3 = {.job = &j3};
    assert_int_equal(pool_run(p, &t3, 60.0), POOL_FULL);
    gate_open(&g);
    pthread_join(s1.tid, NULL);
    pthread_join(s2.tid, NULL);
    assert_int_equal(s1.outcome, POOL_DONE);
    assert_int_equal(s2.outcome, POOL_DONE);
    assert_int_equal(j3.ran, 0);
    assert_int_equal(g.n_ran, 2);
    assert_int_equal(g.order[0], 1);
    assert_int_equal(g.order[1], 2);
    assert_true(s2.task.queue_ms > 0.0);
    pool_destroy(p);
    gate_destroy(&g);
}

static void test_queue_timeout(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    pool *p = NULL;
    assert_int_equal(pool_create(1, 4, run_job, NULL, &p, NULL), NM_OK);
    job j1 = {.g = &g, .id = 1, .block = 1}, j2 = {.g = &g, .id = 2};
    submitter s1;
    submit_async(&s1, p, &j1);
    wait_counts(p, 0, 1);
    pool_task t2 = {.job = &j2};
    assert_int_equal(pool_run(p, &t2, 0.2), POOL_TIMEOUT);
    wait_counts(p, 0, 1); /* taken off the queue */
    gate_open(&g);
    pthread_join(s1.tid, NULL);
    assert_int_equal(s1.outcome, POOL_DONE);
    pool_destroy(p);
    assert_int_equal(j2.ran, 0); /* never run, even after the gate opened */
    gate_destroy(&g);
}

static void test_workers_run_side_by_side(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    pool *p = NULL;
    assert_int_equal(pool_create(3, 0, run_job, NULL, &p, NULL), NM_OK);
    job j[3];
    submitter s[3];
    for (int i = 0; i < 3; i++) {
        j[i] = (job){.g = &g, .id = i, .block = 1};
        submit_async(&s[i], p, &j[i]);
    }
    /* all three blocked at once: only possible on three workers */
    wait_counts(p, 0, 3);
    gate_open(&g);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(s[i].tid, NULL);
        assert_int_equal(s[i].outcome, POOL_DONE);
        assert_int_equal(j[i].ran, 1);
        assert_in_range(j[i].worker, 0, 2);
        seen |= 1 << j[i].worker;
    }
    assert_int_equal(seen, 7);
    pool_destroy(p);
    gate_destroy(&g);
}

typedef struct destroyer {
    pool *p;
    pthread_t tid;
} destroyer;

static void *destroy_main(void *arg)
{
    pool_destroy(((destroyer *)arg)->p);
    return NULL;
}

static void test_destroy_runs_queued(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    pool *p = NULL;
    assert_int_equal(pool_create(1, 2, run_job, NULL, &p, NULL), NM_OK);
    job j1 = {.g = &g, .id = 1, .block = 1}, j2 = {.g = &g, .id = 2};
    submitter s1, s2;
    submit_async(&s1, p, &j1);
    wait_counts(p, 0, 1);
    submit_async(&s2, p, &j2);
    wait_counts(p, 1, 1);
    destroyer d = {.p = p};
    assert_int_equal(pthread_create(&d.tid, NULL, destroy_main, &d), 0);
    gate_open(&g);
    pthread_join(s1.tid, NULL);
    pthread_join(s2.tid, NULL);
    pthread_join(d.tid, NULL);
    assert_int_equal(s2.outcome, POOL_DONE);
    assert_int_equal(j2.ran, 1);
    gate_destroy(&g);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    pool *p = (pool *)&p;
    nm_error err = {0};
    assert_int_equal(pool_create(0, 1, run_job, NULL, &p, &err), NM_ERR_ARG);
    assert_null(p);
    assert_int_equal(pool_create(1, -1, run_job, NULL, &p, &err), NM_ERR_ARG);
    assert_int_equal(pool_create(1, 1, NULL, NULL, &p, &err), NM_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_full),
        cmocka_unit_test(test_queue_timeout),
        cmocka_unit_test(test_workers_run_side_by_side),
        cmocka_unit_test(test_destroy_runs_queued),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
