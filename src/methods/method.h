/*
 * The method interface. A method (PatchCore, PaDiM, ...) is one file that
 * fills a method_ops table; src/methods/model.c runs everything around it
 * (decoding, preprocessing, the backbone, batching, maps, the model file),
 * so adding a method touches nothing but its own file and one line in
 * method_registry.c.
 *
 * Data flow: fit calls fit_add once per batch with the backbone's taps, then
 * fit_finish; score gets the taps of a batch and returns patch scores on a
 * grid plus one image score per image; save/load move the method's own
 * state to and from sections of the model file.
 */
#ifndef NM_METHODS_METHOD_H
#define NM_METHODS_METHOD_H

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "io/model_file.h"
#include "nominal.h"

typedef struct method_context {
    nm_backend *backend; /* for GEMMs */
    uint64_t seed;
    nm_progress_fn progress;
    void *progress_ctx;
} method_context;

typedef struct method_ops {
    const char *name;
    /* one line per setting, for `nominal fit --help` */
    const char *help;
    /* Parse settings (unknown key -> NM_ERR_ARG naming it) into a new state. */
    nm_status (*create)(const nm_param *params, int n_params, void **state,
                        nm_error *err);
    /* Add one batch of good images' taps (taps[t]: [N][C][H][W]). */
    nm_status (*fit_add)(void *state, const method_context *ctx,
                         const nm_tensor *taps, int n_taps, nm_error *err);
    nm_status (*fit_finish)(void *state, const method_context *ctx, nm_error *err);
    /* Patch grid of the score maps for these taps. */
    void (*grid)(void *state, const nm_tensor *taps, int n_taps, int *width,
                 int *height);
    /* patch_scores: [N][grid h][grid w]; image_scores: [N]. */
    nm_status (*score)(void *state, const method_context *ctx, const nm_tensor *taps,
                       int n_taps, float *patch_scores, float *image_scores,
                       nm_error *err);
    /* Settings and small facts into the model's JSON; big arrays as sections. */
    void (*describe)(void *state, cJSON *obj);
    nm_status (*save)(void *state, model_writer *w, nm_error *err);
    /* Rebuild a state from the JSON written by describe and the sections. */
    nm_status (*load)(const cJSON *obj, const model_file *f, void **state,
                      nm_error *err);
    /* Rows in the memory bank and feature size (0 if not applicable). */
    void (*bank_size)(void *state, size_t *rows, int *dim);
    /* A typical normal patch score, for colour scaling (0 if unknown). */
    float (*normal_scale)(void *state);
    void (*destroy)(void *state);
    /* 1: the image score is the maximum of the blurred map on the network
     * input (the crop), as PaDiM's reference takes it; the pipeline
     * computes it and score()'s image_scores are not used. */
    int image_score_from_map;
} method_ops;

/* Registry: NULL-terminated list of all methods. */
extern const method_ops *const method_registry[];
const method_ops *method_find(const char *name);

#endif
