/*
 * Helpers for the model-file fuzz targets.
 *
 * Every part of a model file is checksummed, so random mutations almost
 * never get past the container into the META JSON, the ONNX section or the
 * PatchCore bank. These helpers put the checksums right (fuzz_model) or
 * build a whole container around a fuzzed META (fuzz_meta_json), using the
 * layout in src/io/model_file.h, so the loaders behind the container are
 * fuzzed too. The result is handed to nm_model_load through a memfd, so the
 * real load path runs, file reading included.
 */
#ifndef NM_FUZZ_MODEL_CONTAINER_H
#define NM_FUZZ_MODEL_CONTAINER_H

#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "io/model_file.h"

#define MC_ALIGN 64
#define MC_TRAILER 12

static inline uint32_t mc_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t mc_load64(const uint8_t *p)
{
    return (uint64_t)mc_load32(p) | (uint64_t)mc_load32(p + 4) << 32;
}

static inline void mc_store32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mc_store64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline size_t mc_padded(size_t n) { return (n + MC_ALIGN - 1) / MC_ALIGN * MC_ALIGN; }

/* Make the checksums (and the total size) of a mutated model file right
 * wherever its structure can be followed; b has n bytes. */
static inline void mc_fix_checksums(uint8_t *b, size_t n)
{
    if (n < MC_ALIGN + MC_TRAILER || !model_file_has_magic(b, n))
        return;
    mc_store64(b + 16, n);
    mc_store32(b + 24, crc32_update(0, b, 24));
    size_t end = n - MC_TRAILER, off = MC_ALIGN;
    uint32_t sections = mc_load32(b + 12);
    for (uint32_t i = 0; i < sections && end - off >= MC_ALIGN; i++) {
        uint64_t size = mc_load64(b + off + 8);
        if (size > end - off - MC_ALIGN)
            break;
        mc_store32(b + off + 16, crc32_update(0, b + off + MC_ALIGN, size));
        off += MC_ALIGN + mc_padded(size);
        if (off > end)
            break;
    }
    memcpy(b + end, "NMEND\0\0\0", 8);
    mc_store32(b + end + 8, crc32_update(0, b, end));
}

/* Append one section (header, payload, padding) to buf at *len. */
static inline void mc_add_section(uint8_t *buf, size_t *len, const char tag[4],
                           const void *data, size_t size)
{
    uint8_t *h = buf + *len;
    memset(h, 0, MC_ALIGN);
    memcpy(h, tag, 4);
    mc_store64(h + 8, size);
    mc_store32(h + 16, crc32_update(0, data, size));
    if (size)
        memcpy(h + MC_ALIGN, data, size);
    memset(h + MC_ALIGN + size, 0, mc_padded(size) - size);
    *len += MC_ALIGN + mc_padded(size);
}

/* Header and trailer around the sections already in buf[64, *len). */
static inline void mc_finish(uint8_t *buf, size_t *len, uint32_t sections)
{
    memset(buf, 0, MC_ALIGN);
    memcpy(buf, "NOMINAL\x1a", 8);
    mc_store32(buf + 8, 1);
    mc_store32(buf + 12, sections);
    mc_store64(buf + 16, *len + MC_TRAILER);
    mc_store32(buf + 24, crc32_update(0, buf, 24));
    memcpy(buf + *len, "NMEND\0\0\0", 8);
    mc_store32(buf + *len + 8, crc32_update(0, buf, *len));
    *len += MC_TRAILER;
}

/* An in-memory file with a path the loaders can open. */
typedef struct mc_memfile {
    int fd;
    char path[64];
} mc_memfile;

static inline void mc_memfile_open(mc_memfile *m)
{
    m->fd = memfd_create("nominal-fuzz", 0);
    if (m->fd < 0) {
        perror("fuzz: memfd_create");
        exit(1);
    }
    snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
}

static inline void mc_memfile_set(mc_memfile *m, const uint8_t *data, size_t n)
{
    if (ftruncate(m->fd, 0) != 0 ||
        (n && pwrite(m->fd, data, n, 0) != (ssize_t)n)) {
        perror("fuzz: writing the memfd");
        exit(1);
    }
}

/* Load the model at m->path and, when that works and its input is small,
 * score a small image; every failure must pass the oracle. */
static inline void mc_load_and_score(const mc_memfile *m, const nm_image *img)
{
    nm_model *model = NULL;
    nm_error err = {0};
    nm_status st = nm_model_load(m->path, 1, &model, &err);
    fuzz_check_error(st, &err, m->path);
    if (st != NM_OK)
        return;
    nm_model_info info;
    nm_model_get_info(model, &info);
    char *json = nm_model_describe_json(model);
    free(json);
    nm_geometry g;
    /* Scoring runs the backbone: only on small inputs, see fuzz_onnx.c. */
    if (nm_preprocess_geometry(&info.preprocess, img->width, img->height, &g,
                               &err) == NM_OK &&
        (size_t)g.out_width * (size_t)g.out_height <= 64 * 64) {
        nm_result r;
        st = nm_model_score(model, img, 1, &r, &err);
        /* The image and the call are fine, so an error here is about the
         * model: one the backbone finds for this input size must name the
         * file (fuzz_check_run_error); any other had to be refused at load
         * time. */
        if (st == NM_ERR_ARG && !strstr(err.msg, m->path))
            fuzz_fail("scoring a loaded model", st, &err);
        fuzz_check_run_error(st, &err, st == NM_ERR_ARG ? m->path : "");
        if (st == NM_OK) {
            volatile float sink = r.map[(size_t)r.width * (size_t)r.height - 1];
            (void)sink;
            nm_result_free(&r);
        }
    }
    nm_model_close(model);
}

/* A small RGB test image with some structure. */
static inline nm_image mc_test_image(void)
{
    static uint8_t pixels[40 * 30 * 3];
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)(i * 37 % 251);
    return (nm_image){40, 30, 3, pixels};
}

#endif
