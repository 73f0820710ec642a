/*
 * The image decoders on untrusted bytes (shared by fuzz_png and fuzz_jpeg,
 * which differ only in their seeds): decode as RGB, and when that works
 * also as gray, and check what comes out.
 */
#ifndef NM_FUZZ_IMAGE_H
#define NM_FUZZ_IMAGE_H

#include "fuzz_common.h"
#include "image/image_internal.h"

static inline void check_image(const nm_image *img, int channels)
{
    if (img->width < 1 || img->height < 1 || img->channels != channels ||
        !img->pixels ||
        (size_t)img->width * (size_t)img->height > NM_IMAGE_DEFAULT_MAX_PIXELS) {
        fprintf(stderr, "fuzz oracle: decoded %dx%dx%d image\n", img->width,
                img->height, img->channels);
        abort();
    }
    /* Touch the first and last pixel: ASan reports a short buffer. */
    volatile uint8_t sink = img->pixels[0];
    sink = img->pixels[(size_t)img->width * (size_t)img->height *
                           (size_t)channels - 1];
    (void)sink;
}

static inline int fuzz_decode(const uint8_t *data, size_t size, const char *name)
{
    nm_image rgb, gray;
    nm_error err = {0};
    nm_status st = nm_image_decode(data, size, name, 0, &rgb, &err);
    fuzz_check_error(st, &err, name);
    if (st != NM_OK)
        return 0;
    check_image(&rgb, 3);
    st = nm_image_decode_gray(data, size, name, 0, &gray, &err);
    if (st != NM_OK || gray.width != rgb.width || gray.height != rgb.height)
        fuzz_fail("decodes as RGB but not the same as gray", st, &err);
    check_image(&gray, 1);
    nm_image_free(&gray);
    nm_image_free(&rgb);
    return 0;
}

#endif
