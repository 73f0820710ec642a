/* Helpers shared by the image sources (decode, resize, preprocess). */
#ifndef NM_IMAGE_INTERNAL_H
#define NM_IMAGE_INTERNAL_H

#include "nominal.h"

/* PIL's "L" conversion (ITU-R 601-2 luma in 16-bit fixed point, rounded),
 * so gray masks decoded here match Image.convert("L") byte for byte. */
static inline uint8_t nm_luma(uint8_t r, uint8_t g, uint8_t b)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* Allocate img as width x height x channels after checking the pixel count
 * against max_pixels (0 = NM_IMAGE_DEFAULT_MAX_PIXELS) and that the byte
 * size fits in size_t; name goes into error messages. On failure img is
 * left empty. */
nm_status nm_image_alloc(int width, int height, int channels,
                         size_t max_pixels, const char *name, nm_image *img,
                         nm_error *err);

/* nm_image_decode into one gray channel, as nm_image_load_gray does for a
 * file (the fuzz targets decode masks from memory through it). */
nm_status nm_image_decode_gray(const uint8_t *data, size_t size,
                               const char *name, size_t max_pixels,
                               nm_image *out, nm_error *err);

#endif
