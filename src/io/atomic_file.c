#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

/* strerror, plus what the user can do about the errors a full disk gives. */
static const char *write_error(int e)
{
    switch (e) {
    case ENOSPC: return "no space left on device (the disk is full)";
    case EDQUOT: return "disk quota exceeded (the disk is full for this user)";
    case EFBIG: return "file too large (the file size limit was reached)";
    default: return strerror(e);
    }
}

/* Test hook: NOMINAL_TEST_SLOW_WRITE=MS sleeps MS milliseconds before each
 * write, so tests/test_durable_write.sh can kill a writer mid-file. */
static unsigned slow_write_ms(void)
{
    const char *v = getenv("NOMINAL_TEST_SLOW_WRITE");
    long ms = v ? strtol(v, NULL, 10) : 0;
    return ms > 0 && ms < 10000 ? (unsigned)ms : 0;
}

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
    /* O_EXCL: never write through something already there (a symlink
     * planted at the temp name, another writer's file). */
    int fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 && !(af->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(af->tmp_path);
        errno = e;
    }
    if (!af->f) {
        int e = errno;
        af->tmp_path[0] = '\0'; /* nothing of ours to remove */
        return nm_fail(err, NM_ERR_IO, "%s: cannot create: %s", path, write_error(e));
    }
    af->slow_ms = slow_write_ms();
    return NM_OK;
}

nm_status atomic_file_write(atomic_file *af, const void *data, size_t n, nm_error *err)
{
    if (af->slow_ms) {
        struct timespec ts = {af->slow_ms / 1000, (long)(af->slow_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (n && fwrite(data, 1, n, af->f) != n)
        return nm_fail(err, NM_ERR_IO, "%s: write failed: %s", af->path, write_error(errno));
    return NM_OK;
}

nm_status atomic_file_rewind(atomic_file *af, nm_error *err)
{
    /* seeking flushes stdio's buffer: a full disk may show up here */
    if (fseek(af->f, 0, SEEK_SET) != 0)
        return nm_fail(err, NM_ERR_IO, "%s: write failed: %s", af->path, write_error(errno));
    return NM_OK;
}

/* fsync the directory so the rename itself survives a power loss. Not
 * every file system can sync a directory; that is no reason to fail. */
static void sync_parent_dir(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

nm_status atomic_file_commit(atomic_file *af, nm_error *err)
{
    FILE *f = af->f;
    af->f = NULL;
    /* a full disk shows up here when the data still sat in stdio's buffer */
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        unlink(af->tmp_path);
        return nm_fail(err, NM_ERR_IO, "%s: write failed: %s", af->path, write_error(saved));
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
