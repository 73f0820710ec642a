#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

nm_status atomic_file_open(atomic_file *af, const char *path, nm_error *err)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return nm_fail(err, NM_ERR_ARG, "%s: path too long", path);
    strcpy(af->path, path);
    /* pid + a per-call nonce: two writers of one path never share a temp */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long nonce = (unsigned long)(uintptr_t)af ^ (unsigned long)ts.tv_nsec;
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld.%lx", path, (long)getpid(), nonce);
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f)
        return nm_fail(err, NM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return NM_OK;
}

nm_status atomic_file_write(atomic_file *af, const void *data, size_t n, nm_error *err)
{
    if (n && fwrite(data, 1, n, af->f) != n)
        return nm_fail(err, NM_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    return NM_OK;
}

/* fsync the directory so the rename itself survives a power loss. */
static void sync_parent_dir(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

nm_status atomic_file_commit(atomic_file *af, nm_error *err)
{
    FILE *f = af->f;
    af->f = NULL;
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        unlink(af->tmp_path);
        return nm_fail(err, NM_ERR_IO, "%s: write failed: %s", af->path, strerror(saved));
    }
    if (rename(af->tmp_path, af->path) != 0) {
        saved = errno;
        unlink(af->tmp_path);
        return nm_fail(err, NM_ERR_IO, "%s: cannot replace: %s", af->path, strerror(saved));
    }
    sync_parent_dir(af->path);
    return NM_OK;
}

void atomic_file_abort(atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp_path[0])
        unlink(af->tmp_path);
}
