#include "eval/thumb.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void thumb_free(thumb *t)
{
    if (!t)
        return;
    nm_image_free(&t->photo);
    free(t->map_max);
    free(t->mask_max);
    memset(t, 0, sizeof *t);
}

/* Source range [lo, hi) that destination sample i of n covers in a source
 * of size src: every source sample is covered at least once. */
static void footprint(int i, int n, int src, int *lo, int *hi)
{
    *lo = (int)((int64_t)i * src / n);
    *hi = (int)(((int64_t)(i + 1) * src + n - 1) / n);
}

/* The footprints of the tw columns: xs[2 * i], xs[2 * i + 1]. */
static void column_footprints(int w, int tw, int *xs)
{
    for (int x = 0; x < tw; x++)
        footprint(x, tw, w, &xs[2 * x], &xs[2 * x + 1]);
}

/* dst (tw x th) = the largest value of src (w x h) under each pixel. */
static void pool_max(const float *src, int w, int h, float *dst, int tw, int th,
                     const int *xs)
{
    for (int ty = 0; ty < th; ty++) {
        int y0, y1;
        footprint(ty, th, h, &y0, &y1);
        for (int tx = 0; tx < tw; tx++) {
            float m = src[(size_t)y0 * (size_t)w + (size_t)xs[2 * tx]];
            for (int y = y0; y < y1; y++) {
                const float *row = src + (size_t)y * (size_t)w;
                for (int x = xs[2 * tx]; x < xs[2 * tx + 1]; x++)
                    m = row[x] > m ? row[x] : m;
            }
            dst[(size_t)ty * (size_t)tw + (size_t)tx] = m;
        }
    }
}

/* dst = 1 where any mask pixel under it is set. */
static void pool_any(const uint8_t *src, int w, int h, uint8_t *dst, int tw, int th,
                     const int *xs)
{
    for (int ty = 0; ty < th; ty++) {
        int y0, y1;
        footprint(ty, th, h, &y0, &y1);
        for (int tx = 0; tx < tw; tx++) {
            uint8_t any = 0;
            for (int y = y0; y < y1 && !any; y++) {
                const uint8_t *row = src + (size_t)y * (size_t)w;
                for (int x = xs[2 * tx]; x < xs[2 * tx + 1]; x++)
                    any |= row[x];
            }
            dst[(size_t)ty * (size_t)tw + (size_t)tx] = any != 0;
        }
    }
}

static nm_status make_photo(const nm_image *img, int tw, int th, nm_image *out, nm_error *err)
{
    if (tw != img->width || th != img->height)
        return nm_image_resize(img, tw, th, out, err);
    size_t n = (size_t)tw * (size_t)th * (size_t)img->channels;
    out->pixels = malloc(n);
    if (!out->pixels)
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory for a thumbnail");
    memcpy(out->pixels, img->pixels, n);
    out->width = tw;
    out->height = th;
    out->channels = img->channels;
    return NM_OK;
}

nm_status thumb_make(const nm_image *img, const float *map, const uint8_t *mask,
                     thumb *out, nm_error *err)
{
    memset(out, 0, sizeof *out);
    if (img->channels != 3) /* nm_image_load always gives RGB */
        return nm_fail(err, NM_ERR_ARG, "report: thumbnails need RGB images");
    int w = img->width, h = img->height, side = w > h ? w : h;
    int tw = w, th = h;
    if (side > THUMB_MAX_SIDE) {
        tw = (int)(((int64_t)w * THUMB_MAX_SIDE + side / 2) / side);
        th = (int)(((int64_t)h * THUMB_MAX_SIDE + side / 2) / side);
        tw = tw > 0 ? tw : 1;
        th = th > 0 ? th : 1;
    }
    size_t tn = (size_t)tw * (size_t)th;
    int *xs = malloc(sizeof(int) * 2 * (size_t)tw);
    out->map_max = calloc(tn, sizeof(float));
    out->mask_max = mask ? malloc(tn) : NULL;
    nm_status st = NM_OK;
    if (!xs || !out->map_max || (mask && !out->mask_max))
        st = nm_fail(err, NM_ERR_NOMEM, "report: out of memory for a thumbnail");
    if (!st)
        st = make_photo(img, tw, th, &out->photo, err);
    if (!st) {
        column_footprints(w, tw, xs);
        if (map)
            pool_max(map, w, h, out->map_max, tw, th, xs);
        if (mask)
            pool_any(mask, w, h, out->mask_max, tw, th, xs);
    }
    free(xs);
    if (st)
        thumb_free(out);
    return st;
}

void thumb_draw_contour(uint8_t *rgb, int w, int h, const uint8_t *inside,
                        const uint8_t colour[3])
{
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            if (!inside[i])
                continue;
            int edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !inside[i - 1] ||
                       !inside[i + 1] || !inside[i - (size_t)w] || !inside[i + (size_t)w];
            if (edge)
                memcpy(rgb + 3 * i, colour, 3);
        }
    }
}
