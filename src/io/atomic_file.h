/* Crash-safe file replacement: write to PATH.tmp.PID.NONCE, fsync, rename,
 * fsync the directory. A reader never sees a half-written file and the old
 * file survives a crash or a full disk. On a write error the temp file is
 * removed and the message names PATH and, for ENOSPC/EDQUOT/EFBIG, says the
 * disk is full (or the file size limit reached). A process killed while
 * writing leaves its temp file behind (nothing can remove it then); it is
 * never read, and safe to delete. */
#ifndef NM_IO_ATOMIC_FILE_H
#define NM_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "nominal.h"

typedef struct atomic_file {
    FILE *f;
    char path[4096];
    char tmp_path[4096 + 32];
    unsigned slow_ms; /* test hook, see atomic_file.c */
} atomic_file;

nm_status atomic_file_open(atomic_file *af, const char *path, nm_error *err);
/* Append bytes; on failure the caller must still call atomic_file_abort. */
nm_status atomic_file_write(atomic_file *af, const void *data, size_t n, nm_error *err);
/* Go back to the start, to write over a placeholder (a header). */
nm_status atomic_file_rewind(atomic_file *af, nm_error *err);
/* Flush, fsync and rename into place (also syncs the directory). */
nm_status atomic_file_commit(atomic_file *af, nm_error *err);
/* Discard the temp file (safe to call after a failed commit). */
void atomic_file_abort(atomic_file *af);

#endif
