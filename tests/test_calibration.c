/*
 * Calibration arithmetic against hand-computed cases: the conformal order
 * statistic k = floor(alpha (n+1)) and its limits, the exact rank
 * guarantee (every one of n+1 exchangeable values in turn), ties, p-values
 * and their equivalence with the threshold rule, FNR and F1 thresholds,
 * exact pixel quantiles, the hold-out split, and the CALI JSON round trip
 * with the damage it must refuse.
 */
#include "test_util.h"

#include "methods/calibration.h"

static void _fail_msg_near(double a, double b, const char *file, int line)
{
    fprintf(stderr, "%s:%d: %.17g != %.17g\n", file, line, a, b);
    fail();
}

/* This cmocka has no assert_double_equal. */
#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *file, int line)
{
    if (!(fabs(a - b) <= tol))
        _fail_msg_near(a, b, file, line);
}

static const float ten[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* ------------------------------------------------------------- k and n */

static void test_k_hand_cases(void **state)
{
    (void)state;
    assert_int_equal(calib_conformal_k(20, 0.05), 1);  /* 0.05 * 21 = 1.05 */
    assert_int_equal(calib_conformal_k(19, 0.05), 1);  /* 0.05 * 20 = 1, exactly */
    assert_int_equal(calib_conformal_k(18, 0.05), 0);  /* 0.95: impossible */
    assert_int_equal(calib_conformal_k(21, 0.05), 1);  /* 1.1 */
    assert_int_equal(calib_conformal_k(39, 0.05), 2);  /* 2.0 */
    assert_int_equal(calib_conformal_k(99, 0.01), 1);
    assert_int_equal(calib_conformal_k(98, 0.01), 0);
    assert_int_equal(calib_conformal_k(199, 0.01), 2);
    /* 0.29 * 100 is 28.999999999999996 in binary: still 29 */
    assert_int_equal(calib_conformal_k(99, 0.29), 29);
    assert_int_equal(calib_conformal_k(10, 0.5), 5);   /* 5.5 */
    assert_int_equal(calib_conformal_k(0, 0.5), 0);
    assert_int_equal(calib_conformal_k(10, 0), 0);
    assert_int_equal(calib_conformal_k(10, 1), 0);
}

static void test_min_n(void **state)
{
    (void)state;
    assert_int_equal(calib_min_n(0.05), 19);
    assert_int_equal(calib_min_n(0.01), 99);
    assert_int_equal(calib_min_n(0.001), 999);
    assert_int_equal(calib_min_n(0.3), 3); /* 0.3 * 4 = 1.2; 0.3 * 3 = 0.9 */
    assert_int_equal(calib_min_n(1.0 / 21), 20);
    assert_int_equal(nm_calibration_min_images(0.05), 19);
    for (double a = 0.003; a < 0.9; a *= 1.37) { /* the smallest n, not just enough */
        long n = calib_min_n(a);
        assert_true(calib_conformal_k((int)n, a) >= 1);
        assert_true(n == 1 || calib_conformal_k((int)n - 1, a) == 0);
    }
}

static void test_fpr_threshold_is_kth_largest(void **state)
{
    (void)state;
    float s[20];
    for (int i = 0; i < 20; i++)
        s[i] = (float)i * 0.5f; /* ascending, max 9.5 */
    float t;
    int k;
    nm_error err = {0};
    assert_int_equal(calib_fpr_threshold(s, 20, 0.05, "good images", &t, &k, &err), NM_OK);
    assert_int_equal(k, 1);
    assert_true(t == 9.5f); /* n = 20, alpha = 0.05: the maximum */
    assert_int_equal(calib_fpr_threshold(s, 20, 0.2, "good images", &t, &k, &err), NM_OK);
    assert_int_equal(k, 4); /* 0.2 * 21 = 4.2 */
    assert_true(t == 8.0f); /* 4th largest: 9.5 9 8.5 8 */
    assert_int_equal(calib_fpr_threshold(s, 18, 0.05, "good images", &t, &k, &err),
                     NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "not achievable with 18 good images"));
    assert_non_null(strstr(err.msg, "1/19"));
    assert_non_null(strstr(err.msg, "at least 19 good images"));
    assert_int_equal(calib_fpr_threshold(s, 20, 0.01, "good images", &t, &k, &err),
                     NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "at least 99 good images"));
}

/* The guarantee itself, exactly: with n + 1 values, take each in turn as
 * the new image and the other n as calibration. Distinct values: exactly
 * k of the n + 1 are flagged (so P = k/(n+1) under exchangeability).
 * With ties: at most k. */
static int flagged_count(const float *all, int n_plus_1, double alpha, int *k_out)
{
    int n = n_plus_1 - 1, flagged = 0;
    float *cal = malloc(sizeof(float) * (size_t)n);
    for (int j = 0; j < n_plus_1; j++) {
        int m = 0;
        for (int i = 0; i < n_plus_1; i++)
            if (i != j)
                cal[m++] = all[i];
        float *sorted;
        assert_int_equal(calib_sorted_copy(cal, n, "good images", &sorted, NULL), NM_OK);
        float t;
        assert_int_equal(calib_fpr_threshold(sorted, n, alpha, "x", &t, k_out, NULL), NM_OK);
        flagged += all[j] > t;
        /* the p-value says the same: flagged <=> p <= k/(n+1) */
        double p = calib_p_value(sorted, n, all[j]);
        assert_int_equal(all[j] > t, p <= (double)*k_out / (n + 1) + 1e-12);
        free(sorted);
    }
    free(cal);
    return flagged;
}

static void test_exact_rank_guarantee(void **state)
{
    (void)state;
    float v[21];
    uint32_t x = 12345;
    for (int i = 0; i < 21; i++) { /* distinct, in no order */
        x = x * 1664525u + 1013904223u;
        v[i] = (float)(x >> 8) + (float)i * 0.25f;
    }
    int k;
    assert_int_equal(flagged_count(v, 21, 0.05, &k), 1);
    assert_int_equal(k, 1);
    assert_int_equal(flagged_count(v, 21, 0.2, &k), 4);
    assert_int_equal(k, 4);
    /* ties: many equal values, never more than k flagged */
    float tied[21];
    for (int i = 0; i < 21; i++)
        tied[i] = (float)(i % 3);
    assert_true(flagged_count(tied, 21, 0.2, &k) <= k);
    assert_int_equal(flagged_count(tied, 21, 0.2, &k), 0); /* t = 2 = the max */
    float two_top[21];
    for (int i = 0; i < 21; i++)
        two_top[i] = i < 19 ? (float)i : 100.0f; /* two equal largest */
    /* k = 1: each 100 meets the other 100 as threshold: never flagged */
    assert_int_equal(flagged_count(two_top, 21, 0.05, &k), 0);
    /* k = 2: t = 18 for each 100, so both are flagged: exactly k */
    assert_int_equal(flagged_count(two_top, 21, 0.1, &k), 2);
    assert_int_equal(k, 2);
}

static void test_ties_score_equal_threshold_is_ok(void **state)
{
    (void)state;
    const float s[] = {1, 2, 3, 3, 3};
    float t;
    int k;
    /* 0.34 * 6 = 2.04: k = 2, the 2nd largest is 3 */
    assert_int_equal(calib_fpr_threshold(s, 5, 0.34, "x", &t, &k, NULL), NM_OK);
    assert_int_equal(k, 2);
    assert_true(t == 3.0f);
    assert_int_equal(calib_count_above(s, 5, t), 0); /* no calibration score flagged */
    assert_int_equal(calib_count_above(s, 5, 2.0f), 3);
    assert_int_equal(calib_count_at_least(s, 5, 3.0f), 3);
    assert_int_equal(calib_count_at_least(s, 5, 3.5f), 0);
}

static void test_p_values(void **state)
{
    (void)state;
    const float s[] = {1, 2, 3, 4};
    assert_near(calib_p_value(s, 4, 2.5f), 3.0 / 5, 1e-15);
    assert_near(calib_p_value(s, 4, 4.0f), 2.0 / 5, 1e-15); /* tie counts */
    assert_near(calib_p_value(s, 4, 4.5f), 1.0 / 5, 1e-15);
    assert_near(calib_p_value(s, 4, 0.0f), 5.0 / 5, 1e-15);
    assert_near(calib_p_value(s, 4, 1.0f), 5.0 / 5, 1e-15);
    assert_near(calib_p_value(ten, 10, 10.0f), 2.0 / 11, 1e-15);
}

/* ------------------------------------------------------ FNR, F1, pixels */

static void test_fnr_threshold(void **state)
{
    (void)state;
    const float bad[] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    float t;
    int k;
    nm_error err = {0};
    /* 0.2 * 11 = 2.2: k = 2, just below the 2nd smallest (6) */
    assert_int_equal(calib_fnr_threshold(bad, 10, 0.2, &t, &k, &err), NM_OK);
    assert_int_equal(k, 2);
    assert_true(t < 6.0f && t > 5.0f);
    assert_true(nextafterf(t, INFINITY) == 6.0f);
    assert_false(5.0f > t); /* missed */
    assert_true(6.0f > t);  /* caught */
    assert_int_equal(calib_fnr_threshold(bad, 10, 0.05, &t, &k, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "at least 19 bad images"));
}

static void test_f1_threshold(void **state)
{
    (void)state;
    double f1;
    /* t=4: TP 3, FP 1 -> 6/7; t=5: TP 2, FN 1 -> 4/5; t=3: FP 2 -> 6/8 */
    const float g1[] = {1, 2, 3, 4, 5}, b1[] = {4.5f, 6, 7};
    assert_true(calib_f1_threshold(g1, 5, b1, 3, &f1) == 4.0f);
    assert_near(f1, 6.0 / 7, 1e-12);
    /* below 1 and at 10 both give 2/3: the larger wins */
    const float g2[] = {2, 10}, b2[] = {1, 11};
    assert_true(calib_f1_threshold(g2, 2, b2, 2, &f1) == 10.0f);
    assert_near(f1, 2.0 / 3, 1e-12);
    /* separable: F1 = 1 at the largest good score */
    assert_true(calib_f1_threshold(ten, 5, ten + 5, 5, &f1) == 5.0f);
    assert_near(f1, 1.0, 1e-12);
    /* every bad below every good: flag everything (t below the minimum) */
    const float g3[] = {10, 11}, b3[] = {1, 2};
    float t = calib_f1_threshold(g3, 2, b3, 2, &f1);
    assert_true(t < 1.0f);
    assert_near(f1, 4.0 / 6, 1e-12);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_kth_largest_matches_sort(void **state)
{
    (void)state;
    size_t n = 5000;
    float *v = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
    uint32_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        /* negatives, zeros, ties, and values sharing their top 16 bits */
        v[i] = i % 7 == 0 ? 0.0f : (float)((int)(x >> 20) - 2048) / 64.0f + (float)(i % 3) * 1e-6f;
    }
    memcpy(s, v, n * sizeof(float));
    qsort(s, n, sizeof(float), cmp_float);
    size_t ks[] = {1, 2, 50, 777, 2500, 4999, 5000};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        float got;
        assert_int_equal(calib_kth_largest(v, n, ks[i], &got, NULL), NM_OK);
        assert_true(got == s[n - ks[i]]);
    }
    float got;
    assert_int_equal(calib_kth_largest(v, n, 0, &got, NULL), NM_ERR_ARG);
    v[3] = NAN;
    assert_int_equal(calib_kth_largest(v, n, 1, &got, NULL), NM_ERR_ARG);
    free(v);
    free(s);
}

static void test_pixel_threshold(void **state)
{
    (void)state;
    float pixels[1000];
    for (int i = 0; i < 1000; i++)
        pixels[(i * 37) % 1000] = (float)i; /* 0..999, shuffled */
    const float defect[] = {985, 990, 991, 995};
    nm_calibration_data d = {.good_scores = ten, .n_good = 10, .good_pixels = pixels,
                             .n_good_pixels = 1000, .defect_pixels = defect,
                             .n_defect_pixels = 4};
    nm_calibration_target t = {NM_CALIBRATE_FPR, 0.5, 0.01};
    calibration *c = NULL;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    /* 0.01 * 1001 = 10.01: the 10th largest of 0..999 is 990 */
    assert_int_equal(c->pub.has_pixel_threshold, 1);
    assert_true(c->pub.pixel_threshold == 990.0f);
    assert_near(c->pub.pixel_fpr_good, 9.0 / 1000, 1e-15);
    assert_near(c->pub.pixel_fnr_bad, 2.0 / 4, 1e-15); /* 985 and 990 */
    calibration_free(c);
    t.pixel_fpr = 0.0001; /* 0.1 pixel of 1000 */
    nm_error err = {0};
    assert_int_equal(calibration_build(&d, &t, &c, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "pixel FPR"));
}

/* ------------------------------------------------------------ building */

static void test_build_fpr_and_table(void **state)
{
    (void)state;
    float good[20];
    for (int i = 0; i < 20; i++)
        good[i] = (float)((i * 7) % 20); /* 0..19, shuffled */
    const float bad[] = {18.5f, 25, 30, 40};
    nm_calibration_data d = {.good_scores = good, .n_good = 20, .bad_scores = bad, .n_bad = 4,
                             .good_source = "g", .bad_source = "b"};
    nm_calibration_target t = {NM_CALIBRATE_FPR, 0.05, 0};
    calibration *c = NULL;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    const nm_calibration *p = &c->pub;
    assert_true(p->threshold == 19.0f);
    assert_int_equal(p->k, 1);
    assert_near(p->fpr_bound, 1.0 / 21, 1e-15);
    assert_near(p->fpr_good, 0.0, 0);
    assert_near(p->fnr_bad, 1.0 / 4, 1e-15); /* 18.5 <= 19 */
    assert_near(p->fnr_bound, 2.0 / 5, 1e-15);
    assert_string_equal(p->good_source, "g");
    for (int i = 1; i < 20; i++)
        assert_true(p->good_scores[i - 1] <= p->good_scores[i]);
    /* rows: alpha 0.05 (19), 0.1 (k=2: 18), 0.2 (k=4: 16), F1 (18: TP 4, FP 1) */
    assert_int_equal(p->n_table, 3);
    assert_true(p->table[0].threshold == 19.0f && p->table[1].threshold == 18.0f &&
                p->table[2].threshold == 16.0f);
    assert_near(p->table[1].fpr_good, 1.0 / 20, 1e-15);
    assert_near(p->table[1].fpr_bound, 2.0 / 21, 1e-15);
    assert_near(p->table[1].fnr_bad, 0.0, 0);
    assert_near(p->table[2].fpr_bound, 4.0 / 21, 1e-15);
    calibration_free(c);

    /* the default target: max(0.01, 1/(n+1)) */
    t.target = 0;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    assert_near(c->pub.target, 1.0 / 21, 1e-15);
    assert_int_equal(c->pub.k, 1);
    calibration_free(c);
}

static void test_build_fnr_f1_and_errors(void **state)
{
    (void)state;
    const float bad[] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    nm_calibration_data d = {.good_scores = ten, .n_good = 10, .bad_scores = bad, .n_bad = 10};
    nm_calibration_target t = {NM_CALIBRATE_FNR, 0.2, 0};
    calibration *c = NULL;
    nm_error err = {0};
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    assert_true(c->pub.threshold < 6.0f && c->pub.threshold > 5.0f);
    assert_near(c->pub.fnr_bad, 0.1, 1e-15);
    assert_near(c->pub.fnr_bound, 2.0 / 11, 1e-15);
    assert_near(c->pub.fpr_good, 0.5, 1e-15); /* 6..10 of 1..10 */
    assert_near(c->pub.fpr_bound, 6.0 / 11, 1e-15);
    calibration_free(c);

    t.kind = NM_CALIBRATE_F1;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    assert_int_equal(c->pub.k, 0);
    calibration_free(c);

    d.n_bad = 0;
    assert_int_equal(calibration_build(&d, &t, &c, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "needs bad images"));
    float nan_scores[] = {1, NAN, 3};
    d.good_scores = nan_scores;
    d.n_good = 3;
    t.kind = NM_CALIBRATE_FPR;
    t.target = 0.5;
    assert_int_equal(calibration_build(&d, &t, &c, &err), NM_ERR_ARG);
    assert_non_null(strstr(err.msg, "not finite"));
    assert_null(c);
}

static void test_holdout_pick(void **state)
{
    (void)state;
    unsigned char a[209], b[209];
    assert_int_equal(calib_holdout_pick(209, 0.1, 0, a), 21);
    assert_int_equal(calib_holdout_pick(209, 0.1, 0, b), 21);
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    int n = 0;
    for (int i = 0; i < 209; i++)
        n += a[i];
    assert_int_equal(n, 21);
    assert_int_equal(calib_holdout_pick(209, 0.1, 1, b), 21);
    assert_memory_not_equal(a, b, sizeof a); /* the seed matters */
    assert_int_equal(calib_holdout_pick(5, 0.01, 0, a), 1);  /* at least one */
    assert_int_equal(calib_holdout_pick(2, 0.99, 0, a), 1);  /* one left to train */
    assert_int_equal(calib_holdout_pick(1, 0.5, 0, a), -1);
    assert_int_equal(calib_holdout_pick(10, 0, 0, a), -1);
}

/* ---------------------------------------------------------------- JSON */

static char *json_of(const calibration *c)
{
    cJSON *o = calibration_to_json(&c->pub);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static calibration *sample(void)
{
    static const float good[] = {0.91f, 1.37114716f, 0.7f, 1.0000001f, 0.5f};
    static const float bad[] = {3.5f, 1.2f};
    static const float px[] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f};
    static const char *held[] = {"a/000.png", "a/017.png"};
    nm_calibration_data d = {.good_scores = good, .n_good = 5, .bad_scores = bad, .n_bad = 2,
                             .good_pixels = px, .n_good_pixels = 10,
                             .good_source = "good dir", .held_out = held, .n_held_out = 2};
    nm_calibration_target t = {NM_CALIBRATE_FPR, 0.34, 0.2};
    calibration *c = NULL;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    return c;
}

static void test_json_round_trip(void **state)
{
    (void)state;
    calibration *c = sample(), *r = NULL;
    char *s = json_of(c);
    assert_int_equal(calibration_from_json(s, strlen(s), "m.nmm", &r, NULL), NM_OK);
    const nm_calibration *a = &c->pub, *b = &r->pub;
    assert_int_equal(a->kind, b->kind);
    assert_true(a->threshold == b->threshold);
    assert_int_equal(a->n_good, b->n_good);
    assert_memory_equal(a->good_scores, b->good_scores, sizeof(float) * 5); /* bit-exact */
    assert_true(a->pixel_threshold == b->pixel_threshold);
    assert_int_equal(b->n_held_out, 2);
    assert_string_equal(b->held_out[1], "a/017.png");
    assert_string_equal(b->good_source, "good dir");
    assert_null(b->bad_source);
    assert_int_equal(a->n_table, b->n_table);
    assert_near(a->fnr_bad, b->fnr_bad, 0);
    assert_string_equal(a->created, b->created);
    char *s2 = json_of(r); /* and again: identical text */
    assert_string_equal(s, s2);
    free(s2);
    free(s);
    calibration_free(r);
    calibration_free(c);
}

/* Replace the first `from` in the JSON with `to` and expect refusal. */
static void expect_refused(const char *json, const char *from, const char *to,
                           nm_status code, const char *msg_part)
{
    const char *at = strstr(json, from);
    assert_non_null(at);
    size_t n = strlen(json) + strlen(to) + 1;
    char *bad = malloc(n);
    snprintf(bad, n, "%.*s%s%s", (int)(at - json), json, to, at + strlen(from));
    calibration *r = NULL;
    nm_error err = {0};
    assert_int_equal(calibration_from_json(bad, strlen(bad), "m.nmm", &r, &err), code);
    assert_null(r);
    assert_non_null(strstr(err.msg, "m.nmm"));
    if (msg_part && !strstr(err.msg, msg_part))
        fail_msg("'%s' lacks '%s'", err.msg, msg_part);
    free(bad);
}

static void test_json_damage_refused(void **state)
{
    (void)state;
    calibration *c = sample();
    char *s = json_of(c);
    assert_non_null(strstr(s, "\"threshold\":1.0000001"));
    expect_refused(s, "\"threshold\":1.0000001", "\"threshold\":1.1", NM_ERR_FORMAT,
                   "k-th largest");
    expect_refused(s, "\"kind\":\"fpr\"", "\"kind\":\"fnx\"", NM_ERR_FORMAT, "kind");
    expect_refused(s, "\"version\":1", "\"version\":2", NM_ERR_UNSUPPORTED, "version 2");
    expect_refused(s, "\"n_good\":5", "\"n_good\":4", NM_ERR_FORMAT, "good_scores");
    expect_refused(s, "\"good_scores\":[0.5", "\"good_scores\":[9.5", NM_ERR_FORMAT,
                   "ascending");
    expect_refused(s, "\"good_scores\":[0.5", "\"good_scores\":[null", NM_ERR_FORMAT,
                   "ascending");
    expect_refused(s, "\"n_good\":5", "\"n_good\":\"5\"", NM_ERR_FORMAT, "n_good");
    expect_refused(s, "\"held_out\":[", "\"held_out\":[3,", NM_ERR_FORMAT, "held_out");
    expect_refused(s, "{", "[", NM_ERR_FORMAT, "JSON");
    /* bugs fixed with fuzz/fuzz_calibration_json.c (docs/bad-inputs.md):
     * a table threshold over the float range (written back as null), rows
     * out of order, a table that is not a list, and counts that are not
     * numbers or too big (converted to int: undefined) */
    expect_refused(s, "\"table\":[{\"threshold\":", "\"table\":[{\"threshold\":1e39,\"x\":",
                   NM_ERR_FORMAT, "finite descending");
    expect_refused(s, "\"table\":[", "\"table\":[{\"threshold\":-5,\"fpr_good\":0,"
                   "\"fpr_bound\":1,\"fnr_bad\":null},", NM_ERR_FORMAT, "finite descending");
    expect_refused(s, "\"table\":[", "\"table\":7,\"x\":[", NM_ERR_FORMAT, "not a list");
    expect_refused(s, "\"k\":2", "\"k\":\"2\"", NM_ERR_FORMAT, "'k' is not a number");
    expect_refused(s, "\"n_bad\":2", "\"n_bad\":1e300", NM_ERR_FORMAT, "'n_bad' is not a count");
    expect_refused(s, "\"k\":2", "\"k\":0", NM_ERR_FORMAT, "'k' does not fit");
    calibration *r = NULL;
    assert_int_equal(calibration_from_json(s, strlen(s) / 2, "m.nmm", &r, NULL),
                     NM_ERR_FORMAT);
    free(s);
    calibration_free(c);
}

/* FNR: k counts bad images, and there may be more of them than good ones
 * (the reader took k for a count of good images and refused the model). */
static void test_json_fnr_k_over_n_good(void **state)
{
    (void)state;
    static const float good[] = {0.5f, 0.6f};
    static const float bad[] = {0.9f, 1.0f, 1.1f, 1.2f, 1.3f, 1.4f};
    nm_calibration_data d = {.good_scores = good, .n_good = 2, .bad_scores = bad, .n_bad = 6};
    nm_calibration_target t = {NM_CALIBRATE_FNR, 0.9, 0};
    calibration *c = NULL, *r = NULL;
    assert_int_equal(calibration_build(&d, &t, &c, NULL), NM_OK);
    assert_int_equal(c->pub.k, 6);
    char *s = json_of(c);
    assert_int_equal(calibration_from_json(s, strlen(s), "m.nmm", &r, NULL), NM_OK);
    assert_int_equal(r->pub.k, 6);
    assert_true(r->pub.fnr_bound == c->pub.fnr_bound);
    free(s);
    calibration_free(r);
    calibration_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k_hand_cases),
        cmocka_unit_test(test_min_n),
        cmocka_unit_test(test_fpr_threshold_is_kth_largest),
        cmocka_unit_test(test_exact_rank_guarantee),
        cmocka_unit_test(test_ties_score_equal_threshold_is_ok),
        cmocka_unit_test(test_p_values),
        cmocka_unit_test(test_fnr_threshold),
        cmocka_unit_test(test_f1_threshold),
        cmocka_unit_test(test_kth_largest_matches_sort),
        cmocka_unit_test(test_pixel_threshold),
        cmocka_unit_test(test_build_fpr_and_table),
        cmocka_unit_test(test_build_fnr_f1_and_errors),
        cmocka_unit_test(test_holdout_pick),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_damage_refused),
        cmocka_unit_test(test_json_fnr_k_over_n_good),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
