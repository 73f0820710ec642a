/*
 * Image layer: decoding against PIL, resizing bit-exact against PIL's
 * bilinear, preprocessing against torchvision, PNG encoding round trips,
 * and clean failures on hostile files.
 *
 * Reference data comes from tests/tools/gen_image.py (tu_fixtures()/image).
 * Synthetic fixtures missing is a failure (the generator needs nothing but
 * PIL/numpy/torch); the MVTec bottle cases skip when ../shared is absent.
 */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <png.h>

#include "nominal.h"

/* ---------------------------------------------------------------- helpers */

static const char *fixture(const char *sub, const char *name)
{
    return tu_path("%s/image/%s/%s", tu_fixtures(), sub, name);
}

/* Synthetic fixtures must exist: they do not depend on shared data. */
static uint8_t *read_fixture(const char *path, size_t expected_size)
{
    size_t size = 0;
    uint8_t *data = tu_read_file(path, &size);
    if (!data)
        fail_msg("fixture %s missing: run tests/tools/gen_image.py", path);
    if (expected_size != (size_t)-1 && size != expected_size) {
        free(data);
        fail_msg("%s: %zu bytes, expected %zu", path, size, expected_size);
    }
    return data;
}

static FILE *open_manifest(const char *sub, const char *name)
{
    const char *path = fixture(sub, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("fixture %s missing: run tests/tools/gen_image.py", path);
    return f;
}

/* Largest absolute byte difference; *first_bad gets the first index that
 * differs (or n). */
static int max_byte_diff(const uint8_t *a, const uint8_t *b, size_t n,
                         size_t *first_bad)
{
    int worst = 0;
    *first_bad = n;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d && *first_bad == n)
            *first_bad = i;
        if (d > worst)
            worst = d;
    }
    return worst;
}

static double max_float_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) /* NaN counts as a failure */
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

/* An error message is one line that starts with the file's name. */
static void assert_message_names(const nm_error *err, const char *name)
{
    if (strncmp(err->msg, name, strlen(name)) != 0)
        fail_msg("message does not start with \"%s\": %s", name, err->msg);
    assert_null(strchr(err->msg, '\n'));
}

/* Load path and compare with raw expected bytes, allowing max_diff. */
static void check_load(const char *path, int gray, int w, int h,
                       const char *expected_path, int max_diff)
{
    nm_image img;
    nm_error err = {0};
    nm_status st = gray ? nm_image_load_gray(path, 0, &img, &err)
                        : nm_image_load(path, 0, &img, &err);
    if (st != NM_OK)
        fail_msg("%s: %s", path, err.msg);
    int ch = gray ? 1 : 3;
    if (img.width != w || img.height != h || img.channels != ch)
        fail_msg("%s: decoded %dx%dx%d, expected %dx%dx%d", path, img.width,
                 img.height, img.channels, w, h, ch);
    size_t n = (size_t)w * h * ch;
    uint8_t *expected = read_fixture(expected_path, n);
    size_t first;
    int diff = max_byte_diff(img.pixels, expected, n, &first);
    if (diff > max_diff)
        fail_msg("%s (%s): max diff %d > %d, first at byte %zu (%u vs %u)",
                 path, gray ? "gray" : "rgb", diff, max_diff, first,
                 img.pixels[first], expected[first]);
    free(expected);
    nm_image_free(&img);
}

/* ------------------------------------------------------------- decoding */

typedef struct decode_case {
    const char *name;
    int width, height;
} decode_case;

static const decode_case png_cases[] = {
    {"gray8.png", 37, 23},          {"gray_alpha.png", 29, 13},
    {"rgb8.png", 64, 48},           {"rgba8.png", 40, 30},
    {"one_pixel.png", 1, 1},        {"strip.png", 10000, 10},
    {"odd7x3.png", 7, 3},           {"rgb8_filters.png", 33, 21},
    {"gray16.png", 31, 17},         {"gray_alpha16.png", 19, 11},
    {"rgb16.png", 23, 19},          {"rgba16.png", 19, 11},
    {"palette.png", 45, 27},        {"palette_trns.png", 45, 27},
    {"palette4.png", 35, 9},        {"gray1.png", 37, 11},
    {"gray2.png", 13, 7},           {"gray4.png", 21, 5},
    {"gray_trns.png", 15, 9},       {"rgb_interlaced.png", 37, 29},
    {"gray16_interlaced.png", 13, 11}, {"gray1_interlaced.png", 19, 10},
};

static const decode_case jpeg_cases[] = {
    {"rgb420.jpg", 67, 45}, {"rgb444.jpg", 67, 45}, {"rgb422.jpg", 67, 45},
    {"progressive.jpg", 67, 45}, {"gray.jpg", 33, 17},
};

/* PIL and libturbojpeg run the same libjpeg-turbo code (accurate integer
 * IDCT, fancy upsampling), so the pixels must be identical. */
#define JPEG_MAX_DIFF 0

static void test_png_decode_matches_pil_for_every_color_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof png_cases / sizeof *png_cases; i++) {
        const decode_case *c = &png_cases[i];
        const char *path = fixture("decode", c->name);
        check_load(path, 0, c->width, c->height,
                   tu_path("%s.rgb", path), 0);
        check_load(path, 1, c->width, c->height,
                   tu_path("%s.gray", path), 0);
    }
}

static void test_jpeg_decode_matches_pil(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof jpeg_cases / sizeof *jpeg_cases; i++) {
        const decode_case *c = &jpeg_cases[i];
        const char *path = fixture("decode", c->name);
        check_load(path, 0, c->width, c->height, tu_path("%s.rgb", path),
                   JPEG_MAX_DIFF);
        check_load(path, 1, c->width, c->height, tu_path("%s.gray", path),
                   JPEG_MAX_DIFF);
    }
}

static void test_decode_from_memory_equals_load(void **state)
{
    (void)state;
    const char *names[] = {"rgb8.png", "rgb420.jpg"};
    for (int i = 0; i < 2; i++) {
        const char *path = fixture("decode", names[i]);
        size_t size = 0;
        uint8_t *data = tu_read_file(path, &size);
        if (!data)
            fail_msg("fixture %s missing: run tests/tools/gen_image.py", path);
        nm_image a, b;
        nm_error err = {0};
        assert_int_equal(nm_image_decode(data, size, "mem", 0, &a, &err),
                         NM_OK);
        assert_int_equal(nm_image_load(path, 0, &b, &err), NM_OK);
        assert_int_equal(a.width, b.width);
        assert_int_equal(a.height, b.height);
        assert_int_equal(a.channels, 3);
        assert_memory_equal(a.pixels, b.pixels,
                            (size_t)a.width * a.height * 3);
        nm_image_free(&a);
        nm_image_free(&b);
        free(data);
    }
}

static void test_cmyk_jpeg_is_unsupported_and_names_file(void **state)
{
    (void)state;
    const char *path = fixture("decode", "cmyk.jpg");
    nm_image img = {.width = 99};
    nm_error err = {0};
    assert_int_equal(nm_image_load(path, 0, &img, &err), NM_ERR_UNSUPPORTED);
    assert_int_equal(err.code, NM_ERR_UNSUPPORTED);
    assert_message_names(&err, path);
    assert_non_null(strstr(err.msg, "CMYK"));
    assert_null(img.pixels);
    assert_int_equal(img.width, 0);
}

typedef struct bad_case {
    const char *sub, *name;
    nm_status status;
    const char *text; /* must appear in the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"bad", "empty.png", NM_ERR_FORMAT, "not a PNG or JPEG image"},
    {"bad", "text.png", NM_ERR_FORMAT, "not a PNG or JPEG image"},
    {"bad", "corrupt_crc.png", NM_ERR_FORMAT, "CRC"},
    {"bad", "corrupt_idat.png", NM_ERR_FORMAT, "invalid PNG"},
    {"bad", "bad_zlib.png", NM_ERR_FORMAT, "invalid PNG"},
    {"bad", "bad_depth.png", NM_ERR_FORMAT, "invalid PNG"},
    {"bad", "garbage.jpg", NM_ERR_FORMAT, "invalid JPEG"},
    {"bad", "huge_ihdr.png", NM_ERR_LIMIT, "100000x100000"},
    {"bad", "huge_sof.jpg", NM_ERR_LIMIT, "60000x60000"},
    {"decode", "cmyk.jpg", NM_ERR_UNSUPPORTED, "CMYK"},
};

static void check_bad_file(const char *path, nm_status want, const char *text)
{
    if (!tu_exists(path))
        fail_msg("fixture %s missing: run tests/tools/gen_image.py", path);
    nm_image img = {.width = 5, .pixels = NULL};
    nm_error err = {0};
    nm_status st = nm_image_load(path, 0, &img, &err);
    if (st != want)
        fail_msg("%s: status %s, expected %s (%s)", path, nm_status_name(st),
                 nm_status_name(want), err.msg);
    assert_int_equal(err.code, want);
    assert_message_names(&err, path);
    if (text && !strstr(err.msg, text))
        fail_msg("%s: message lacks \"%s\": %s", path, text, err.msg);
    assert_null(img.pixels);
    assert_int_equal(img.width, 0);
    /* The gray loader shares the decoder but must fail the same way. */
    assert_int_equal(nm_image_load_gray(path, 0, &img, &err), want);
    assert_null(img.pixels);
}

static void test_bad_files_fail_with_status_and_file_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++)
        check_bad_file(fixture(bad_cases[i].sub, bad_cases[i].name),
                       bad_cases[i].status, bad_cases[i].text);
}

/* Each truncated file listed by the generator; returns how many. */
static int for_each_truncated(void (*fn)(const char *path))
{
    FILE *f = open_manifest("bad", "truncated_list.txt");
    char name[256];
    int n = 0;
    while (fscanf(f, "%255s", name) == 1) {
        fn(fixture("bad", name));
        n++;
    }
    fclose(f);
    return n;
}

static void check_truncated(const char *path)
{
    check_bad_file(path, NM_ERR_FORMAT, NULL);
}

static void test_truncated_png_and_jpeg_are_format_errors(void **state)
{
    (void)state;
    /* 8 PNG cut points + 6 JPEG cut points */
    assert_int_equal(for_each_truncated(check_truncated), 14);
}

static void decode_quietly(const char *path)
{
    nm_image img;
    nm_error err;
    if (nm_image_load(path, 0, &img, &err) == NM_OK)
        nm_image_free(&img);
}

static void test_bad_files_write_nothing_to_stderr(void **state)
{
    (void)state;
    char log[] = "/tmp/nm_test_image_stderr_XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++)
        decode_quietly(fixture(bad_cases[i].sub, bad_cases[i].name));
    int n = for_each_truncated(decode_quietly);
    /* A damaged ancillary chunk makes libpng warn (and carry on). */
    decode_quietly(fixture("bad", "ancillary_crc.png"));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    size_t size = 0;
    char *text = (char *)tu_read_file(log, &size);
    unlink(log);
    if (size != 0)
        fail_msg("decoders wrote to stderr: %s", text ? text : "?");
    free(text);
    assert_true(n > 0);
}

static void test_bad_ancillary_chunk_crc_is_skipped(void **state)
{
    (void)state;
    /* Same pixels as rgb8.png plus a tEXt chunk whose CRC is wrong. */
    check_load(fixture("bad", "ancillary_crc.png"), 0, 64, 48,
               tu_path("%s.rgb", fixture("decode", "rgb8.png")), 0);
}

static void test_missing_file_is_io_error_with_strerror(void **state)
{
    (void)state;
    const char *path = "/nonexistent-dir/none.png";
    nm_image img;
    nm_error err = {0};
    assert_int_equal(nm_image_load(path, 0, &img, &err), NM_ERR_IO);
    assert_message_names(&err, path);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    /* A directory opens but is not an image file. */
    assert_int_equal(nm_image_load("/tmp", 0, &img, &err), NM_ERR_IO);
    assert_message_names(&err, "/tmp");
}

static void test_max_pixels_limit_applies_before_decoding(void **state)
{
    (void)state;
    const char *path = fixture("decode", "rgb8.png"); /* 64x48 = 3072 */
    nm_image img;
    nm_error err = {0};
    assert_int_equal(nm_image_load(path, 3071, &img, &err), NM_ERR_LIMIT);
    assert_message_names(&err, path);
    assert_non_null(strstr(err.msg, "3071"));
    assert_int_equal(nm_image_load(path, 3072, &img, &err), NM_OK);
    nm_image_free(&img);
    path = fixture("decode", "rgb420.jpg"); /* 67x45 = 3015 */
    assert_int_equal(nm_image_load(path, 3014, &img, &err), NM_ERR_LIMIT);
    assert_int_equal(nm_image_load(path, 3015, &img, &err), NM_OK);
    nm_image_free(&img);
}

static void test_decode_rejects_missing_arguments(void **state)
{
    (void)state;
    nm_image img;
    nm_error err = {0};
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a,
                                       '\n'};
    assert_int_equal(nm_image_decode(NULL, 10, "x", 0, &img, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_image_decode(png_sig, 8, "x", 0, NULL, &err),
                     NM_ERR_ARG);
    /* Signature only: a PNG cut right after its magic. */
    assert_int_equal(nm_image_decode(png_sig, 8, "sig", 0, &img, &err),
                     NM_ERR_FORMAT);
    assert_message_names(&err, "sig");
    /* A NULL err is allowed everywhere. */
    assert_int_equal(nm_image_decode(png_sig, 8, "sig", 0, &img, NULL),
                     NM_ERR_FORMAT);
    nm_image_free(NULL);
}

/* --------------------------------------------------------------- resize */

static void check_resize_case(const char *src_name, int w, int h, int ch,
                              int ow, int oh, const char *out_name)
{
    nm_image src = {w, h, ch, read_fixture(fixture("resize", src_name),
                                           (size_t)w * h * ch)};
    size_t n = (size_t)ow * oh * ch;
    uint8_t *expected = read_fixture(fixture("resize", out_name), n);
    nm_image dst;
    nm_error err = {0};
    if (nm_image_resize(&src, ow, oh, &dst, &err) != NM_OK)
        fail_msg("%s: %s", out_name, err.msg);
    assert_int_equal(dst.width, ow);
    assert_int_equal(dst.height, oh);
    assert_int_equal(dst.channels, ch);
    size_t first;
    int diff = max_byte_diff(dst.pixels, expected, n, &first);
    if (diff != 0)
        fail_msg("resize %dx%dx%d -> %dx%d (%s): max diff %d, first at byte "
                 "%zu (%u vs PIL %u)", w, h, ch, ow, oh, out_name, diff, first,
                 dst.pixels[first], expected[first]);
    nm_image_free(&dst);
    free(expected);
    free(src.pixels);
}

static void test_resize_is_bit_exact_with_pil_bilinear(void **state)
{
    (void)state;
    FILE *f = open_manifest("resize", "resize_cases.txt");
    char src[256], out[256];
    int w, h, ch, ow, oh, n = 0;
    while (fscanf(f, "%255s %d %d %d %d %d %255s", src, &w, &h, &ch, &ow, &oh,
                  out) == 7) {
        check_resize_case(src, w, h, ch, ow, oh, out);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 24); /* every case the generator writes */
}

static void test_resize_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t px[12] = {0};
    nm_image src = {2, 2, 3, px}, dst;
    nm_error err = {0};
    assert_int_equal(nm_image_resize(&src, 0, 5, &dst, &err), NM_ERR_ARG);
    assert_int_equal(nm_image_resize(&src, 5, -1, &dst, &err), NM_ERR_ARG);
    assert_int_equal(nm_image_resize(NULL, 5, 5, &dst, &err), NM_ERR_ARG);
    assert_int_equal(nm_image_resize(&src, 5, 5, NULL, &err), NM_ERR_ARG);
    assert_int_equal(nm_image_resize(&src, 5, 5, &src, &err), NM_ERR_ARG);
    nm_image bad = {2, 2, 0, px};
    assert_int_equal(nm_image_resize(&bad, 5, 5, &dst, &err), NM_ERR_ARG);
    bad = (nm_image){0, 2, 3, px};
    assert_int_equal(nm_image_resize(&bad, 5, 5, &dst, &err), NM_ERR_ARG);
}

/* ----------------------------------------------------------- preprocess */

static void check_preprocess_case(const char *src_name, int gray,
                                  const nm_preprocess *p,
                                  const nm_geometry *want,
                                  const char *out_name)
{
    const char *path = fixture("preprocess", src_name);
    nm_image img;
    nm_error err = {0};
    nm_status st = gray ? nm_image_load_gray(path, 0, &img, &err)
                        : nm_image_load(path, 0, &img, &err);
    if (st != NM_OK)
        fail_msg("%s", err.msg);
    nm_geometry g;
    assert_int_equal(nm_preprocess_geometry(p, img.width, img.height, &g,
                                            &err), NM_OK);
    if (memcmp(&g, want, sizeof g) != 0)
        fail_msg("%s: geometry resized %dx%d crop %d,%d out %dx%d, expected "
                 "%dx%d crop %d,%d out %dx%d", src_name, g.resized_width,
                 g.resized_height, g.crop_x, g.crop_y, g.out_width,
                 g.out_height, want->resized_width, want->resized_height,
                 want->crop_x, want->crop_y, want->out_width,
                 want->out_height);
    size_t n = (size_t)3 * g.out_width * g.out_height;
    float *ref = tu_read_f32(fixture("preprocess", out_name), n);
    if (!ref)
        fail_msg("fixture %s missing or wrong size", out_name);
    float *out = malloc(n * sizeof *out);
    nm_geometry g2;
    assert_int_equal(nm_preprocess_image(p, &img, out, &g2, &err), NM_OK);
    assert_memory_equal(&g2, &g, sizeof g);
    double diff = max_float_diff(out, ref, n);
    /* Same bytes in, same float32 operations in the same order: exact. */
    if (diff != 0.0)
        fail_msg("%s: max |diff| vs torchvision %g", src_name, diff);
    free(out);
    free(ref);
    nm_image_free(&img);
}

static void test_preprocess_matches_torchvision(void **state)
{
    (void)state;
    FILE *f = open_manifest("preprocess", "preprocess_cases.txt");
    char src[256], kind[16], out[256];
    nm_preprocess p;
    nm_geometry g;
    double mean[3], std[3];
    int n = 0;
    while (fscanf(f, "%255s %15s %d %d %d %lf %lf %lf %lf %lf %lf %d %d %d %d "
                  "%d %d %255s", src, kind, &p.resize_short, &p.crop_width,
                  &p.crop_height, &mean[0], &mean[1], &mean[2], &std[0],
                  &std[1], &std[2], &g.resized_width, &g.resized_height,
                  &g.crop_x, &g.crop_y, &g.out_width, &g.out_height,
                  out) == 18) {
        for (int c = 0; c < 3; c++) {
            /* torch makes float32 from the Python doubles, as here. */
            p.mean[c] = (float)mean[c];
            p.std[c] = (float)std[c];
        }
        nm_image probe;
        nm_error err;
        assert_int_equal(nm_image_load(fixture("preprocess", src), 0, &probe,
                                       &err), NM_OK);
        g.src_width = probe.width;
        g.src_height = probe.height;
        nm_image_free(&probe);
        check_preprocess_case(src, strcmp(kind, "gray") == 0, &p, &g, out);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 13); /* every case the generator writes */
}

static nm_geometry geometry_of(const nm_preprocess *p, int w, int h)
{
    nm_geometry g;
    nm_error err = {0};
    if (nm_preprocess_geometry(p, w, h, &g, &err) != NM_OK)
        fail_msg("%dx%d: %s", w, h, err.msg);
    return g;
}

static void test_preprocess_geometry_default_and_odd_shapes(void **state)
{
    (void)state;
    nm_preprocess p;
    nm_preprocess_default(&p);
    nm_geometry g = geometry_of(&p, 900, 900); /* MVTec bottle */
    nm_geometry want = {900, 900, 256, 256, 16, 16, 224, 224};
    assert_memory_equal(&g, &want, sizeof g);
    g = geometry_of(&p, 640, 480); /* (341 - 224) / 2 = 58.5 -> 58 */
    want = (nm_geometry){640, 480, 341, 256, 58, 16, 224, 224};
    assert_memory_equal(&g, &want, sizeof g);
    g = geometry_of(&p, 480, 640);
    want = (nm_geometry){480, 640, 256, 341, 16, 58, 224, 224};
    assert_memory_equal(&g, &want, sizeof g);
    g = geometry_of(&p, 1000, 3); /* int(256 * 1000 / 3) = 85333 */
    assert_int_equal(g.resized_width, 85333);
    assert_int_equal(g.resized_height, 256);
}

static void test_preprocess_crop_rounds_half_to_even(void **state)
{
    (void)state;
    nm_preprocess p;
    nm_preprocess_default(&p);
    p.resize_short = 0;
    /* (size - 224) / 2 = 16.5, 17.5, 18.5, 19.5 -> 16, 18, 18, 20 */
    const int sizes[] = {257, 259, 261, 263};
    const int starts[] = {16, 18, 18, 20};
    for (int i = 0; i < 4; i++) {
        nm_geometry g = geometry_of(&p, sizes[i], 300);
        assert_int_equal(g.crop_x, starts[i]);
        assert_int_equal(g.crop_y, 38);
        assert_int_equal(g.resized_width, sizes[i]);
        g = geometry_of(&p, 300, sizes[i]);
        assert_int_equal(g.crop_y, starts[i]);
    }
}

static void test_preprocess_crop_larger_than_image_is_zero_padded(void **state)
{
    (void)state;
    nm_preprocess p;
    nm_preprocess_default(&p);
    p.resize_short = 0;
    nm_geometry g = geometry_of(&p, 100, 80);
    assert_int_equal(g.crop_x, -62); /* torchvision pads (224-100)//2 left */
    assert_int_equal(g.crop_y, -72);
    g = geometry_of(&p, 101, 300); /* 123 // 2 = 61 left, 62 right */
    assert_int_equal(g.crop_x, -61);
    assert_int_equal(g.crop_y, 38);

    /* 3x2 white image, 5x4 crop: one padded ring (right/bottom one wider). */
    uint8_t px[3 * 2 * 3];
    memset(px, 255, sizeof px);
    nm_image img = {3, 2, 3, px};
    p.crop_width = 5;
    p.crop_height = 4;
    float out[3 * 4 * 5];
    nm_error err = {0};
    assert_int_equal(nm_preprocess_image(&p, &img, out, &g, &err), NM_OK);
    assert_int_equal(g.crop_x, -1);
    assert_int_equal(g.crop_y, -1);
    for (int c = 0; c < 3; c++) {
        float zero = (0.0f - p.mean[c]) / p.std[c];
        float white = (1.0f - p.mean[c]) / p.std[c];
        for (int y = 0; y < 4; y++) {
            for (int x = 0; x < 5; x++) {
                int inside = x >= 1 && x <= 3 && y >= 1 && y <= 2;
                float v = out[c * 20 + y * 5 + x];
                if (v != (inside ? white : zero))
                    fail_msg("c%d (%d,%d) = %g, expected %g", c, x, y, v,
                             inside ? white : zero);
            }
        }
    }
}

static void test_preprocess_gray_equals_replicated_rgb(void **state)
{
    (void)state;
    uint8_t gray[7 * 5], rgb[7 * 5 * 3];
    for (int i = 0; i < 35; i++) {
        gray[i] = (uint8_t)(i * 37 + 5);
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    }
    nm_image g_img = {7, 5, 1, gray}, c_img = {7, 5, 3, rgb};
    nm_preprocess p = {.resize_short = 4, .crop_width = 4, .crop_height = 3,
                       .mean = {0.1f, 0.2f, 0.3f}, .std = {0.5f, 0.6f, 0.7f}};
    float a[3 * 4 * 3], b[3 * 4 * 3];
    nm_error err = {0};
    assert_int_equal(nm_preprocess_image(&p, &g_img, a, NULL, &err), NM_OK);
    assert_int_equal(nm_preprocess_image(&p, &c_img, b, NULL, &err), NM_OK);
    assert_memory_equal(a, b, sizeof a);
    /* and the channels differ, since mean/std do */
    assert_true(a[0] != a[12]);
}

static void test_preprocess_rejects_bad_arguments(void **state)
{
    (void)state;
    nm_preprocess p;
    nm_geometry g;
    nm_error err = {0};
    nm_preprocess_default(&p);
    assert_int_equal(p.resize_short, 256);
    assert_int_equal(p.crop_width, 224);
    assert_int_equal(p.crop_height, 224);
    assert_true(p.mean[0] == 0.485f && p.std[2] == 0.225f);

    assert_int_equal(nm_preprocess_geometry(NULL, 10, 10, &g, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_preprocess_geometry(&p, 0, 10, &g, &err), NM_ERR_ARG);
    assert_int_equal(nm_preprocess_geometry(&p, 10, -3, &g, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_preprocess_geometry(&p, 10, 10, NULL, &err),
                     NM_ERR_ARG);
    nm_preprocess q = p;
    q.resize_short = -1;
    assert_int_equal(nm_preprocess_geometry(&q, 10, 10, &g, &err), NM_ERR_ARG);
    q = p;
    q.crop_height = -224;
    assert_int_equal(nm_preprocess_geometry(&q, 10, 10, &g, &err), NM_ERR_ARG);
    q = p;
    q.std[1] = 0.0f;
    assert_int_equal(nm_preprocess_geometry(&q, 10, 10, &g, &err), NM_ERR_ARG);
    q = p;
    q.mean[2] = NAN;
    assert_int_equal(nm_preprocess_geometry(&q, 10, 10, &g, &err), NM_ERR_ARG);

    uint8_t px[4] = {0};
    nm_image two = {2, 1, 2, px};
    float out[3 * 224 * 224];
    assert_int_equal(nm_preprocess_image(&p, &two, out, NULL, &err),
                     NM_ERR_ARG);
    nm_image one = {2, 2, 1, px};
    assert_int_equal(nm_preprocess_image(&p, &one, NULL, NULL, &err),
                     NM_ERR_ARG);
}

/* --------------------------------------------------------------- bottle */

static const char *bottle_dir(void)
{
    return tu_path("%s/data/mvtec_ad/bottle", tu_shared());
}

static void test_bottle_decode_resize_preprocess_match_pil(void **state)
{
    (void)state;
    TU_REQUIRE_FILE(tu_path("%s/train/good/000.png", bottle_dir()));
    FILE *f = open_manifest("bottle", "bottle_cases.txt");
    char rel[256], rgb_name[64], r256_name[64], f32_name[64];
    int w, h, n = 0;
    nm_preprocess p;
    nm_preprocess_default(&p);
    while (fscanf(f, "%255s %d %d %63s %63s %63s", rel, &w, &h, rgb_name,
                  r256_name, f32_name) == 6) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", bottle_dir(), rel);
        check_load(path, 0, w, h, fixture("bottle", rgb_name), 0);

        nm_image img, small;
        nm_error err = {0};
        assert_int_equal(nm_image_load(path, 0, &img, &err), NM_OK);
        assert_int_equal(nm_image_resize(&img, 256, 256, &small, &err), NM_OK);
        uint8_t *ref = read_fixture(fixture("bottle", r256_name),
                                    256 * 256 * 3);
        size_t first;
        int diff = max_byte_diff(small.pixels, ref, 256 * 256 * 3, &first);
        if (diff != 0)
            fail_msg("%s: resize max diff %d at %zu", rel, diff, first);
        free(ref);
        nm_image_free(&small);

        float *want = tu_read_f32(fixture("bottle", f32_name), 3 * 224 * 224);
        assert_non_null(want);
        float *out = malloc(3 * 224 * 224 * sizeof *out);
        nm_geometry g;
        assert_int_equal(nm_preprocess_image(&p, &img, out, &g, &err), NM_OK);
        nm_geometry expect = {900, 900, 256, 256, 16, 16, 224, 224};
        assert_memory_equal(&g, &expect, sizeof g);
        double fd = max_float_diff(out, want, 3 * 224 * 224);
        if (fd != 0.0)
            fail_msg("%s: preprocess max |diff| vs torchvision %g", rel, fd);
        free(out);
        free(want);
        nm_image_free(&img);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 7);
}

static void test_bottle_mask_and_jpeg_match_pil(void **state)
{
    (void)state;
    TU_REQUIRE_FILE(tu_path("%s/train/good/000.png", bottle_dir()));
    FILE *f = open_manifest("bottle", "mask_case.txt");
    char rel[256], gray_name[64];
    int w, h;
    assert_int_equal(fscanf(f, "%255s %d %d %63s", rel, &w, &h, gray_name), 4);
    fclose(f);
    check_load(tu_path("%s/%s", bottle_dir(), rel), 1, w, h,
               fixture("bottle", gray_name), 0);
    const char *jpg = fixture("decode", "bottle.jpg");
    check_load(jpg, 0, 900, 900, tu_path("%s.rgb", jpg), JPEG_MAX_DIFF);
    check_load(jpg, 1, 900, 900, tu_path("%s.gray", jpg), JPEG_MAX_DIFF);
}

/* ------------------------------------------------------------ PNG write */

/* Decode a 16-bit gray PNG with libpng directly (nominal's decoder reduces
 * to 8 bits); returns host-order samples or fails the test. */
typedef struct mem_reader {
    const uint8_t *data;
    size_t size, pos;
} mem_reader;

static void mem_read(png_structp png, png_bytep out, size_t n)
{
    mem_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos)
        png_error(png, "truncated");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static int read_gray16(png_structp png, png_infop info, uint16_t *out,
                       int w, int h)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_read_info(png, info);
    if ((int)png_get_image_width(png, info) != w ||
        (int)png_get_image_height(png, info) != h ||
        png_get_bit_depth(png, info) != 16 ||
        png_get_color_type(png, info) != PNG_COLOR_TYPE_GRAY)
        return -2;
    for (int y = 0; y < h; y++) {
        uint8_t row[2 * 64];
        png_read_row(png, row, NULL);
        for (int x = 0; x < w; x++) /* PNG is big-endian */
            out[y * w + x] = (uint16_t)(row[2 * x] << 8 | row[2 * x + 1]);
    }
    png_read_end(png, NULL);
    return 0;
}

static void test_png_encode_gray16_round_trips_exactly(void **state)
{
    (void)state;
    enum { W = 37, H = 5 };
    uint16_t px[W * H], back[W * H];
    for (int i = 0; i < W * H; i++) /* both bytes differ: catches swaps */
        px[i] = (uint16_t)(i * 353 + 0x0102);
    uint8_t *png_data;
    size_t size;
    nm_error err = {0};
    assert_int_equal(nm_png_encode(px, W, H, 1, 16, &png_data, &size, &err),
                     NM_OK);
    mem_reader r = {png_data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL,
                                             NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_read_fn(png, &r, mem_read);
    int rc = read_gray16(png, info, back, W, H);
    png_destroy_read_struct(&png, &info, NULL);
    assert_int_equal(rc, 0);
    assert_memory_equal(px, back, sizeof px);

    /* nominal's own decoder gives round(v / 257). */
    nm_image img;
    assert_int_equal(nm_image_decode(png_data, size, "g16", 0, &img, &err),
                     NM_OK);
    for (int i = 0; i < W * H; i++) {
        uint8_t want = (uint8_t)((px[i] + 128) / 257);
        assert_int_equal(img.pixels[3 * i], want);
        assert_int_equal(img.pixels[3 * i + 2], want);
    }
    nm_image_free(&img);
    free(png_data);
}

static void test_png_encode_gray8_and_rgb8_round_trip(void **state)
{
    (void)state;
    enum { W = 29, H = 13 };
    uint8_t gray[W * H], rgb[W * H * 3];
    for (int i = 0; i < W * H; i++)
        gray[i] = (uint8_t)(i * 7 + (i >> 3));
    for (int i = 0; i < W * H * 3; i++)
        rgb[i] = (uint8_t)(i * 13 + (i >> 5));
    uint8_t *data;
    size_t size;
    nm_image img;
    nm_error err = {0};

    assert_int_equal(nm_png_encode(gray, W, H, 1, 8, &data, &size, &err),
                     NM_OK);
    assert_int_equal(nm_image_decode(data, size, "g8", 0, &img, &err), NM_OK);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(img.pixels[3 * i], gray[i]);
        assert_int_equal(img.pixels[3 * i + 1], gray[i]);
    }
    nm_image_free(&img);
    free(data);

    assert_int_equal(nm_png_encode(rgb, W, H, 3, 8, &data, &size, &err),
                     NM_OK);
    assert_int_equal(nm_image_decode(data, size, "rgb8", 0, &img, &err),
                     NM_OK);
    assert_int_equal(img.channels, 3);
    assert_memory_equal(img.pixels, rgb, sizeof rgb);
    nm_image_free(&img);
    free(data);
}

static void test_png_encode_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t px[16] = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    nm_error err = {0};
    assert_int_equal(nm_png_encode(px, 2, 2, 2, 8, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(px, 2, 2, 4, 8, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(px, 2, 2, 3, 16, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(px, 2, 2, 1, 4, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(px, 0, 2, 1, 8, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(NULL, 2, 2, 1, 8, &data, &size, &err),
                     NM_ERR_ARG);
    assert_int_equal(nm_png_encode(px, 2, 2, 1, 8, NULL, &size, &err),
                     NM_ERR_ARG);
    assert_null(data);
}

/* Names in dir other than `keep`; returns how many (and prints them). */
static int count_other_entries(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (keep && !strcmp(e->d_name, keep)))
            continue;
        fprintf(stderr, "unexpected file %s/%s\n", dir, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void test_png_write_replaces_file_atomically(void **state)
{
    (void)state;
    char dir[] = "/tmp/nm_test_png_write_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.png", dir);
    uint8_t a[6 * 4 * 3], b[6 * 4 * 3];
    for (size_t i = 0; i < sizeof a; i++) {
        a[i] = (uint8_t)i;
        b[i] = (uint8_t)(255 - i);
    }
    nm_error err = {0};
    nm_image img;
    assert_int_equal(nm_png_write(path, a, 6, 4, 3, 8, &err), NM_OK);
    assert_int_equal(nm_png_write(path, b, 6, 4, 3, 8, &err), NM_OK);
    assert_int_equal(nm_image_load(path, 0, &img, &err), NM_OK);
    assert_memory_equal(img.pixels, b, sizeof b);
    nm_image_free(&img);
    assert_int_equal(count_other_entries(dir, "out.png"), 0);
    unlink(path);
    rmdir(dir);
}

static void test_png_write_fails_cleanly_on_unwritable_path(void **state)
{
    (void)state;
    uint8_t px[4] = {1, 2, 3, 4};
    nm_error err = {0};
    const char *missing = "/nonexistent-dir/sub/out.png";
    assert_int_equal(nm_png_write(missing, px, 2, 2, 1, 8, &err), NM_ERR_IO);
    assert_message_names(&err, missing);

    /* The target is a directory: the temp file is written, the rename
     * fails, and the temp file must be gone afterwards. */
    char dir[] = "/tmp/nm_test_png_write_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char target[256];
    snprintf(target, sizeof target, "%s/target", dir);
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(nm_png_write(target, px, 2, 2, 1, 8, &err), NM_ERR_IO);
    assert_message_names(&err, target);
    assert_int_equal(count_other_entries(dir, "target"), 0);

    /* Bad pixels arguments are reported with the path too. */
    assert_int_equal(nm_png_write(target, px, 2, 2, 2, 8, &err), NM_ERR_ARG);
    assert_message_names(&err, target);
    rmdir(target);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_decode_matches_pil_for_every_color_type),
        cmocka_unit_test(test_jpeg_decode_matches_pil),
        cmocka_unit_test(test_decode_from_memory_equals_load),
        cmocka_unit_test(test_cmyk_jpeg_is_unsupported_and_names_file),
        cmocka_unit_test(test_bad_files_fail_with_status_and_file_name),
        cmocka_unit_test(test_truncated_png_and_jpeg_are_format_errors),
        cmocka_unit_test(test_bad_files_write_nothing_to_stderr),
        cmocka_unit_test(test_bad_ancillary_chunk_crc_is_skipped),
        cmocka_unit_test(test_missing_file_is_io_error_with_strerror),
        cmocka_unit_test(test_max_pixels_limit_applies_before_decoding),
        cmocka_unit_test(test_decode_rejects_missing_arguments),
        cmocka_unit_test(test_resize_is_bit_exact_with_pil_bilinear),
        cmocka_unit_test(test_resize_rejects_bad_arguments),
        cmocka_unit_test(test_preprocess_matches_torchvision),
        cmocka_unit_test(test_preprocess_geometry_default_and_odd_shapes),
        cmocka_unit_test(test_preprocess_crop_rounds_half_to_even),
        cmocka_unit_test(test_preprocess_crop_larger_than_image_is_zero_padded),
        cmocka_unit_test(test_preprocess_gray_equals_replicated_rgb),
        cmocka_unit_test(test_preprocess_rejects_bad_arguments),
        cmocka_unit_test(test_bottle_decode_resize_preprocess_match_pil),
        cmocka_unit_test(test_bottle_mask_and_jpeg_match_pil),
        cmocka_unit_test(test_png_encode_gray16_round_trips_exactly),
        cmocka_unit_test(test_png_encode_gray8_and_rgb8_round_trip),
        cmocka_unit_test(test_png_encode_rejects_bad_arguments),
        cmocka_unit_test(test_png_write_replaces_file_atomically),
        cmocka_unit_test(test_png_write_fails_cleanly_on_unwritable_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
