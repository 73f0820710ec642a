/*
 * The nominal model container: one self-contained, checksummed file.
 *
 * Layout (little-endian; every header and payload starts on a 64-byte
 * boundary, gaps zero-padded):
 *   file header (32 bytes, padded to 64): magic "NOMINAL\x1a" (8) | u32 format
 *             version | u32 n_sections | u64 total file size | u32 crc32 of
 *             the 24 bytes before it | u32 reserved
 *   per section: header (24 bytes, padded to 64): char tag[4] | u32 flags
 *             | u64 payload size | u32 payload crc32 | u32 reserved; then the
 *             payload, zero-padded to 64 bytes
 *   trailer : magic "NMEND\0\0\0" | u32 crc32 of every byte before the trailer
 * A reader checks magic, header crc, then version: a damaged version field
 * reads as damage, a genuine newer file as "newer". Future versions must
 * keep the first 24 bytes and that rule.
 * Payloads are 64-byte aligned in the file and in the loaded buffer, so
 * float arrays can be used in place. Writing goes through atomic_file
 * (temp file, fsync, rename): a crash or a full disk never damages an
 * existing model. Reading verifies magic, version (a newer file is refused
 * with a message saying so), sizes, and every checksum before use.
 * A file is read by mapping it (read-only, private, populated): a 2 GB
 * PaDiM model loads in about a second instead of the ten that copying it
 * into fresh memory costs, and processes serving one model share its
 * pages. This relies on model files never being rewritten in place (they
 * are replaced by rename, so a mapped file keeps its bytes); a file that
 * cannot be mapped is read into memory instead.
 */
#ifndef NM_IO_MODEL_FILE_H
#define NM_IO_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

#define MODEL_FILE_VERSION 1

typedef struct model_writer model_writer;

nm_status model_writer_open(const char *path, model_writer **out, nm_error *err);
/* Append one section; tag is 4 ASCII characters. */
nm_status model_writer_add(model_writer *w, const char tag[4], const void *data,
                           size_t size, nm_error *err);
/* Finish the file and move it into place; frees w in all cases. */
nm_status model_writer_commit(model_writer *w, nm_error *err);
/* Discard (no file is created or changed); frees w. NULL-safe. */
void model_writer_abort(model_writer *w);

typedef struct model_section {
    char tag[5]; /* NUL-terminated */
    uint32_t flags;
    const uint8_t *data; /* 64-byte aligned, inside the file's buffer */
    size_t size;
} model_section;

typedef struct model_file {
    char *path;
    uint32_t version;
    const uint8_t *buffer; /* the whole file, 64-byte aligned, read-only */
    size_t size;
    int mapped; /* buffer is a read-only mapping of the file (munmap) */
    model_section *sections;
    int n_sections;
} model_file;

nm_status model_file_read(const char *path, model_file **out, nm_error *err);
nm_status model_file_read_memory(const uint8_t *data, size_t size, const char *name,
                                 model_file **out, nm_error *err);
void model_file_free(model_file *f);
/* First section with this tag, or NULL. */
const model_section *model_file_find(const model_file *f, const char *tag);
/* Whether the first bytes look like a nominal model (for `info`). */
int model_file_has_magic(const uint8_t *head, size_t n);

/* CRC-32 (IEEE 802.3, as zlib's crc32), continuing from crc (0 to start). */
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

#endif
