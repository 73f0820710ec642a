/* Prometheus counters for `nominal serve` (see metrics.h). */
#include "serve/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const ENDPOINT_NAMES[EP_COUNT] = {
    "predict", "models", "healthz", "metrics", "page", "demo", "other"};

static const char *const ERROR_NAMES[ERR_KIND_COUNT] = {
    "bad_request", "not_found", "method_not_allowed", "unsupported_media_type",
    "body_too_large", "empty_body", "truncated_body", "bad_image", "image_too_large",
    "unsupported_image", "overloaded", "timeout", "shutting_down", "internal"};

/* Every status code the server sends; anything else is counted as "other". */
static const int CODES[] = {200, 400, 404, 405, 413, 415, 500, 503};
#define N_CODES ((int)(sizeof CODES / sizeof CODES[0]) + 1)

/* Upper bounds in seconds: from a fast image on many cores to a huge one. */
static const double BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS ((int)(sizeof BUCKETS / sizeof BUCKETS[0]))

#define N_STAGES 7
static const char *const STAGE_NAMES[N_STAGES] = {
    "queue", "decode", "preprocess", "backbone", "method", "map", "render"};

/* Per model slot (slot 0 = no/unknown model, then one per model). */
typedef struct model_counts {
    unsigned long long requests[EP_COUNT][N_CODES];
    unsigned long long latency_buckets[N_BUCKETS]; /* not cumulative here */
    unsigned long long latency_count;
    double latency_sum;
    double stage_ms[N_STAGES];
} model_counts;

struct serve_metrics {
    pthread_mutex_t lock;
    int n_slots;
    char **names;          /* [n_slots], slot 0 = "" */
    model_counts *slots;
    unsigned long long errors[ERR_KIND_COUNT];
};

const char *serve_error_kind_name(serve_error_kind kind)
{
    return kind >= 0 && kind < ERR_KIND_COUNT ? ERROR_NAMES[kind] : "internal";
}

nm_status metrics_create(const char *const *model_names, int n_models,
                         serve_metrics **out, nm_error *err)
{
    *out = NULL;
    serve_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return nm_fail(err, NM_ERR_NOMEM, "metrics: out of memory");
    m->n_slots = n_models + 1;
    m->names = calloc((size_t)m->n_slots, sizeof *m->names);
    m->slots = calloc((size_t)m->n_slots, sizeof *m->slots);
    int ok = m->names && m->slots && (m->names[0] = strdup(""));
    for (int i = 0; ok && i < n_models; i++)
        ok = (m->names[i + 1] = strdup(model_names[i])) != NULL;
    pthread_mutex_init(&m->lock, NULL);
    if (!ok) {
        metrics_free(m);
        return nm_fail(err, NM_ERR_NOMEM, "metrics: out of memory");
    }
    *out = m;
    return NM_OK;
}

void metrics_free(serve_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; m->names && i < m->n_slots; i++)
        free(m->names[i]);
    free(m->names);
    free(m->slots);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static model_counts *slot(serve_metrics *m, int model)
{
    return &m->slots[model >= 0 && model + 1 < m->n_slots ? model + 1 : 0];
}

static int code_index(int status)
{
    for (int i = 0; i < N_CODES - 1; i++)
        if (CODES[i] == status)
            return i;
    return N_CODES - 1;
}

void metrics_request(serve_metrics *m, serve_endpoint ep, int model, int status,
                     double seconds)
{
    if (ep < 0 || ep >= EP_COUNT)
        ep = EP_OTHER;
    pthread_mutex_lock(&m->lock);
    model_counts *c = slot(m, model);
    c->requests[ep][code_index(status)]++;
    if (ep == EP_PREDICT) {
        int b = 0;
        while (b < N_BUCKETS && seconds > BUCKETS[b])
            b++;
        if (b < N_BUCKETS)
            c->latency_buckets[b]++;
        c->latency_count++;
        c->latency_sum += seconds;
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_error(serve_metrics *m, serve_error_kind kind)
{
    if (kind < 0 || kind >= ERR_KIND_COUNT)
        kind = ERR_INTERNAL;
    pthread_mutex_lock(&m->lock);
    m->errors[kind]++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_stages(serve_metrics *m, int model, const stage_times *t)
{
    const double ms[N_STAGES] = {t->queue, t->decode, t->preprocess, t->backbone,
                                 t->method, t->map, t->render};
    pthread_mutex_lock(&m->lock);
    model_counts *c = slot(m, model);
    for (int s = 0; s < N_STAGES; s++)
        c->stage_ms[s] += ms[s];
    pthread_mutex_unlock(&m->lock);
}

static void render_requests(const serve_metrics *m, FILE *f)
{
    fprintf(f, "# HELP nominal_requests_total HTTP requests answered, by endpoint, model "
               "and status code.\n# TYPE nominal_requests_total counter\n");
    for (int s = 0; s < m->n_slots; s++)
        for (int e = 0; e < EP_COUNT; e++)
            for (int k = 0; k < N_CODES; k++) {
                unsigned long long n = m->slots[s].requests[e][k];
                if (!n)
                    continue;
                char code[8];
                if (k < N_CODES - 1)
                    snprintf(code, sizeof code, "%d", CODES[k]);
                else
                    snprintf(code, sizeof code, "other");
                fprintf(f, "nominal_requests_total{endpoint=\"%s\",model=\"%s\",code=\"%s\"} %llu\n",
                        ENDPOINT_NAMES[e], m->names[s], code, n);
            }
}

static void render_latency(const serve_metrics *m, FILE *f)
{
    fprintf(f, "# HELP nominal_request_duration_seconds Time to answer a predict request, "
               "from its first byte read to the response.\n"
               "# TYPE nominal_request_duration_seconds histogram\n");
    for (int s = 0; s < m->n_slots; s++) {
        const model_counts *c = &m->slots[s];
        if (!c->latency_count)
            continue;
        unsigned long long cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += c->latency_buckets[b];
            fprintf(f, "nominal_request_duration_seconds_bucket{model=\"%s\",le=\"%g\"} %llu\n",
                    m->names[s], BUCKETS[b], cum);
        }
        fprintf(f, "nominal_request_duration_seconds_bucket{model=\"%s\",le=\"+Inf\"} %llu\n",
                m->names[s], c->latency_count);
        fprintf(f, "nominal_request_duration_seconds_sum{model=\"%s\"} %.6f\n", m->names[s],
                c->latency_sum);
        fprintf(f, "nominal_request_duration_seconds_count{model=\"%s\"} %llu\n", m->names[s],
                c->latency_count);
    }
    fprintf(f, "# HELP nominal_stage_seconds_total Time spent in each stage of scoring.\n"
               "# TYPE nominal_stage_seconds_total counter\n");
    for (int s = 1; s < m->n_slots; s++)
        for (int k = 0; k < N_STAGES; k++)
            fprintf(f, "nominal_stage_seconds_total{model=\"%s\",stage=\"%s\"} %.6f\n",
                    m->names[s], STAGE_NAMES[k], m->slots[s].stage_ms[k] * 1e-3);
}

char *metrics_render(serve_metrics *m, const pool_gauges *g)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->lock);
    render_requests(m, f);
    render_latency(m, f);
    fprintf(f, "# HELP nominal_errors_total Error responses, by kind.\n"
               "# TYPE nominal_errors_total counter\n");
    for (int k = 0; k < ERR_KIND_COUNT; k++)
        fprintf(f, "nominal_errors_total{kind=\"%s\"} %llu\n", ERROR_NAMES[k], m->errors[k]);
    pthread_mutex_unlock(&m->lock);
    fprintf(f, "# HELP nominal_workers Scoring workers.\n# TYPE nominal_workers gauge\n"
               "nominal_workers %d\n", g->workers);
    fprintf(f, "# HELP nominal_busy_workers Workers scoring an image now.\n"
               "# TYPE nominal_busy_workers gauge\nnominal_busy_workers %d\n", g->running);
    fprintf(f, "# HELP nominal_queue_depth Requests waiting for a worker.\n"
               "# TYPE nominal_queue_depth gauge\nnominal_queue_depth %d\n", g->queued);
    fprintf(f, "# HELP nominal_queue_capacity Requests that may wait before 503.\n"
               "# TYPE nominal_queue_capacity gauge\nnominal_queue_capacity %d\n",
            g->queue_capacity);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
