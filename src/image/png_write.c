/*
 * PNG encoding into memory (libpng with a write callback) and atomic
 * writing to disk (temp file, fsync, rename).
 */
#include "core/error.h"
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

typedef struct png_encoder {
    png_structp png;
    png_infop info;
    const uint8_t *pixels;
    int width, height, channels, bit_depth;
    uint8_t *buf; /* growing output buffer */
    size_t size, cap;
    int out_of_memory;
    char libpng_msg[160];
} png_encoder;

static void enc_on_error(png_structp png, png_const_charp msg)
{
    png_encoder *e = png_get_error_ptr(png);
    snprintf(e->libpng_msg, sizeof e->libpng_msg, "%s", msg);
    png_longjmp(png, 1); /* returning would make libpng abort */
}

static void enc_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* nothing a caller could act on; keep stderr clean */
    (void)msg;
}

static void enc_on_write(png_structp png, png_bytep data, size_t n)
{
    png_encoder *e = png_get_io_ptr(png);
    if (n > e->cap - e->size) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap - e->size < n) {
            if (cap > SIZE_MAX / 2) {
                e->out_of_memory = 1;
                png_error(png, "output too large");
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(e->buf, cap);
        if (!grown) {
            e->out_of_memory = 1;
            png_error(png, "out of memory");
        }
        e->buf = grown;
        e->cap = cap;
    }
    memcpy(e->buf + e->size, data, n);
    e->size += n;
}

static void enc_on_flush(png_structp png) { (void)png; }

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Everything that may call png_error; runs under enc_guarded. */
static void enc_body(png_encoder *e)
{
    png_set_write_fn(e->png, e, enc_on_write, enc_on_flush);
    /* Maps and overlays are written per inspected image: zlib's fastest
     * level with one filter encodes a 900x900 RGB image several times
     * faster than the defaults, for files about a third larger. */
    png_set_compression_level(e->png, 1);
    png_set_filter(e->png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_IHDR(e->png, e->info, (png_uint_32)e->width,
                 (png_uint_32)e->height, e->bit_depth,
                 e->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(e->png, e->info);
    /* PNG stores 16-bit samples big-endian; the input is host order. */
    if (e->bit_depth == 16 && host_is_little_endian())
        png_set_swap(e->png);
    size_t stride = (size_t)e->width * (size_t)e->channels *
                    (size_t)(e->bit_depth / 8);
    for (int y = 0; y < e->height; y++)
        png_write_row(e->png, e->pixels + (size_t)y * stride);
    png_write_end(e->png, NULL);
}

/* setjmp in a function that modifies no locals; state lives in *e. */
static int enc_guarded(png_encoder *e)
{
    if (setjmp(png_jmpbuf(e->png)))
        return -1;
    enc_body(e);
    return 0;
}

static nm_status check_encode_args(const void *pixels, int width, int height,
                                   int channels, int bit_depth,
                                   uint8_t **out, size_t *out_size,
                                   nm_error *err)
{
    if (!pixels || !out || !out_size)
        return nm_fail(err, NM_ERR_ARG, "png encode: missing pixels or output");
    if (width <= 0 || height <= 0)
        return nm_fail(err, NM_ERR_ARG, "png encode: invalid size %dx%d",
                       width, height);
    if (channels != 1 && channels != 3)
        return nm_fail(err, NM_ERR_ARG,
                       "png encode: %d channels, expected 1 or 3", channels);
    if (bit_depth != 8 && !(bit_depth == 16 && channels == 1))
        return nm_fail(err, NM_ERR_ARG,
                       "png encode: bit depth %d with %d channels (use 8, or "
                       "16 for gray)", bit_depth, channels);
    return NM_OK;
}

nm_status nm_png_encode(const void *pixels, int width, int height,
                        int channels, int bit_depth, uint8_t **out,
                        size_t *out_size, nm_error *err)
{
    nm_status st = check_encode_args(pixels, width, height, channels,
                                     bit_depth, out, out_size, err);
    if (st != NM_OK)
        return st;
    *out = NULL;
    *out_size = 0;
    png_encoder e = {.pixels = pixels, .width = width, .height = height,
                     .channels = channels, .bit_depth = bit_depth};
    e.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, enc_on_error,
                                    enc_on_warning);
    if (e.png)
        e.info = png_create_info_struct(e.png);
    if (!e.png || !e.info) {
        st = nm_fail(err, NM_ERR_NOMEM, "png encode: out of memory");
    } else if (enc_guarded(&e) != 0) {
        /* Arguments were checked, so libpng only refuses what it cannot
         * represent (e.g. a width over its limit) or runs out of memory. */
        st = nm_fail(err, e.out_of_memory ? NM_ERR_NOMEM : NM_ERR_ARG,
                     "png encode: %s", e.libpng_msg);
    }
    png_destroy_write_struct(&e.png, &e.info);
    if (st != NM_OK) {
        free(e.buf);
        return st;
    }
    *out = e.buf;
    *out_size = e.size;
    return NM_OK;
}

nm_status nm_png_write(const char *path, const void *pixels, int width,
                       int height, int channels, int bit_depth, nm_error *err)
{
    if (!path || !*path)
        return nm_fail(err, NM_ERR_ARG, "png write: no path given");
    uint8_t *data;
    size_t size;
    nm_status st = nm_png_encode(pixels, width, height, channels, bit_depth,
                                 &data, &size, err);
    if (st != NM_OK) {
        /* Keep the one-line message, but name the file first. */
        if (err) {
            nm_error inner = *err;
            nm_fail(err, st, "%s: %s", path, inner.msg);
        }
        return st;
    }
    atomic_file af;
    st = atomic_file_open(&af, path, err);
    if (st == NM_OK && (st = atomic_file_write(&af, data, size, err)) == NM_OK)
        st = atomic_file_commit(&af, err);
    if (st != NM_OK)
        atomic_file_abort(&af);
    free(data);
    return st;
}
