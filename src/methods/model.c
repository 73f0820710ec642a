/*
 * A model = preprocessing + backbone (up to its last tap) + one method.
 * This file is the pipeline around a method: decode -> preprocess ->
 * backbone -> method -> anomaly map on the original image; the model file
 * (META json, ONNX subgraph, the method's sections, the calibration as
 * CALI); fit's and scoring's batching and progress; decisions from the
 * calibration (methods/calibration.h). Methods only see taps (method.h).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "io/model_file.h"
#include "methods/anomaly_map.h"
#include "methods/calibration.h"
#include "methods/method.h"
#include "nn/net.h"
#include "onnx/onnx_write.h"

#define MAX_TAPS 8
#define MAP_SIGMA 4.0f

struct nm_model {
    const method_ops *ops;
    void *state;
    nm_net *net;
    nm_preprocess pre;
    char *taps[MAX_TAPS];
    int n_taps;
    char *taps_csv; /* "stage2,stage3" for info */
    char *backbone_name;
    uint64_t seed;
    double fit_seconds;
    int train_images;
    /* the backbone subgraph as ONNX bytes: owned after fit, or inside file */
    uint8_t *onnx_owned;
    const uint8_t *onnx;
    size_t onnx_size;
    model_file *file; /* loaded models keep their file: the bank lives in it */
    calibration *cal; /* NULL: not calibrated */
    /* scoring scratch, grown on demand */
    float *input;
    size_t input_cap;
    float *patch_scores;
    float *crop_map; /* one blurred map on the crop (render workspace) */
    size_t crop_cap;
    size_t patch_cap;
    float *image_scores;
    size_t image_cap;
};

void nm_fit_options_default(nm_fit_options *o)
{
    memset(o, 0, sizeof *o);
    o->method = "patchcore";
    nm_preprocess_default(&o->preprocess);
    o->batch_size = 8;
    o->skip_bad_images = 1;
}

void nm_model_close(nm_model *m)
{
    if (!m)
        return;
    if (m->ops && m->state)
        m->ops->destroy(m->state);
    nm_net_close(m->net);
    for (int i = 0; i < m->n_taps; i++)
        free(m->taps[i]);
    free(m->taps_csv);
    free(m->backbone_name);
    free(m->onnx_owned);
    model_file_free(m->file);
    calibration_free(m->cal);
    free(m->input);
    free(m->patch_scores);
    free(m->crop_map);
    free(m->image_scores);
    free(m);
}

static method_context context_of(const nm_model *m, nm_progress_fn progress, void *ctx)
{
    method_context c = {net_backend(m->net), m->seed, progress, ctx};
    return c;
}

static nm_status grow(float **buf, size_t *cap, size_t need, nm_error *err)
{
    if (need <= *cap)
        return NM_OK;
    free(*buf);
    *buf = malloc(need * sizeof(float));
    *cap = *buf ? need : 0;
    if (!*buf)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory (%zu floats)", need);
    return NM_OK;
}

static nm_status set_taps(nm_model *m, const char *const *taps, int n, nm_error *err)
{
    if (n < 1 || n > MAX_TAPS)
        return nm_fail(err, NM_ERR_ARG, "need 1 to %d taps, got %d", MAX_TAPS, n);
    size_t len = 1;
    for (int i = 0; i < n; i++) {
        m->taps[i] = strdup(taps[i]);
        if (!m->taps[i])
            return nm_fail(err, NM_ERR_NOMEM, "out of memory");
        m->n_taps = i + 1;
        len += strlen(taps[i]) + 1;
    }
    m->taps_csv = malloc(len);
    if (!m->taps_csv)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    m->taps_csv[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(m->taps_csv, ",");
        strcat(m->taps_csv, taps[i]);
    }
    return nm_net_set_taps(m->net, (const char *const *)m->taps, n, err);
}

/* ------------------------------------------------------------------- fit */

typedef struct fit_batch {
    float *input;    /* [n][3][h][w] */
    size_t cap;      /* floats */
    int n, h, w;
} fit_batch;

static nm_status run_batch(nm_model *m, fit_batch *b, const method_context *ctx,
                           nm_error *err)
{
    if (b->n == 0)
        return NM_OK;
    nm_tensor taps[MAX_TAPS];
    nm_status st = nm_net_run(m->net, b->input, b->n, b->h, b->w, taps, err);
    if (!st)
        st = m->ops->fit_add(m->state, ctx, taps, m->n_taps, err);
    b->n = 0;
    return st;
}

/* Decode + preprocess one training image into the batch (flushing the
 * batch first if this image's input size differs). *skipped is set when
 * a bad image was reported and skipped. */
static nm_status add_training_image(nm_model *m, const nm_fit_options *o, const char *path,
                                    fit_batch *b, const method_context *ctx, int *skipped,
                                    nm_error *err)
{
    nm_image img = {0};
    nm_geometry g;
    *skipped = 0;
    nm_status st = nm_image_load(path, 0, &img, err);
    if (!st)
        st = nm_preprocess_geometry(&m->pre, img.width, img.height, &g, err);
    if (st) {
        nm_image_free(&img);
        if (o->skip_bad_images && st != NM_ERR_NOMEM) {
            if (o->warn)
                o->warn(o->progress_ctx, err->msg);
            *skipped = 1;
            return NM_OK;
        }
        return st;
    }
    if (b->n > 0 && (g.out_width != b->w || g.out_height != b->h)) {
        if ((st = run_batch(m, b, ctx, err))) {
            nm_image_free(&img);
            return st;
        }
    }
    size_t per = 3 * (size_t)g.out_width * (size_t)g.out_height;
    size_t need = per * (size_t)(o->batch_size > 0 ? o->batch_size : 1);
    if (need > b->cap) {
        float *p = realloc(b->input, need * sizeof(float));
        if (!p) {
            nm_image_free(&img);
            return nm_fail(err, NM_ERR_NOMEM, "out of memory for an input batch");
        }
        b->input = p;
        b->cap = need;
    }
    st = nm_preprocess_image(&m->pre, &img, b->input + per * (size_t)b->n, &g, err);
    nm_image_free(&img);
    if (st)
        return st;
    b->w = g.out_width;
    b->h = g.out_height;
    b->n++;
    if (b->n >= (o->batch_size > 0 ? o->batch_size : 1))
        return run_batch(m, b, ctx, err);
    return NM_OK;
}

static const char *file_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static nm_status fit_prepare(nm_model *m, const nm_fit_options *o, nm_error *err)
{
    m->ops = method_find(o->method ? o->method : "patchcore");
    if (!m->ops) {
        char names[256] = "";
        for (int i = 0; method_registry[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     i ? ", " : "", method_registry[i]->name);
        return nm_fail(err, NM_ERR_ARG, "unknown method '%s' (available: %s)", o->method,
                       names);
    }
    if (!o->backbone)
        return nm_fail(err, NM_ERR_ARG, "no backbone given");
    m->pre = o->preprocess;
    m->seed = o->seed;
    m->backbone_name = strdup(file_name(o->backbone));
    if (!m->backbone_name)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    nm_net_options no = {.threads = o->threads};
    nm_status st = nm_net_open(o->backbone, &no, &m->net, err);
    if (!st)
        st = set_taps(m, o->taps, o->n_taps, err);
    if (!st)
        st = onnx_graph_write_subgraph(net_graph(m->net), (const char *const *)m->taps,
                                       m->n_taps, &m->onnx_owned, &m->onnx_size, err);
    if (st)
        return st;
    m->onnx = m->onnx_owned;
    return m->ops->create(o->params, o->n_params, &m->state, err);
}

nm_status nm_model_fit(const nm_fit_options *o, const char *const *images, int n_images,
                       nm_model **out, nm_error *err)
{
    if (!o || !images || !out)
        return nm_fail(err, NM_ERR_ARG, "nm_model_fit: missing argument");
    if (n_images < 1)
        return nm_fail(err, NM_ERR_ARG, "no training images");
    double t0 = now_seconds();
    nm_model *m = calloc(1, sizeof *m);
    if (!m)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    fit_batch b = {0};
    nm_status st = fit_prepare(m, o, err);
    method_context ctx = {0};
    if (!st)
        ctx = context_of(m, o->progress, o->progress_ctx);
    int used = 0;
    for (int i = 0; !st && i < n_images; i++) {
        int skipped;
        st = add_training_image(m, o, images[i], &b, &ctx, &skipped, err);
        used += !skipped;
        if (o->progress)
            o->progress(o->progress_ctx, "features", (size_t)i + 1, (size_t)n_images);
    }
    if (!st)
        st = run_batch(m, &b, &ctx, err);
    if (!st && used == 0)
        st = nm_fail(err, NM_ERR_FORMAT, "none of the %d training images could be read",
                     n_images);
    if (!st)
        st = m->ops->fit_finish(m->state, &ctx, err);
    free(b.input);
    if (st) {
        nm_model_close(m);
        return st;
    }
    m->train_images = used;
    m->fit_seconds = now_seconds() - t0;
    *out = m;
    return NM_OK;
}

/* ------------------------------------------------------------ save/load */

static cJSON *meta_json(const nm_model *m)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "nominal-model");
    cJSON_AddStringToObject(root, "nominal_version", nm_version());
    cJSON_AddStringToObject(root, "method", m->ops->name);
    cJSON *pre = cJSON_AddObjectToObject(root, "preprocess");
    cJSON_AddNumberToObject(pre, "resize_short", m->pre.resize_short);
    cJSON_AddNumberToObject(pre, "crop_width", m->pre.crop_width);
    cJSON_AddNumberToObject(pre, "crop_height", m->pre.crop_height);
    cJSON_AddItemToObject(pre, "mean", cJSON_CreateFloatArray(m->pre.mean, 3));
    cJSON_AddItemToObject(pre, "std", cJSON_CreateFloatArray(m->pre.std, 3));
    cJSON *bb = cJSON_AddObjectToObject(root, "backbone");
    cJSON_AddStringToObject(bb, "name", m->backbone_name);
    cJSON_AddItemToObject(bb, "taps",
                          cJSON_CreateStringArray((const char *const *)m->taps, m->n_taps));
    cJSON *train = cJSON_AddObjectToObject(root, "train");
    cJSON_AddNumberToObject(train, "images", m->train_images);
    cJSON_AddNumberToObject(train, "fit_seconds", m->fit_seconds);
    cJSON_AddNumberToObject(train, "seed", (double)m->seed);
    m->ops->describe(m->state, cJSON_AddObjectToObject(root, "params"));
    return root;
}

static char *json_text(cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* The whole file is always rewritten (through a temp file), so saving a
 * calibrated model replaces any older CALI section and a failed save
 * leaves the old file as it was. */
nm_status nm_model_save(const nm_model *m, const char *path, nm_error *err)
{
    if (!m || !path)
        return nm_fail(err, NM_ERR_ARG, "nm_model_save: missing argument");
    char *text = json_text(meta_json(m));
    char *cali = m->cal ? json_text(calibration_to_json(&m->cal->pub)) : NULL;
    if (!text || (m->cal && !cali)) {
        free(text);
        free(cali);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    model_writer *w = NULL;
    nm_status st = model_writer_open(path, &w, err);
    if (!st)
        st = model_writer_add(w, "META", text, strlen(text), err);
    if (!st)
        st = model_writer_add(w, "ONNX", m->onnx, m->onnx_size, err);
    if (!st)
        st = m->ops->save(m->state, w, err);
    if (!st && cali)
        st = model_writer_add(w, "CALI", cali, strlen(cali), err);
    free(text);
    free(cali);
    if (st) {
        model_writer_abort(w);
        return st;
    }
    return model_writer_commit(w, err);
}

/* A number from the model's JSON; values no int can hold (the file is
 * untrusted, and converting them would be undefined) read as -1, which
 * every caller refuses or ignores. */
static int json_int(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return dflt;
    return v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX ? (int)v->valuedouble : -1;
}

static nm_status load_preprocess(nm_model *m, const cJSON *pre, nm_error *err)
{
    m->pre.resize_short = json_int(pre, "resize_short", -1);
    m->pre.crop_width = json_int(pre, "crop_width", -1);
    m->pre.crop_height = json_int(pre, "crop_height", -1);
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(pre, "mean");
    const cJSON *std = cJSON_GetObjectItemCaseSensitive(pre, "std");
    if (m->pre.resize_short < 0 || m->pre.crop_width < 0 || m->pre.crop_height < 0 ||
        cJSON_GetArraySize(mean) != 3 || cJSON_GetArraySize(std) != 3)
        return nm_fail(err, NM_ERR_FORMAT, "%s: invalid preprocessing settings", m->file->path);
    for (int c = 0; c < 3; c++) {
        const cJSON *mc = cJSON_GetArrayItem(mean, c), *sc = cJSON_GetArrayItem(std, c);
        if (!cJSON_IsNumber(mc) || !cJSON_IsNumber(sc) || fabs(mc->valuedouble) > FLT_MAX ||
            fabs(sc->valuedouble) > FLT_MAX)
            return nm_fail(err, NM_ERR_FORMAT, "%s: invalid preprocessing settings",
                           m->file->path);
        m->pre.mean[c] = (float)mc->valuedouble;
        m->pre.std[c] = (float)sc->valuedouble;
    }
    /* the rest of what scoring will check (a zero std, ...), refused now */
    nm_geometry g;
    if (nm_preprocess_geometry(&m->pre, 1, 1, &g, NULL) != NM_OK)
        return nm_fail(err, NM_ERR_FORMAT, "%s: invalid preprocessing settings", m->file->path);
    return NM_OK;
}

static nm_status load_from_file(nm_model *m, int threads, nm_error *err)
{
    const model_file *f = m->file;
    const model_section *ms = model_file_find(f, "META");
    const model_section *os = model_file_find(f, "ONNX");
    if (!ms || !os)
        return nm_fail(err, NM_ERR_FORMAT, "%s: model lacks its %s section", f->path,
                       ms ? "ONNX" : "META");
    cJSON *meta = cJSON_ParseWithLength((const char *)ms->data, ms->size);
    if (!meta)
        return nm_fail(err, NM_ERR_FORMAT, "%s: model description is not valid JSON", f->path);
    nm_status st = NM_OK;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(meta, "method");
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(meta, "backbone");
    const cJSON *taps = cJSON_GetObjectItemCaseSensitive(bb, "taps");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(bb, "name");
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(meta, "train");
    if (!cJSON_IsString(method) || !cJSON_IsArray(taps) || !cJSON_IsString(name)) {
        st = nm_fail(err, NM_ERR_FORMAT, "%s: model description lacks method/backbone",
                     f->path);
        goto done;
    }
    m->ops = method_find(method->valuestring);
    if (!m->ops) {
        st = nm_fail(err, NM_ERR_UNSUPPORTED,
                     "%s: model uses method '%s', which this nominal (%s) does not have",
                     f->path, method->valuestring, nm_version());
        goto done;
    }
    m->backbone_name = strdup(name->valuestring);
    double seed = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(train, "seed"));
    m->seed = seed >= 0 && seed < 18446744073709551616.0 ? (uint64_t)seed : 0; /* NaN: 0 */
    m->train_images = json_int(train, "images", 0);
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(train, "fit_seconds");
    m->fit_seconds = cJSON_IsNumber(fs) ? fs->valuedouble : 0;
    if ((st = load_preprocess(m, cJSON_GetObjectItemCaseSensitive(meta, "preprocess"), err)))
        goto done;
    const char *tap_names[MAX_TAPS];
    int n = cJSON_GetArraySize(taps);
    if (n < 1 || n > MAX_TAPS) {
        st = nm_fail(err, NM_ERR_FORMAT, "%s: model lists %d taps", f->path, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(taps, i);
        if (!cJSON_IsString(t)) {
            st = nm_fail(err, NM_ERR_FORMAT, "%s: tap %d is not a name", f->path, i);
            goto done;
        }
        tap_names[i] = t->valuestring;
    }
    m->onnx = os->data;
    m->onnx_size = os->size;
    nm_net_options no = {.threads = threads};
    if ((st = net_open_memory(os->data, os->size, f->path, &no, &m->net, err)))
        goto done;
    st = set_taps(m, tap_names, n, err);
    if (st == NM_ERR_ARG) { /* a tap its own backbone lacks: a broken file */
        st = NM_ERR_FORMAT;
        if (err)
            err->code = st;
    }
    if (st)
        goto done;
    st = m->ops->load(cJSON_GetObjectItemCaseSensitive(meta, "params"), f, &m->state, err);
    const model_section *cs = model_file_find(f, "CALI");
    if (!st && cs)
        st = calibration_from_json(cs->data, cs->size, f->path, &m->cal, err);
done:
    cJSON_Delete(meta);
    return st;
}

nm_status nm_model_load(const char *path, int threads, nm_model **out, nm_error *err)
{
    if (!path || !out)
        return nm_fail(err, NM_ERR_ARG, "nm_model_load: missing argument");
    nm_model *m = calloc(1, sizeof *m);
    if (!m)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    nm_status st = model_file_read(path, &m->file, err);
    if (!st)
        st = load_from_file(m, threads, err);
    if (st) {
        nm_model_close(m);
        return st;
    }
    *out = m;
    return NM_OK;
}

/* ---------------------------------------------------------------- score */

void nm_result_free(nm_result *r)
{
    if (!r)
        return;
    free(r->map);
    r->map = NULL;
}

static int same_input_size(const nm_geometry *a, const nm_geometry *b)
{
    return a->out_width == b->out_width && a->out_height == b->out_height;
}

/* One backbone pass and one method call for n images whose network input
 * has the same size; fills out[0..n). */
static nm_status score_run(nm_model *m, const nm_image *const *imgs, const nm_geometry *g,
                           int n, int want_map, nm_result *out, nm_error *err)
{
    double t0 = now_seconds();
    size_t per = 3 * (size_t)g[0].out_width * (size_t)g[0].out_height;
    nm_status st = grow(&m->input, &m->input_cap, per * (size_t)n, err);
    for (int i = 0; !st && i < n; i++) {
        nm_geometry gi;
        st = nm_preprocess_image(&m->pre, imgs[i], m->input + per * (size_t)i, &gi, err);
    }
    double t1 = now_seconds();
    nm_tensor taps[MAX_TAPS];
    if (!st)
        st = nm_net_run(m->net, m->input, n, g[0].out_height, g[0].out_width, taps, err);
    if (st)
        return st;
    double t2 = now_seconds();
    int gw, gh;
    m->ops->grid(m->state, taps, m->n_taps, &gw, &gh);
    size_t cells = (size_t)gw * (size_t)gh;
    if ((st = grow(&m->patch_scores, &m->patch_cap, cells * (size_t)n, err)) ||
        (st = grow(&m->image_scores, &m->image_cap, (size_t)n, err)))
        return st;
    method_context ctx = context_of(m, NULL, NULL);
    if ((st = m->ops->score(m->state, &ctx, taps, m->n_taps, m->patch_scores,
                            m->image_scores, err)))
        return st;
    double t3 = now_seconds();
    const int from_map = m->ops->image_score_from_map;
    for (int i = 0; i < n && !st; i++) {
        double t4 = now_seconds();
        out[i].width = imgs[i]->width;
        out[i].height = imgs[i]->height;
        out[i].ms_preprocess = (t1 - t0) * 1e3 / n;
        out[i].ms_backbone = (t2 - t1) * 1e3 / n;
        out[i].ms_method = (t3 - t2) * 1e3 / n;
        out[i].score = m->image_scores[i];
        if (!want_map && !from_map)
            continue;
        if (want_map) {
            size_t pixels = (size_t)imgs[i]->width * (size_t)imgs[i]->height;
            out[i].map = malloc(sizeof(float) * pixels);
            if (!out[i].map)
                return nm_fail(err, NM_ERR_NOMEM, "out of memory for a %dx%d map",
                               imgs[i]->width, imgs[i]->height);
        }
        /* one render gives both the crop map (the image score, for methods
         * that take it from the map) and the map on the original image */
        size_t crop = (size_t)g[i].out_width * (size_t)g[i].out_height;
        if ((st = grow(&m->crop_map, &m->crop_cap, crop, err)) ||
            (st = anomaly_map_render(m->patch_scores + cells * (size_t)i, gw, gh, &g[i],
                                     MAP_SIGMA, m->crop_map, out[i].map, err)))
            return st;
        if (from_map) {
            float top = m->crop_map[0];
            for (size_t j = 1; j < crop; j++)
                top = m->crop_map[j] > top ? m->crop_map[j] : top;
            out[i].score = top;
        }
        if (want_map)
            out[i].ms_map = (now_seconds() - t4) * 1e3;
    }
    return st;
}

nm_status nm_model_score_batch(nm_model *m, const nm_image *const *imgs, int n, int want_map,
                               nm_result *out, nm_error *err)
{
    if (!m || !imgs || !out || n < 0)
        return nm_fail(err, NM_ERR_ARG, "nm_model_score_batch: missing argument");
    memset(out, 0, sizeof *out * (size_t)n);
    if (n == 0)
        return NM_OK;
    nm_geometry *g = malloc(sizeof *g * (size_t)n);
    if (!g)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    nm_status st = NM_OK;
    for (int i = 0; !st && i < n; i++)
        st = imgs[i] ? nm_preprocess_geometry(&m->pre, imgs[i]->width, imgs[i]->height, &g[i],
                                              err)
                     : nm_fail(err, NM_ERR_ARG, "nm_model_score_batch: image %d is NULL", i);
    /* runs of equal input size, at most NM_SCORE_BATCH_MAX per pass */
    for (int i = 0, j; !st && i < n; i = j) {
        for (j = i + 1; j < n && j - i < NM_SCORE_BATCH_MAX && same_input_size(&g[i], &g[j]);)
            j++;
        st = score_run(m, imgs + i, g + i, j - i, want_map, out + i, err);
    }
    free(g);
    if (st)
        for (int i = 0; i < n; i++)
            nm_result_free(&out[i]);
    return st;
}

nm_status nm_model_score(nm_model *m, const nm_image *img, int want_map, nm_result *out,
                         nm_error *err)
{
    if (!img)
        return nm_fail(err, NM_ERR_ARG, "nm_model_score: missing argument");
    return nm_model_score_batch(m, &img, 1, want_map, out, err);
}

/* ----------------------------------------------------------- calibration */

nm_status nm_model_calibrate(nm_model *m, const nm_calibration_data *data,
                             const nm_calibration_target *target, nm_error *err)
{
    if (!m)
        return nm_fail(err, NM_ERR_ARG, "nm_model_calibrate: missing model");
    calibration *c = NULL;
    nm_status st = calibration_build(data, target, &c, err);
    if (st)
        return st;
    calibration_free(m->cal);
    m->cal = c;
    return NM_OK;
}

int nm_model_get_calibration(const nm_model *m, nm_calibration *out)
{
    if (!m || !m->cal)
        return 0;
    *out = m->cal->pub;
    return 1;
}

nm_status nm_decide(const nm_model *m, float score, int *anomalous, double *p_value,
                    nm_error *err)
{
    if (!m || !m->cal)
        return nm_fail(err, NM_ERR_ARG,
                       "the model is not calibrated (see `nominal calibrate --help`)");
    if (!isfinite(score))
        return nm_fail(err, NM_ERR_ARG, "score %g is not finite", (double)score);
    const nm_calibration *c = &m->cal->pub;
    if (anomalous)
        *anomalous = score > c->threshold;
    if (p_value)
        *p_value = calib_p_value(c->good_scores, c->n_good, score);
    return NM_OK;
}

/* ----------------------------------------------------------------- info */

void nm_model_get_info(const nm_model *m, nm_model_info *info)
{
    memset(info, 0, sizeof *info);
    info->method = m->ops->name;
    info->backbone = m->backbone_name;
    info->taps = m->taps_csv;
    info->preprocess = m->pre;
    m->ops->bank_size(m->state, &info->memory_bank, &info->feature_dim);
    info->map_scale = m->ops->normal_scale(m->state);
    info->fit_seconds = m->fit_seconds;
    info->train_images = m->train_images;
}

char *nm_model_describe_json(const nm_model *m)
{
    cJSON *root = meta_json(m);
    if (!root)
        return NULL;
    cJSON_AddNumberToObject(root, "backbone_bytes", (double)m->onnx_size);
    if (m->cal)
        cJSON_AddItemToObject(root, "calibration", calibration_to_json(&m->cal->pub));
    else
        cJSON_AddNullToObject(root, "calibration");
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
