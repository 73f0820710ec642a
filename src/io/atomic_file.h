/* Crash-safe file replacement: write to PATH.tmp.PID, fsync, rename. A
 * reader never sees a half-written file and the old file survives a crash
 * or a full disk. */
#ifndef NM_IO_ATOMIC_FILE_H
#define NM_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "nominal.h"

typedef struct atomic_file {
    FILE *f;
    char path[4096];
    char tmp_path[4096 + 32];
} atomic_file;

nm_status atomic_file_open(atomic_file *af, const char *path, nm_error *err);
/* Append bytes; on failure the caller must still call atomic_file_abort. */
nm_status atomic_file_write(atomic_file *af, const void *data, size_t n, nm_error *err);
/* Flush, fsync and rename into place (also syncs the directory). */
nm_status atomic_file_commit(atomic_file *af, nm_error *err);
/* Discard the temp file (safe to call after a failed commit). */
void atomic_file_abort(atomic_file *af);

#endif
