/* Heatmap and overlay pictures of an anomaly map (see render.h). */
#include "image/render.h"

#include <stdlib.h>

#include "core/error.h"
#include "methods/anomaly_map.h"

/* How much of the heat colour an overlay lets through at the top of the
 * scale: enough to read the defect, while the part stays recognisable. */
#define OVERLAY_ALPHA 0.6f

float render_scale_top(const nm_model *m)
{
    nm_model_info info;
    nm_model_get_info(m, &info);
    return info.map_scale > 0 ? 2.0f * info.map_scale : 1.0f;
}

nm_status render_map_rgb(render_kind kind, const nm_image *img, const nm_result *r,
                         float top, uint8_t *rgb, nm_error *err)
{
    if (!img || !r || !r->map || !rgb)
        return nm_fail(err, NM_ERR_ARG, "render: no map to draw (was it requested?)");
    if (img->width != r->width || img->height != r->height)
        return nm_fail(err, NM_ERR_ARG, "render: map is %dx%d but the image %dx%d",
                       r->width, r->height, img->width, img->height);
    if (kind == RENDER_OVERLAY)
        map_overlay(img, r->map, 0.0f, top, OVERLAY_ALPHA, rgb);
    else
        map_colorize(r->map, r->width, r->height, 0.0f, top, rgb);
    return NM_OK;
}

nm_status render_map_png(render_kind kind, const nm_image *img, const nm_result *r,
                         float top, uint8_t **png, size_t *png_size, nm_error *err)
{
    if (!r || r->width <= 0 || r->height <= 0)
        return nm_fail(err, NM_ERR_ARG, "render: no map to draw");
    uint8_t *rgb = malloc((size_t)r->width * (size_t)r->height * 3);
    if (!rgb)
        return nm_fail(err, NM_ERR_NOMEM, "render: out of memory for a %dx%d picture",
                       r->width, r->height);
    nm_status st = render_map_rgb(kind, img, r, top, rgb, err);
    if (!st)
        st = nm_png_encode(rgb, r->width, r->height, 3, 8, png, png_size, err);
    free(rgb);
    return st;
}
