/*
 * PNG (libpng) and JPEG (libturbojpeg) decoding into 8-bit RGB or gray.
 *
 * The reference for every pixel is PIL: Image.open(p).convert("RGB") (or
 * "L" for the gray loader), except for 16-bit PNGs, where PIL's own modes
 * are lossy in odd ways; there nominal keeps round(v / 257), the nearest
 * 8-bit value. Alpha is dropped, never composited, as PIL's convert does.
 *
 * Hostile input must end in an nm_status, never a crash or stderr noise:
 * libpng errors longjmp back into a guard function, its warnings are
 * swallowed, and JPEG warnings (truncated or corrupt data) are errors.
 */
#include "image/image_internal.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <turbojpeg.h>

/* ------------------------------------------------------------ allocation */

nm_status nm_image_alloc(int width, int height, int channels,
                         size_t max_pixels, const char *name, nm_image *img,
                         nm_error *err)
{
    size_t limit = max_pixels ? max_pixels : NM_IMAGE_DEFAULT_MAX_PIXELS;
    *img = (nm_image){0};
    if (width <= 0 || height <= 0)
        return nm_fail(err, NM_ERR_FORMAT, "%s: invalid image size %dx%d",
                       name, width, height);
    /* Divide instead of multiplying so that the check cannot overflow. */
    if ((size_t)width > limit / (size_t)height)
        return nm_fail(err, NM_ERR_LIMIT,
                       "%s: image is %dx%d pixels, over the limit of %zu",
                       name, width, height, limit);
    size_t pixels = (size_t)width * (size_t)height;
    if (pixels > SIZE_MAX / (size_t)channels)
        return nm_fail(err, NM_ERR_LIMIT, "%s: image of %dx%d is too large",
                       name, width, height);
    img->pixels = malloc(pixels * (size_t)channels);
    if (!img->pixels)
        return nm_fail(err, NM_ERR_NOMEM,
                       "%s: out of memory for a %dx%d image", name, width,
                       height);
    img->width = width;
    img->height = height;
    img->channels = channels;
    return NM_OK;
}

void nm_image_free(nm_image *img)
{
    if (img) {
        free(img->pixels);
        *img = (nm_image){0};
    }
}

/* Turn 3-channel pixels into PIL "L" in place (each gray byte lands at or
 * before the RGB triple it is computed from, so a forward pass is safe). */
static void rgb_to_gray_in_place(nm_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *p = img->pixels;
    for (size_t i = 0; i < n; i++)
        p[i] = nm_luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
    img->channels = 1;
    uint8_t *smaller = realloc(p, n); /* failing to shrink is harmless */
    if (smaller)
        img->pixels = smaller;
}

/* ------------------------------------------------------------------- PNG */

typedef struct png_decoder {
    png_structp png;
    png_infop info;
    const char *name;
    const uint8_t *data; /* the whole file */
    size_t size;
    size_t pos;          /* read position for libpng's read callback */
    size_t max_pixels;
    int out_channels;    /* 3 = RGB, 1 = gray */
    nm_error *err;
    nm_image image;      /* result, owned until handed to the caller */
    uint8_t *raw;        /* libpng's output: one row, or all if interlaced */
    png_bytep *rows;     /* interlaced only: row pointers into raw */
    char libpng_msg[160];
} png_decoder;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_decoder *d = png_get_error_ptr(png);
    snprintf(d->libpng_msg, sizeof d->libpng_msg, "%s", msg);
    /* Must not return: libpng would then print and abort on its own. */
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    /* Warnings are about damage libpng recovers from (e.g. a bad CRC in an
     * ancillary chunk, which is skipped); printing them is only noise. */
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep buf, size_t n)
{
    png_decoder *d = png_get_io_ptr(png);
    if (n > d->size - d->pos)
        png_error(png, "file is truncated");
    memcpy(buf, d->data + d->pos, n);
    d->pos += n;
}

/* One 8-bit sample; 16-bit samples (big-endian in PNG) become round(v/257),
 * which for integers is (v + 128) / 257 since v/257 never ends in .5. */
static inline uint8_t png_sample8(const uint8_t *p, int is16)
{
    if (!is16)
        return p[0];
    unsigned v = ((unsigned)p[0] << 8) | p[1];
    return (uint8_t)((v + 128) / 257);
}

/* Convert one row of libpng output (1 = G, 2 = GA, 3 = RGB, 4 = RGBA
 * samples of 8 or 16 bits) into the output row, dropping alpha. */
static void png_convert_row(const uint8_t *raw, int raw_channels, int is16,
                            int width, uint8_t *out, int out_channels)
{
    size_t bytes = is16 ? 2 : 1;
    size_t step = (size_t)raw_channels * bytes;
    int color = raw_channels >= 3;
    for (int x = 0; x < width; x++) {
        const uint8_t *p = raw + (size_t)x * step;
        uint8_t r = png_sample8(p, is16);
        uint8_t g = color ? png_sample8(p + bytes, is16) : r;
        uint8_t b = color ? png_sample8(p + 2 * bytes, is16) : r;
        if (out_channels == 3) {
            out[3 * x] = r;
            out[3 * x + 1] = g;
            out[3 * x + 2] = b;
        } else {
            out[x] = color ? nm_luma(r, g, b) : r;
        }
    }
}

/* Interlaced images arrive in seven passes over the whole image, so libpng
 * needs every raw row at once; the size was bounded by the pixel limit. */
static nm_status png_read_interlaced(png_decoder *d, size_t rowbytes,
                                     int raw_channels, int is16)
{
    nm_image *img = &d->image;
    size_t h = (size_t)img->height;
    if (rowbytes > SIZE_MAX / h)
        return nm_fail(d->err, NM_ERR_LIMIT, "%s: image is too large",
                       d->name);
    d->raw = malloc(rowbytes * h);
    d->rows = malloc(h * sizeof *d->rows);
    if (!d->raw || !d->rows)
        return nm_fail(d->err, NM_ERR_NOMEM,
                       "%s: out of memory decoding an interlaced PNG",
                       d->name);
    for (size_t y = 0; y < h; y++)
        d->rows[y] = d->raw + y * rowbytes;
    png_read_image(d->png, d->rows);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    for (size_t y = 0; y < h; y++)
        png_convert_row(d->rows[y], raw_channels, is16, img->width,
                        img->pixels + y * stride, img->channels);
    return NM_OK;
}

static nm_status png_read_sequential(png_decoder *d, size_t rowbytes,
                                     int raw_channels, int is16)
{
    nm_image *img = &d->image;
    d->raw = malloc(rowbytes);
    if (!d->raw)
        return nm_fail(d->err, NM_ERR_NOMEM, "%s: out of memory", d->name);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) {
        png_read_row(d->png, d->raw, NULL);
        png_convert_row(d->raw, raw_channels, is16, img->width,
                        img->pixels + (size_t)y * stride, img->channels);
    }
    return NM_OK;
}

/* Everything that may call png_error; runs under png_decode_guarded. */
static nm_status png_decode_body(png_decoder *d)
{
    /* libpng's default 1e6 width/height cap would turn legal images into
     * format errors; the pixel limit below is the one that applies. */
    png_set_user_limits(d->png, 0x7fffffff, 0x7fffffff);
    png_read_info(d->png, d->info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(d->png, d->info, &w, &h, &depth, &color, &interlace, NULL,
                 NULL);
    nm_status st = nm_image_alloc((int)w, (int)h, d->out_channels,
                                  d->max_pixels, d->name, &d->image, d->err);
    if (st != NM_OK)
        return st;

    /* Only expand to whole bytes; alpha (including alpha that libpng makes
     * from a palette's tRNS) and 16-bit samples are handled per row. */
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(d->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(d->png);
    if (interlace != PNG_INTERLACE_NONE)
        (void)png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);

    int raw_channels = png_get_channels(d->png, d->info);
    int is16 = png_get_bit_depth(d->png, d->info) == 16;
    size_t rowbytes = png_get_rowbytes(d->png, d->info);
    size_t expected = (size_t)w * (size_t)raw_channels * (is16 ? 2u : 1u);
    if (raw_channels < 1 || raw_channels > 4 || rowbytes != expected)
        return nm_fail(d->err, NM_ERR_INTERNAL,
                       "%s: unexpected PNG row layout (%d channels, %zu "
                       "bytes per row)", d->name, raw_channels, rowbytes);

    st = interlace != PNG_INTERLACE_NONE
             ? png_read_interlaced(d, rowbytes, raw_channels, is16)
             : png_read_sequential(d, rowbytes, raw_channels, is16);
    if (st != NM_OK)
        return st;
    /* Reads up to IEND, so a file cut after the image data is an error. */
    png_read_end(d->png, NULL);
    return NM_OK;
}

/* The setjmp lives here, in a function that changes no local variables, so
 * nothing is indeterminate after libpng longjmps back; all state is in *d,
 * which belongs to the caller's frame. */
static nm_status png_decode_guarded(png_decoder *d)
{
    if (setjmp(png_jmpbuf(d->png))) {
        if (strstr(d->libpng_msg, "memory"))
            return nm_fail(d->err, NM_ERR_NOMEM, "%s: PNG decoder: %s",
                           d->name, d->libpng_msg);
        return nm_fail(d->err, NM_ERR_FORMAT, "%s: invalid PNG: %s",
                       d->name, d->libpng_msg);
    }
    return png_decode_body(d);
}

static nm_status png_decode(const uint8_t *data, size_t size,
                            const char *name, size_t max_pixels,
                            int out_channels, nm_image *out, nm_error *err)
{
    png_decoder d = {.name = name, .data = data, .size = size,
                     .max_pixels = max_pixels, .out_channels = out_channels,
                     .err = err};
    d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, png_on_error,
                                   png_on_warning);
    if (d.png)
        d.info = png_create_info_struct(d.png);
    nm_status st;
    if (!d.png || !d.info) {
        st = nm_fail(err, NM_ERR_NOMEM, "%s: cannot create a PNG decoder",
                     name);
    } else {
        png_set_read_fn(d.png, &d, png_on_read);
        st = png_decode_guarded(&d);
    }
    png_destroy_read_struct(&d.png, &d.info, NULL);
    free(d.rows);
    free(d.raw);
    if (st != NM_OK) {
        nm_image_free(&d.image);
        return st;
    }
    *out = d.image;
    return NM_OK;
}

/* ------------------------------------------------------------------ JPEG */

static nm_status jpeg_decode_with(tjhandle tj, const uint8_t *data,
                                  size_t size, const char *name,
                                  size_t max_pixels, int out_channels,
                                  nm_image *out, nm_error *err)
{
    int w = 0, h = 0, subsamp = -1, colorspace = -1;
    if ((unsigned long)size != size)
        return nm_fail(err, NM_ERR_LIMIT, "%s: file too large", name);
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp,
                            &colorspace) != 0)
        return nm_fail(err, NM_ERR_FORMAT, "%s: invalid JPEG: %s", name,
                       tjGetErrorStr2(tj));
    /* libturbojpeg 2.1 reports success without filling anything in when
     * the data ends before a frame header (it takes it for a tables-only
     * stream), so a cut-off file shows up here. */
    if (w < 1 || h < 1)
        return nm_fail(err, NM_ERR_FORMAT,
                       "%s: invalid JPEG: no image header (file truncated?)",
                       name);
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK)
        return nm_fail(err, NM_ERR_UNSUPPORTED,
                       "%s: CMYK/YCCK JPEG is not supported; convert it to "
                       "RGB", name);

    /* Gray JPEGs decode straight to gray (or are replicated to RGB by
     * libjpeg); color JPEGs decode to RGB and, for gray output, go through
     * PIL's "L" formula rather than libjpeg's own Y channel. */
    int to_gray = out_channels == 1 && colorspace == TJCS_GRAY;
    nm_status st = nm_image_alloc(w, h, to_gray ? 1 : 3, max_pixels, name,
                                  out, err);
    if (st != NM_OK)
        return st;
    /* Accurate IDCT and fancy upsampling are what PIL asks libjpeg for; a
     * warning means truncated or corrupt data, which PIL also refuses. */
    int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
    if (tjDecompress2(tj, data, (unsigned long)size, out->pixels, w, 0, h,
                      to_gray ? TJPF_GRAY : TJPF_RGB, flags) != 0) {
        nm_image_free(out);
        return nm_fail(err, NM_ERR_FORMAT, "%s: invalid JPEG: %s", name,
                       tjGetErrorStr2(tj));
    }
    if (out_channels == 1 && out->channels == 3)
        rgb_to_gray_in_place(out);
    return NM_OK;
}

static nm_status jpeg_decode(const uint8_t *data, size_t size,
                             const char *name, size_t max_pixels,
                             int out_channels, nm_image *out, nm_error *err)
{
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return nm_fail(err, NM_ERR_NOMEM, "%s: cannot create a JPEG decoder",
                       name);
    nm_status st = jpeg_decode_with(tj, data, size, name, max_pixels,
                                    out_channels, out, err);
    tjDestroy(tj);
    return st;
}

/* --------------------------------------------------------------- public */

static int is_png(const uint8_t *data, size_t size)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return size >= sizeof sig && memcmp(data, sig, sizeof sig) == 0;
}

static int is_jpeg(const uint8_t *data, size_t size)
{
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

static nm_status decode_as(const uint8_t *data, size_t size, const char *name,
                           size_t max_pixels, int out_channels, nm_image *out,
                           nm_error *err)
{
    if (!name)
        name = "(memory)";
    if (!out)
        return nm_fail(err, NM_ERR_ARG, "%s: no output image given", name);
    *out = (nm_image){0};
    if (!data && size > 0)
        return nm_fail(err, NM_ERR_ARG, "%s: no data given", name);
    if (data && is_png(data, size))
        return png_decode(data, size, name, max_pixels, out_channels, out,
                          err);
    if (data && is_jpeg(data, size))
        return jpeg_decode(data, size, name, max_pixels, out_channels, out,
                           err);
    return nm_fail(err, NM_ERR_FORMAT, "%s: not a PNG or JPEG image%s", name,
                   size == 0 ? " (empty)" : "");
}

nm_status nm_image_decode(const uint8_t *data, size_t size, const char *name,
                          size_t max_pixels, nm_image *out, nm_error *err)
{
    return decode_as(data, size, name, max_pixels, 3, out, err);
}

nm_status nm_image_decode_gray(const uint8_t *data, size_t size,
                               const char *name, size_t max_pixels,
                               nm_image *out, nm_error *err)
{
    return decode_as(data, size, name, max_pixels, 1, out, err);
}

/* The largest file an image of max_pixels pixels can honestly be: 8 bytes
 * a pixel (16-bit RGBA PNG stored without compression) plus 64 MiB of
 * metadata. Anything bigger is refused before it is read into memory. */
static uint64_t image_file_limit(size_t max_pixels)
{
    uint64_t pixels = max_pixels ? max_pixels : NM_IMAGE_DEFAULT_MAX_PIXELS;
    uint64_t slack = (uint64_t)64 << 20;
    return pixels > (UINT64_MAX - slack) / 8 ? UINT64_MAX : pixels * 8 + slack;
}

/* Read a whole regular file of at most max_bytes into a malloc'ed buffer. */
static nm_status read_whole_file(const char *path, uint64_t max_bytes,
                                 uint8_t **data, size_t *size, nm_error *err)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nm_fail(err, NM_ERR_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    nm_status status = NM_OK;
    if (fstat(fd, &st) != 0) {
        status = nm_fail(err, NM_ERR_IO, "%s: cannot stat: %s", path,
                         strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        status = nm_fail(err, NM_ERR_IO, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > max_bytes ||
               (uintmax_t)st.st_size >= SIZE_MAX) {
        status = nm_fail(err, NM_ERR_LIMIT,
                         "%s: file is %lld bytes, more than an image within "
                         "the pixel limit can be (%llu bytes)", path,
                         (long long)st.st_size, (unsigned long long)max_bytes);
    } else {
        size_t want = (size_t)st.st_size;
        uint8_t *buf = malloc(want ? want : 1);
        size_t got = 0;
        errno = 0;
        while (buf && got < want) {
            ssize_t n = read(fd, buf + got, want - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (!buf) {
            status = nm_fail(err, NM_ERR_NOMEM, "%s: out of memory reading "
                             "%zu bytes", path, want);
        } else if (got != want) {
            free(buf);
            status = nm_fail(err, NM_ERR_IO, "%s: read error: %s", path,
                             errno ? strerror(errno) : "file shrank");
        } else {
            *data = buf;
            *size = want;
        }
    }
    close(fd);
    return status;
}

static nm_status load_as(const char *path, size_t max_pixels,
                         int out_channels, nm_image *out, nm_error *err)
{
    if (out)
        *out = (nm_image){0};
    if (!path || !out)
        return nm_fail(err, NM_ERR_ARG, "%s: no path or output image given",
                       path ? path : "(null)");
    uint8_t *data;
    size_t size;
    nm_status st = read_whole_file(path, image_file_limit(max_pixels), &data,
                                   &size, err);
    if (st != NM_OK)
        return st;
    st = decode_as(data, size, path, max_pixels, out_channels, out, err);
    free(data);
    return st;
}

nm_status nm_image_load(const char *path, size_t max_pixels, nm_image *out,
                        nm_error *err)
{
    return load_as(path, max_pixels, 3, out, err);
}

nm_status nm_image_load_gray(const char *path, size_t max_pixels,
                             nm_image *out, nm_error *err)
{
    return load_as(path, max_pixels, 1, out, err);
}
