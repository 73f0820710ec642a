/*
 * What a user looks at: an anomaly map drawn in colour, alone (heatmap) or
 * blended over the photo (overlay). One place so that `nominal predict`
 * files and `nominal serve` responses are the same pictures.
 */
#ifndef NM_IMAGE_RENDER_H
#define NM_IMAGE_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

typedef enum render_kind {
    RENDER_HEATMAP,
    RENDER_OVERLAY
} render_kind;

/* Top of a model's colour scale (the bottom is 0): twice a typical normal
 * patch score, so a colour means the same on every image of that model. */
float render_scale_top(const nm_model *m);

/* Draw r's map (r->width x r->height, on img's geometry) into rgb, which
 * holds r->width * r->height * 3 bytes. */
nm_status render_map_rgb(render_kind kind, const nm_image *img, const nm_result *r,
                         float top, uint8_t *rgb, nm_error *err);

/* The same, encoded as a PNG; *png is malloc'ed. */
nm_status render_map_png(render_kind kind, const nm_image *img, const nm_result *r,
                         float top, uint8_t **png, size_t *png_size, nm_error *err);

#endif
