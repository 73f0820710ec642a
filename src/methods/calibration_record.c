/*
 * A model's calibration as JSON: the CALI section of the model file
 * (schema in docs/calibration.md). Numbers survive the round trip exactly:
 * cJSON prints doubles with enough digits, and every float is a double.
 * Reading trusts nothing: every field is type-checked, the scores the
 * p-values come from must be finite and ascending, a conformal threshold
 * must be the k-th largest of them, and what follows from the scores
 * (FPR on them, the bound k/(n+1)) is recomputed rather than read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/calibration.h"

#define CALIBRATION_VERSION 1

static const char *const kind_names[] = {"fpr", "fnr", "f1"};

const char *nm_calibration_kind_name(nm_calibration_kind kind)
{
    return (unsigned)kind < sizeof kind_names / sizeof *kind_names ? kind_names[kind] : "?";
}

/* NAN (no bad images, no masks) is written as null. */
static void add_number(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_string(cJSON *o, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *calibration_to_json(const nm_calibration *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", CALIBRATION_VERSION);
    cJSON_AddStringToObject(o, "created", p->created);
    cJSON_AddStringToObject(o, "kind", kind_names[p->kind]);
    cJSON_AddNumberToObject(o, "target", p->target);
    cJSON_AddStringToObject(o, "rule", "anomalous iff score > threshold");
    cJSON_AddNumberToObject(o, "threshold", p->threshold);
    cJSON_AddNumberToObject(o, "k", p->k);
    cJSON_AddNumberToObject(o, "n_good", p->n_good);
    cJSON_AddNumberToObject(o, "fpr_good", p->fpr_good);
    cJSON_AddNumberToObject(o, "fpr_bound", p->fpr_bound);
    cJSON_AddNumberToObject(o, "n_bad", p->n_bad);
    add_number(o, "fnr_bad", p->fnr_bad);
    add_number(o, "fnr_bound", p->fnr_bound);
    add_string(o, "good_source", p->good_source);
    add_string(o, "bad_source", p->bad_source);
    cJSON *held = cJSON_AddArrayToObject(o, "held_out");
    for (int i = 0; i < p->n_held_out; i++)
        cJSON_AddItemToArray(held, cJSON_CreateString(p->held_out[i]));
    if (p->has_pixel_threshold) {
        cJSON *px = cJSON_AddObjectToObject(o, "pixel");
        cJSON_AddNumberToObject(px, "target_fpr", p->pixel_target);
        cJSON_AddNumberToObject(px, "threshold", p->pixel_threshold);
        cJSON_AddNumberToObject(px, "n_good_pixels", (double)p->n_good_pixels);
        cJSON_AddNumberToObject(px, "fpr_good", p->pixel_fpr_good);
        cJSON_AddNumberToObject(px, "n_defect_pixels", (double)p->n_defect_pixels);
        add_number(px, "fnr_bad", p->pixel_fnr_bad);
    } else {
        cJSON_AddNullToObject(o, "pixel");
    }
    cJSON *table = cJSON_AddArrayToObject(o, "table");
    for (int i = 0; i < p->n_table; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "threshold", p->table[i].threshold);
        cJSON_AddNumberToObject(r, "fpr_good", p->table[i].fpr_good);
        cJSON_AddNumberToObject(r, "fpr_bound", p->table[i].fpr_bound);
        add_number(r, "fnr_bad", p->table[i].fnr_bad);
        cJSON_AddItemToArray(table, r);
    }
    cJSON *scores = cJSON_AddArrayToObject(o, "good_scores");
    for (int i = 0; i < p->n_good; i++)
        cJSON_AddItemToArray(scores, cJSON_CreateNumber(p->good_scores[i]));
    return o;
}

/* ---------------------------------------------------------------- read */

typedef struct reader {
    const char *path;
    nm_error *err;
    nm_status bad; /* the first failure, already reported; NM_OK so far */
} reader;

static nm_status invalid(reader *r, const char *what)
{
    if (!r->bad)
        r->bad = nm_fail(r->err, NM_ERR_FORMAT,
                         "%s: calibration (CALI section) is invalid: %s", r->path, what);
    return r->bad;
}

static void out_of_memory(reader *r)
{
    if (!r->bad)
        r->bad = nm_fail(r->err, NM_ERR_NOMEM, "out of memory");
}

/* A required finite number. */
static double number(reader *r, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!r->bad && !(cJSON_IsNumber(v) && isfinite(v->valuedouble))) {
        char what[96];
        snprintf(what, sizeof what, "'%s' is not a number", key);
        invalid(r, what);
    }
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A number or null (NAN). */
static double number_or_null(reader *r, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNull(v))
        return NAN;
    return number(r, o, key);
}

/* A count in 0..max; 0 once anything failed, so that callers may convert
 * it to an integer (a NAN or 1e300 there is undefined behaviour). */
static double count(reader *r, const cJSON *o, const char *key, double max)
{
    double v = number(r, o, key);
    if (!r->bad && (v < 0 || v > max || v != floor(v))) {
        char what[96];
        snprintf(what, sizeof what, "'%s' is not a count", key);
        invalid(r, what);
    }
    return r->bad ? 0 : v;
}

/* A string, or NULL for null / absent when optional. */
static char *string(reader *r, const cJSON *o, const char *key, int optional)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (optional && (!v || cJSON_IsNull(v)))
        return NULL;
    if (!cJSON_IsString(v)) {
        char what[96];
        snprintf(what, sizeof what, "'%s' is not a string", key);
        invalid(r, what);
        return NULL;
    }
    char *s = strdup(v->valuestring);
    if (!s)
        out_of_memory(r);
    return s;
}

static void read_scores(reader *r, const cJSON *o, calibration *c)
{
    nm_calibration *p = &c->pub;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "good_scores");
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1 || n != p->n_good) {
        invalid(r, "'good_scores' does not hold n_good scores");
        return;
    }
    c->good_scores = malloc(sizeof(float) * (size_t)n);
    if (!c->good_scores) {
        out_of_memory(r);
        return;
    }
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++) {
        float s = cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
        if (!isfinite(s) || (i && s < c->good_scores[i - 1])) {
            invalid(r, "'good_scores' are not finite ascending numbers");
            return;
        }
        c->good_scores[i] = s;
    }
    p->good_scores = c->good_scores;
}

static void read_pixel(reader *r, const cJSON *px, nm_calibration *p)
{
    if (!px || cJSON_IsNull(px))
        return;
    if (!cJSON_IsObject(px)) {
        invalid(r, "'pixel' is not an object");
        return;
    }
    p->has_pixel_threshold = 1;
    p->pixel_target = number(r, px, "target_fpr");
    p->pixel_threshold = (float)number(r, px, "threshold");
    p->n_good_pixels = (size_t)count(r, px, "n_good_pixels", 1e15);
    p->pixel_fpr_good = number(r, px, "fpr_good");
    p->n_defect_pixels = (size_t)count(r, px, "n_defect_pixels", 1e15);
    p->pixel_fnr_bad = number_or_null(r, px, "fnr_bad");
}

static void read_held_out(reader *r, const cJSON *o, calibration *c)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "held_out");
    if (!arr)
        return;
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr)) {
        invalid(r, "'held_out' is not a list");
        return;
    }
    if (n == 0)
        return;
    c->held_out = calloc((size_t)n, sizeof *c->held_out);
    if (!c->held_out) {
        out_of_memory(r);
        return;
    }
    for (const cJSON *v = arr->child; v && !r->bad; v = v->next) {
        if (!cJSON_IsString(v)) {
            invalid(r, "'held_out' holds a non-name");
            return;
        }
        c->held_out[c->pub.n_held_out] = strdup(v->valuestring);
        if (!c->held_out[c->pub.n_held_out++])
            out_of_memory(r);
    }
    c->pub.held_out = (const char *const *)c->held_out;
}

/* The rows are what nm_calibration promises: finite float thresholds,
 * descending (a threshold over the float range would be written back as
 * null, and that model file could not be read again). */
static void read_table(reader *r, const cJSON *o, calibration *c)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "table");
    if (!arr || cJSON_IsNull(arr))
        return;
    if (!cJSON_IsArray(arr)) {
        invalid(r, "'table' is not a list");
        return;
    }
    int n = cJSON_GetArraySize(arr);
    if (n == 0)
        return;
    c->table = calloc((size_t)n, sizeof *c->table);
    if (!c->table) {
        out_of_memory(r);
        return;
    }
    for (const cJSON *v = arr->child; v && !r->bad; v = v->next) {
        nm_tradeoff_row *row = &c->table[c->pub.n_table++];
        row->threshold = (float)number(r, v, "threshold");
        row->fpr_good = number(r, v, "fpr_good");
        row->fpr_bound = number(r, v, "fpr_bound");
        row->fnr_bad = number_or_null(r, v, "fnr_bad");
        if (!r->bad && (!isfinite(row->threshold) ||
                        (c->pub.n_table > 1 && row->threshold > row[-1].threshold)))
            invalid(r, "'table' thresholds are not finite descending floats");
    }
    c->pub.table = c->table;
}

/* k is the order statistic of the good scores (FPR) or of the bad ones
 * (FNR: there may be more bad images than good), none for F1. */
static void check_k(reader *r, const nm_calibration *p)
{
    int ok = p->kind == NM_CALIBRATE_FPR   ? p->k >= 1 && p->k <= p->n_good
             : p->kind == NM_CALIBRATE_FNR ? p->k >= 1 && p->k <= p->n_bad
                                           : p->k == 0;
    if (!ok)
        invalid(r, "'k' does not fit the kind and the image counts");
}

static void read_fields(reader *r, const cJSON *o, calibration *c)
{
    nm_calibration *p = &c->pub;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    int k = -1;
    for (int i = 0; i < 3 && cJSON_IsString(kind); i++)
        if (strcmp(kind->valuestring, kind_names[i]) == 0)
            k = i;
    if (k < 0) {
        invalid(r, "'kind' is not fpr, fnr or f1");
        return;
    }
    p->kind = (nm_calibration_kind)k;
    p->target = number(r, o, "target");
    p->threshold = (float)number(r, o, "threshold");
    p->n_good = (int)count(r, o, "n_good", 1e9);
    p->k = (int)count(r, o, "k", 1e9);
    p->fpr_good = number(r, o, "fpr_good");
    p->fpr_bound = number(r, o, "fpr_bound");
    p->n_bad = (int)count(r, o, "n_bad", 1e9);
    p->fnr_bad = number_or_null(r, o, "fnr_bad");
    p->fnr_bound = number_or_null(r, o, "fnr_bound");
    if (r->bad)
        return;
    if (!isfinite(p->threshold))
        invalid(r, "the threshold is not a finite float");
    if (!r->bad)
        check_k(r, p);
    if (!r->bad)
        read_scores(r, o, c);
    if (!r->bad) { /* what follows from the scores and k is recomputed */
        size_t above = calib_count_above(p->good_scores, (size_t)p->n_good, p->threshold);
        p->fpr_good = (double)above / p->n_good;
        if (p->kind == NM_CALIBRATE_FPR) {
            if (p->threshold != p->good_scores[p->n_good - p->k])
                invalid(r, "the threshold is not the k-th largest good score");
            p->fpr_bound = p->k / (p->n_good + 1.0);
        } else if (p->kind == NM_CALIBRATE_FNR) {
            p->fnr_bound = p->k / (p->n_bad + 1.0);
        }
    }
    if (!r->bad)
        read_pixel(r, cJSON_GetObjectItemCaseSensitive(o, "pixel"), p);
    if (!r->bad && p->has_pixel_threshold && !isfinite(p->pixel_threshold))
        invalid(r, "the pixel threshold is not a finite float");
    if (!r->bad)
        read_held_out(r, o, c);
    if (!r->bad)
        read_table(r, o, c);
    if (!r->bad) {
        c->created = string(r, o, "created", 0);
        c->good_source = string(r, o, "good_source", 1);
        c->bad_source = string(r, o, "bad_source", 1);
        p->created = c->created;
        p->good_source = c->good_source;
        p->bad_source = c->bad_source;
    }
}

nm_status calibration_from_json(const void *text, size_t size, const char *path,
                                calibration **out, nm_error *err)
{
    reader r = {path, err, NM_OK};
    *out = NULL;
    cJSON *o = cJSON_ParseWithLength(text, size);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return invalid(&r, "not a JSON object");
    }
    double version = number(&r, o, "version");
    if (!r.bad && version != CALIBRATION_VERSION) {
        cJSON_Delete(o);
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: calibration format version %g is not supported by this "
                       "nominal (%s reads version %d)",
                       path, version, nm_version(), CALIBRATION_VERSION);
    }
    calibration *c = calloc(1, sizeof *c);
    if (!c) {
        cJSON_Delete(o);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    if (!r.bad)
        read_fields(&r, o, c);
    cJSON_Delete(o);
    if (r.bad) {
        calibration_free(c);
        return r.bad;
    }
    *out = c;
    return NM_OK;
}
