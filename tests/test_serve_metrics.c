/*
 * The serve metrics text (src/serve/metrics.c) against hand-counted
 * values: request counters by endpoint, model and code (unlisted codes as
 * "other", unknown models as ""), a cumulative latency histogram with its
 * sum and count, stage totals in seconds, and error counts by kind.
 */
#include "serve/metrics.h"
#include "test_util.h"

/* The value of the line that is exactly `series VALUE`, or NULL. */
static const char *find_series(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return line + n + 1;
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    return NULL;
}

static double value_of(const char *text, const char *series)
{
    const char *v = find_series(text, series);
    if (!v)
        fail_msg("no series %s in:\n%s", series, text);
    return atof(v);
}

static void test_counts_and_histogram(void **state)
{
    (void)state;
    const char *names[] = {"bottle", "cable"};
    serve_metrics *m = NULL;
    assert_int_equal(metrics_create(names, 2, &m, NULL), NM_OK);
    metrics_request(m, EP_PREDICT, 0, 200, 0.003);  /* bucket 0.005 */
    metrics_request(m, EP_PREDICT, 0, 200, 0.2);    /* bucket 0.25 */
    metrics_request(m, EP_PREDICT, 0, 503, 0.25);   /* le is inclusive: 0.25 */
    metrics_request(m, EP_PREDICT, 0, 200, 20.0);   /* only +Inf */
    metrics_request(m, EP_PREDICT, -1, 404, 0.001);
    metrics_request(m, EP_PREDICT, 1, 418, 0.01);   /* not a code we send */
    metrics_request(m, EP_HEALTHZ, -1, 200, 0.0);
    metrics_request(m, EP_HEALTHZ, -1, 200, 0.0);
    metrics_error(m, ERR_OVERLOADED);
    metrics_error(m, ERR_BAD_IMAGE);
    metrics_error(m, ERR_BAD_IMAGE);
    stage_times t = {.queue = 1, .decode = 2, .backbone = 1500, .render = 0.5};
    metrics_stages(m, 0, &t);
    metrics_stages(m, 0, &t);
    pool_gauges g = {.workers = 2, .queue_capacity = 4, .queued = 1, .running = 2};
    char *text = metrics_render(m, &g);
    assert_non_null(text);

    assert_int_equal(value_of(text, "nominal_requests_total{endpoint=\"predict\",model=\"bottle\",code=\"200\"}"), 3);
    assert_int_equal(value_of(text, "nominal_requests_total{endpoint=\"predict\",model=\"bottle\",code=\"503\"}"), 1);
    assert_int_equal(value_of(text, "nominal_requests_total{endpoint=\"predict\",model=\"\",code=\"404\"}"), 1);
    assert_int_equal(value_of(text, "nominal_requests_total{endpoint=\"predict\",model=\"cable\",code=\"other\"}"), 1);
    assert_int_equal(value_of(text, "nominal_requests_total{endpoint=\"healthz\",model=\"\",code=\"200\"}"), 2);
    /* series never touched are not printed */
    assert_null(find_series(text, "nominal_requests_total{endpoint=\"predict\",model=\"cable\",code=\"200\"}"));

    const char *b = "nominal_request_duration_seconds_bucket{model=\"bottle\",le=";
    char s[160];
    const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"};
    const int want[] = {1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 4};
    for (int i = 0; i < 12; i++) {
        snprintf(s, sizeof s, "%s\"%s\"}", b, les[i]);
        assert_int_equal(value_of(text, s), want[i]);
    }
    assert_int_equal(value_of(text, "nominal_request_duration_seconds_count{model=\"bottle\"}"), 4);
    assert_float_equal(value_of(text, "nominal_request_duration_seconds_sum{model=\"bottle\"}"), 20.453, 1e-6);
    /* healthz is not in the predict latency histogram */
    assert_int_equal(value_of(text, "nominal_request_duration_seconds_count{model=\"\"}"), 1);

    assert_float_equal(value_of(text, "nominal_stage_seconds_total{model=\"bottle\",stage=\"backbone\"}"), 3.0, 1e-9);
    assert_float_equal(value_of(text, "nominal_stage_seconds_total{model=\"bottle\",stage=\"render\"}"), 0.001, 1e-9);
    assert_float_equal(value_of(text, "nominal_stage_seconds_total{model=\"cable\",stage=\"decode\"}"), 0.0, 0);

    assert_int_equal(value_of(text, "nominal_errors_total{kind=\"bad_image\"}"), 2);
    assert_int_equal(value_of(text, "nominal_errors_total{kind=\"overloaded\"}"), 1);
    assert_int_equal(value_of(text, "nominal_errors_total{kind=\"timeout\"}"), 0);
    assert_int_equal(value_of(text, "nominal_busy_workers"), 2);
    assert_int_equal(value_of(text, "nominal_queue_depth"), 1);
    assert_int_equal(value_of(text, "nominal_queue_capacity"), 4);
    assert_int_equal(value_of(text, "nominal_workers"), 2);
    /* every metric is introduced by HELP and TYPE */
    assert_non_null(strstr(text, "# TYPE nominal_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE nominal_errors_total counter\n"));
    free(text);
    metrics_free(m);
}

static void test_error_kind_names(void **state)
{
    (void)state;
    assert_string_equal(serve_error_kind_name(ERR_IMAGE_TOO_LARGE), "image_too_large");
    assert_string_equal(serve_error_kind_name(ERR_UNSUPPORTED_MEDIA_TYPE), "unsupported_media_type");
    assert_string_equal(serve_error_kind_name(ERR_INTERNAL), "internal");
    assert_string_equal(serve_error_kind_name(ERR_KIND_COUNT), "internal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_histogram),
        cmocka_unit_test(test_error_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
