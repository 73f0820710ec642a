/*
 * Image -> network input, reproducing torchvision 0.14 on a PIL image:
 *   Resize(resize_short) -> CenterCrop((crop_h, crop_w)) -> ToTensor ->
 *   Normalize(mean, std), float32, planar [3][H][W].
 * The resize is nm_image_resize (bit-exact with PIL's bilinear), and the
 * float arithmetic is done in float32 in torch's order, so the result is
 * bit-identical to torchvision's tensor.
 */
#include "image/image_internal.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>

void nm_preprocess_default(nm_preprocess *p)
{
    if (!p)
        return;
    *p = (nm_preprocess){
        .resize_short = 256,
        .crop_width = 224,
        .crop_height = 224,
        .mean = {0.485f, 0.456f, 0.406f},
        .std = {0.229f, 0.224f, 0.225f},
    };
}

/* Python's int(round(d / 2.0)) for an integer d: halves go to even. */
static int half_round_even(int d)
{
    int q = d / 2; /* toward zero */
    if (d % 2 == 0)
        return q;
    /* d odd: d / 2 is q +- 0.5; pick the even neighbour. */
    int other = d > 0 ? q + 1 : q - 1;
    return (q % 2 == 0) ? q : other;
}

/* Python's floor division by 2 for the padding amounts (d >= 0 here). */
static int pad_before(int d) { return d / 2; }

/* torchvision's CenterCrop along one axis: where the crop starts in the
 * resized image; negative when the crop is larger and torchvision pads
 * (crop_size - size) // 2 zero pixels before the image. */
static int crop_start(int size, int crop_size)
{
    if (crop_size > size)
        return -pad_before(crop_size - size);
    return half_round_even(size - crop_size);
}

static nm_status check_preprocess(const nm_preprocess *p, nm_error *err)
{
    if (!p)
        return nm_fail(err, NM_ERR_ARG, "preprocess: no parameters given");
    if (p->resize_short < 0 || p->crop_width < 0 || p->crop_height < 0)
        return nm_fail(err, NM_ERR_ARG,
                       "preprocess: negative size (resize %d, crop %dx%d)",
                       p->resize_short, p->crop_width, p->crop_height);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) ||
            p->std[c] == 0.0f)
            return nm_fail(err, NM_ERR_ARG,
                           "preprocess: channel %d needs a finite mean and a "
                           "finite non-zero std (got %g, %g)", c,
                           (double)p->mean[c], (double)p->std[c]);
    }
    return NM_OK;
}

/* torchvision's Resize(int): the shorter side becomes `target`, the longer
 * int(target * long / short) (Python true division, then truncation). */
static nm_status resized_size(int target, int w, int h, int *rw, int *rh,
                              nm_error *err)
{
    if (target == 0) {
        *rw = w;
        *rh = h;
        return NM_OK;
    }
    int shorter = w <= h ? w : h;
    int longer = w <= h ? h : w;
    /* target * longer < 2^62 is exact in double below 2^53 and a single
     * correctly rounded division, as in Python. */
    double scaled = (double)((int64_t)target * longer) / shorter;
    if (scaled >= 2147483647.0)
        return nm_fail(err, NM_ERR_LIMIT,
                       "preprocess: resizing %dx%d to short side %d is too "
                       "large", w, h, target);
    int new_long = (int)scaled;
    *rw = w <= h ? target : new_long;
    *rh = w <= h ? new_long : target;
    return NM_OK;
}

nm_status nm_preprocess_geometry(const nm_preprocess *p, int src_width,
                                 int src_height, nm_geometry *geom,
                                 nm_error *err)
{
    nm_status st = check_preprocess(p, err);
    if (st != NM_OK)
        return st;
    if (!geom)
        return nm_fail(err, NM_ERR_ARG, "preprocess: no geometry output");
    if (src_width <= 0 || src_height <= 0)
        return nm_fail(err, NM_ERR_ARG, "preprocess: invalid image size %dx%d",
                       src_width, src_height);
    nm_geometry g = {.src_width = src_width, .src_height = src_height};
    st = resized_size(p->resize_short, src_width, src_height,
                      &g.resized_width, &g.resized_height, err);
    if (st != NM_OK)
        return st;
    if ((size_t)g.resized_width >
        NM_IMAGE_DEFAULT_MAX_PIXELS / (size_t)g.resized_height)
        return nm_fail(err, NM_ERR_LIMIT,
                       "preprocess: resized image %dx%d exceeds %zu pixels",
                       g.resized_width, g.resized_height,
                       NM_IMAGE_DEFAULT_MAX_PIXELS);
    g.out_width = p->crop_width ? p->crop_width : g.resized_width;
    g.out_height = p->crop_height ? p->crop_height : g.resized_height;
    if ((size_t)g.out_width >
        NM_IMAGE_DEFAULT_MAX_PIXELS / (size_t)g.out_height)
        return nm_fail(err, NM_ERR_LIMIT,
                       "preprocess: output %dx%d exceeds %zu pixels",
                       g.out_width, g.out_height, NM_IMAGE_DEFAULT_MAX_PIXELS);
    g.crop_x = crop_start(g.resized_width, g.out_width);
    g.crop_y = crop_start(g.resized_height, g.out_height);
    *geom = g;
    return NM_OK;
}

/* ToTensor + Normalize for every byte value, in torch's float32 order:
 * (v / 255) then (x - mean) / std, each step rounded to float. */
static void make_lut(const nm_preprocess *p, float lut[3][256])
{
    for (int c = 0; c < 3; c++) {
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            lut[c][v] = (x - p->mean[c]) / p->std[c];
        }
    }
}

/* Crop (with zero padding outside the image) and normalize into planar
 * output. Gray images feed all three channels. */
static void crop_normalize(const nm_image *img, const nm_geometry *g,
                           const float lut[3][256], float *out)
{
    size_t plane = (size_t)g->out_width * (size_t)g->out_height;
    int ch = img->channels;
    /* Output columns [x0, x1) come from the image, the rest is padding. */
    int x0 = g->crop_x < 0 ? -g->crop_x : 0;
    int x1 = img->width - g->crop_x;
    if (x1 > g->out_width)
        x1 = g->out_width;
    for (int c = 0; c < 3; c++) {
        const float *l = lut[c];
        int src_c = ch == 1 ? 0 : c;
        for (int y = 0; y < g->out_height; y++) {
            float *o = out + c * plane + (size_t)y * (size_t)g->out_width;
            int sy = g->crop_y + y;
            if (sy < 0 || sy >= img->height) {
                for (int x = 0; x < g->out_width; x++)
                    o[x] = l[0];
                continue;
            }
            const uint8_t *row =
                img->pixels + (size_t)sy * (size_t)img->width * (size_t)ch;
            for (int x = 0; x < x0; x++)
                o[x] = l[0];
            for (int x = x0; x < x1; x++)
                o[x] = l[row[(size_t)(g->crop_x + x) * (size_t)ch + src_c]];
            for (int x = x1 < x0 ? x0 : x1; x < g->out_width; x++)
                o[x] = l[0];
        }
    }
}

nm_status nm_preprocess_image(const nm_preprocess *p, const nm_image *img,
                              float *out, nm_geometry *geom, nm_error *err)
{
    if (!img || !img->pixels || !out)
        return nm_fail(err, NM_ERR_ARG, "preprocess: missing image or output");
    if (img->channels != 1 && img->channels != 3)
        return nm_fail(err, NM_ERR_ARG,
                       "preprocess: image has %d channels, expected 1 or 3",
                       img->channels);
    nm_geometry g;
    nm_status st = nm_preprocess_geometry(p, img->width, img->height, &g, err);
    if (st != NM_OK)
        return st;

    nm_image resized = {0};
    const nm_image *src = img;
    /* torchvision leaves an image of the target size untouched. */
    if (g.resized_width != img->width || g.resized_height != img->height) {
        st = nm_image_resize(img, g.resized_width, g.resized_height, &resized,
                             err);
        if (st != NM_OK)
            return st;
        src = &resized;
    }
    float lut[3][256];
    make_lut(p, lut);
    crop_normalize(src, &g, (const float(*)[256])lut, out);
    nm_image_free(&resized);
    if (geom)
        *geom = g;
    return NM_OK;
}
