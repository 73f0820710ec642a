/* Decoding and scoring image files a batch at a time (predict, calibrate,
 * fit --holdout). An image that cannot be read fails alone; the others of
 * its batch are still scored, together. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

nm_status cli_batch_init(cli_batch *b, int cap, nm_error *err)
{
    memset(b, 0, sizeof *b);
    b->images = calloc((size_t)cap, sizeof *b->images);
    b->results = calloc((size_t)cap, sizeof *b->results);
    b->errors = calloc((size_t)cap, sizeof *b->errors);
    b->loaded = calloc((size_t)cap, sizeof *b->loaded);
    b->scored = calloc((size_t)cap, sizeof *b->scored);
    b->cap = cap;
    if (!b->images || !b->results || !b->errors || !b->loaded || !b->scored) {
        cli_batch_free(b);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory");
    }
    return NM_OK;
}

void cli_batch_clear(cli_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        nm_image_free(&b->images[i]);
        nm_result_free(&b->results[i]);
        nm_error_clear(&b->errors[i]);
    }
    b->n = 0;
}

void cli_batch_free(cli_batch *b)
{
    cli_batch_clear(b);
    free(b->images);
    free(b->results);
    free(b->errors);
    free(b->loaded);
    free(b->scored);
    memset(b, 0, sizeof *b);
}

void cli_batch_score(cli_batch *b, nm_model *m, const char *const *paths, int n, int want_map)
{
    cli_batch_clear(b);
    b->n = n < b->cap ? n : b->cap;
    int k = 0;
    for (int i = 0; i < b->n; i++)
        if (nm_image_load(paths[i], 0, &b->images[i], &b->errors[i]) == NM_OK)
            b->loaded[k++] = &b->images[i];
    nm_error err = {0};
    nm_status st = nm_model_score_batch(m, b->loaded, k, want_map, b->scored, &err);
    for (int i = 0, j = 0; i < b->n; i++) {
        if (b->errors[i].code)
            continue;
        if (st)
            b->errors[i] = err;
        else
            b->results[i] = b->scored[j++];
    }
}
