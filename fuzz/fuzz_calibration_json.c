/*
 * libFuzzer target: the calibration JSON reader (a model's CALI section,
 * src/methods/calibration_record.c). The input is the JSON text itself,
 * read by calibration_from_json as nm_model_load reads it.
 *
 * A refusal must pass fuzz_check_error (one line naming the input, no
 * usage or internal error). What is accepted must keep the promises of
 * nm_calibration that nm_decide and the CLI rely on; a broken one aborts:
 *   - kind known, n_good >= 1 finite ascending good scores, finite
 *     threshold, k fitting the kind (1..n_good, 1..n_bad, 0 for F1);
 *   - FPR: the threshold is the k-th largest good score, and the decision
 *     (score > threshold) agrees with the p-value (p <= k/(n+1));
 *   - what the reader recomputes (fpr_good, the bounds) is what the scores
 *     and k give; p-values lie in [1/(n+1), 1];
 *   - pixel threshold finite, table thresholds finite and descending,
 *     every held-out name and `created` present;
 *   - written back (calibration_to_json) and read again it is accepted,
 *     and written again gives the same text: a model saved with it loads.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "methods/calibration.h"

#define INPUT_NAME "fuzz.nmm"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *promise)
{
    fprintf(stderr, "fuzz oracle: accepted calibration breaks a promise: %s\n", promise);
    abort();
}

static void check_scores(const nm_calibration *p)
{
    if (p->n_good < 1 || !p->good_scores)
        broken("no good scores");
    for (int i = 0; i < p->n_good; i++) {
        if (!isfinite(p->good_scores[i]))
            broken("a good score is not finite");
        if (i && p->good_scores[i] < p->good_scores[i - 1])
            broken("good scores are not ascending");
    }
}

/* The decision and the p-value of a score s, as nm_decide gives them. */
static void check_decision(const nm_calibration *p, float s)
{
    double pv = calib_p_value(p->good_scores, p->n_good, s);
    double n1 = p->n_good + 1.0;
    if (!(pv >= 1.0 / n1 && pv <= 1.0))
        broken("p-value out of [1/(n+1), 1]");
    /* k/(n+1) computed as the reader computes the bound */
    if (p->kind == NM_CALIBRATE_FPR && (s > p->threshold) != (pv <= p->k / n1))
        broken("decision and p-value disagree");
}

static void check_threshold(const nm_calibration *p)
{
    if ((unsigned)p->kind > NM_CALIBRATE_F1)
        broken("unknown kind");
    if (!isfinite(p->threshold) || !isfinite(p->target))
        broken("threshold or target not finite");
    int k_ok = p->kind == NM_CALIBRATE_FPR   ? p->k >= 1 && p->k <= p->n_good
               : p->kind == NM_CALIBRATE_FNR ? p->k >= 1 && p->k <= p->n_bad
                                             : p->k == 0;
    if (!k_ok)
        broken("k does not fit the kind and the counts");
    size_t above = calib_count_above(p->good_scores, (size_t)p->n_good, p->threshold);
    if (p->fpr_good != (double)above / p->n_good)
        broken("fpr_good is not the fraction of good scores above the threshold");
    if (p->kind == NM_CALIBRATE_FPR &&
        (p->threshold != p->good_scores[p->n_good - p->k] ||
         p->fpr_bound != p->k / (p->n_good + 1.0)))
        broken("FPR threshold or bound is not the k-th largest good score's");
    if (p->kind == NM_CALIBRATE_FNR && p->fnr_bound != p->k / (p->n_bad + 1.0))
        broken("FNR bound is not k/(n_bad+1)");
    check_decision(p, p->threshold);
    check_decision(p, nextafterf(p->threshold, INFINITY));
    check_decision(p, nextafterf(p->threshold, -INFINITY));
    for (int i = 0; i < p->n_good; i++)
        check_decision(p, p->good_scores[i]);
}

static void check_rest(const nm_calibration *p)
{
    if (p->has_pixel_threshold && !isfinite(p->pixel_threshold))
        broken("pixel threshold not finite");
    if (p->n_table < 0 || (p->n_table > 0 && !p->table))
        broken("table count without rows");
    for (int i = 0; i < p->n_table; i++) {
        if (!isfinite(p->table[i].threshold))
            broken("a table threshold is not finite");
        if (i && p->table[i].threshold > p->table[i - 1].threshold)
            broken("table thresholds are not descending");
    }
    if (p->n_held_out < 0 || (p->n_held_out > 0 && !p->held_out))
        broken("held-out count without names");
    for (int i = 0; i < p->n_held_out; i++)
        if (!p->held_out[i])
            broken("a held-out name is missing");
    if (!p->created)
        broken("no creation time");
}

/* calibration_to_json's text, malloc'ed. */
static char *written(const nm_calibration *p)
{
    cJSON *o = calibration_to_json(p);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        broken("cannot be written back");
    return text;
}

/* Saved in a model and loaded again: the same calibration, the same text. */
static void check_round_trip(const nm_calibration *p)
{
    char *first = written(p);
    calibration *again = NULL;
    nm_error err = {0};
    if (calibration_from_json(first, strlen(first), INPUT_NAME, &again, &err) != NM_OK) {
        fprintf(stderr, "fuzz oracle: written back, it is refused: %s\n", err.msg);
        abort();
    }
    char *second = written(&again->pub);
    if (strcmp(first, second) != 0)
        broken("written, read and written again, the text changes");
    free(second);
    calibration_free(again);
    free(first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    calibration *c = NULL;
    nm_error err = {0};
    nm_status st = calibration_from_json(data, size, INPUT_NAME, &c, &err);
    fuzz_check_error(st, &err, INPUT_NAME);
    if (st != NM_OK) {
        if (c)
            broken("a refusal returned a calibration");
        return 0;
    }
    check_scores(&c->pub);
    check_threshold(&c->pub);
    check_rest(&c->pub);
    check_round_trip(&c->pub);
    calibration_free(c);
    return 0;
}
