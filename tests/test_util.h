/*
 * Small helpers shared by the cmocka tests (header-only, static functions).
 *
 * Paths: NOMINAL_SHARED is ../shared (models and MVTec data, read-only),
 * NOMINAL_FIXTURES is build/fixtures (reference data made at test time by
 * tests/tools/gen_*.py). tests/run.sh sets both. A test that needs one that
 * is missing calls skip() after printing why, so a missing ../shared shows
 * as SKIPPED with a reason, never as a silent pass.
 */
#ifndef NM_TEST_UTIL_H
#define NM_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

static inline const char *tu_env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return (v && *v) ? v : fallback;
}

static inline int tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* snprintf into a static rotating buffer set: convenient for paths. */
static inline const char *tu_path(const char *fmt, ...)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

static inline const char *tu_shared(void)
{
    return tu_env_or("NOMINAL_SHARED", "../shared");
}

static inline const char *tu_fixtures(void)
{
    return tu_env_or("NOMINAL_FIXTURES", "build/fixtures");
}

/* Skip the current test unless path exists. */
#define TU_REQUIRE_FILE(path)                                                  \
    do {                                                                       \
        if (!tu_exists(path)) {                                                \
            fprintf(stderr, "SKIP %s: %s not found (shared data or fixtures "  \
                            "missing)\n", __func__, (path));                   \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* Read a whole file; returns malloc'ed buffer (NUL-terminated) or NULL. */
static inline uint8_t *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (size)
            *size = (size_t)n;
    }
    return buf;
}

/* Read a raw little-endian float32 file of exactly `count` values. */
static inline float *tu_read_f32(const char *path, size_t count)
{
    size_t size = 0;
    uint8_t *buf = tu_read_file(path, &size);
    if (!buf)
        return NULL;
    if (size != count * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, size,
                count * sizeof(float));
        free(buf);
        return NULL;
    }
    return (float *)buf;
}

static inline int tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* max |a-b| / max|ref| over n values; also reports the worst index. */
static inline double tu_max_rel_err(const float *got, const float *ref,
                                    size_t n, size_t *worst)
{
    double maxref = 0, maxerr = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
    }
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)ref[i]);
        if (!(e <= maxerr)) { /* also catches NaN */
            maxerr = isnan(e) ? INFINITY : e;
            wi = i;
        }
    }
    if (worst)
        *worst = wi;
    return maxref > 0 ? maxerr / maxref : maxerr;
}

#endif
