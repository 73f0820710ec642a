/*
 * Model container tests: CRC-32 against known vectors and a bitwise
 * reference, round trips (alignment, empty and large sections), and every
 * way a file can be damaged (truncation at every length, every single-bit
 * flip, edited fields with the checksums recomputed, newer versions, wrong
 * magic), plus the atomic-write guarantees (abort, replace, full disk).
 */
#include "test_util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/model_file.h"

/* ---------------------------------------------------------------- helpers */

/* One bit at a time, straight from the definition: the reference the
 * table-driven crc32_update is checked against. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* Deterministic pseudo-random bytes (xorshift). */
static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void make_temp_dir(char *dir, size_t size)
{
    snprintf(dir, size, "%s/nm_model_XXXXXX", tu_env_or("TMPDIR", "/tmp"));
    assert_non_null(mkdtemp(dir));
}

/* Entries in dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    }
    closedir(d);
    return n;
}

/* The test directories hold plain files only. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(tu_path("%s/%s", dir, e->d_name));
    }
    closedir(d);
    rmdir(dir);
}

static void expect_ok(nm_status st, const nm_error *err)
{
    if (st != NM_OK)
        fail_msg("status %d: %s", st, err->msg);
}

/* Small sections (with an empty one and one exactly 64 bytes long) so that
 * every byte of the file can be damaged in turn. */
static void write_small_model(const char *path)
{
    uint8_t payload[100];
    fill_random(payload, sizeof payload, 7);
    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(path, &w, &err), &err);
    expect_ok(model_writer_add(w, "META", "{\"k\":1}", 7, &err), &err);
    expect_ok(model_writer_add(w, "EMPT", NULL, 0, &err), &err);
    expect_ok(model_writer_add(w, "SIXF", payload, 64, &err), &err);
    expect_ok(model_writer_add(w, "DATA", payload, sizeof payload, &err),
              &err);
    expect_ok(model_writer_commit(w, &err), &err);
}

/* Reading bytes as a file named `name` must fail with `code`, with a one-line
 * message naming it. Returns the message. */
static const char *expect_fail(const uint8_t *data, size_t size,
                               const char *name, nm_status code)
{
    static nm_error err;
    model_file *f = (model_file *)&f;
    memset(&err, 0, sizeof err);
    nm_status st = model_file_read_memory(data, size, name, &f, &err);
    if (st != code)
        fail_msg("%s (%zu bytes): expected status %d, got %d (%s)", name, size,
                 code, st, err.msg);
    assert_ptr_equal(f, (model_file *)&f); /* *out untouched */
    if (!strstr(err.msg, name) || strchr(err.msg, '\n'))
        fail_msg("bad message: %s", err.msg);
    return err.msg;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/* After editing fields, make both file-level checksums valid again so the
 * reader's structural checks are what is tested. */
static void fix_checksums(uint8_t *b, size_t size)
{
    put_u32(b + 24, crc32_update(0, b, 24));
    if (size >= 76)
        put_u32(b + size - 4, crc32_update(0, b, size - 12));
}

/* ------------------------------------------------------------------- crc */

static void test_crc_vectors(void **state)
{
    (void)state;
    assert_int_equal(crc32_update(0, "123456789", 9), 0xcbf43926u);
    assert_int_equal(crc32_update(0, "", 0), 0);
    assert_int_equal(crc32_update(0, NULL, 0), 0);
    assert_int_equal(crc32_update(0, "a", 1), 0xe8b7be43u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(crc32_update(0, fox, strlen(fox)), 0x414fa339u);
    uint8_t zeros32[32] = {0};
    assert_int_equal(crc32_update(0, zeros32, sizeof zeros32), 0x190a55adu);
    uint8_t ones32[32];
    memset(ones32, 0xff, sizeof ones32);
    assert_int_equal(crc32_update(0, ones32, sizeof ones32), 0xff6cab0bu);
}

/* Every length up to a few slicing blocks, at every start alignment, and
 * split at every point (continuing crc == crc of the whole). */
static void test_crc_matches_bitwise(void **state)
{
    (void)state;
    uint8_t buf[300];
    fill_random(buf, sizeof buf, 12345);
    for (size_t start = 0; start < 8; start++) {
        for (size_t n = 0; start + n <= sizeof buf; n += 1 + n / 16) {
            uint32_t want = crc32_bitwise(buf + start, n);
            assert_int_equal(crc32_update(0, buf + start, n), want);
            for (size_t cut = 0; cut <= n; cut += 1 + cut / 8) {
                uint32_t c = crc32_update(0, buf + start, cut);
                c = crc32_update(c, buf + start + cut, n - cut);
                assert_int_equal(c, want);
            }
        }
    }
    /* Every byte value in every slot of the 8-byte step. */
    uint8_t big[8 * 256 + 5];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + i / 256);
    assert_int_equal(crc32_update(0, big, sizeof big),
                     crc32_bitwise(big, sizeof big));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Printed, not asserted: sanitizer builds are several times slower. */
static void test_crc_throughput(void **state)
{
    (void)state;
    size_t n = (size_t)64 << 20;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    fill_random(buf, n, 99);
    uint32_t c = 0;
    double t0 = now_s();
    for (int rep = 0; rep < 4; rep++)
        c = crc32_update(c, buf, n);
    double dt = now_s() - t0;
    printf("crc32_update: %.2f GB/s (crc %08x)\n", 4.0 * (double)n / dt / 1e9,
           (unsigned)c);
    free(buf);
}

/* ------------------------------------------------------------ round trip */

static void test_round_trip(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const char *path = tu_path("%s/model.nmm", dir);
    size_t big_n = (size_t)10 << 20;
    uint8_t *big = malloc(big_n);
    assert_non_null(big);
    fill_random(big, big_n, 3);
    const char *text = "hello, model";

    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(path, &w, &err), &err);
    expect_ok(model_writer_add(w, "TEXT", text, strlen(text), &err), &err);
    expect_ok(model_writer_add(w, "NONE", NULL, 0, &err), &err);
    expect_ok(model_writer_add(w, "BANK", big, big_n, &err), &err);
    expect_ok(model_writer_add(w, "ONE1", "x", 1, &err), &err);
    expect_ok(model_writer_add(w, "TEXT", "second", 6, &err), &err);
    expect_ok(model_writer_commit(w, &err), &err);
    assert_int_equal(count_entries(dir), 1); /* no temp file left */

    model_file *f = NULL;
    expect_ok(model_file_read(path, &f, &err), &err);
    assert_string_equal(f->path, path);
    assert_int_equal(f->version, MODEL_FILE_VERSION);
    assert_int_equal(f->n_sections, 5);
    assert_int_equal((uintptr_t)f->buffer % 64, 0);
    assert_true(model_file_has_magic(f->buffer, f->size));
    const char *tags[] = {"TEXT", "NONE", "BANK", "ONE1", "TEXT"};
    size_t sizes[] = {strlen(text), 0, big_n, 1, 6};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(f->sections[i].tag, tags[i]);
        assert_int_equal(f->sections[i].size, sizes[i]);
        assert_int_equal(f->sections[i].flags, 0);
        assert_int_equal((uintptr_t)f->sections[i].data % 64, 0);
        assert_true(f->sections[i].data >= f->buffer &&
                    f->sections[i].data + sizes[i] <= f->buffer + f->size);
    }
    assert_memory_equal(f->sections[0].data, text, strlen(text));
    assert_memory_equal(f->sections[2].data, big, big_n);
    assert_memory_equal(f->sections[4].data, "second", 6);
    /* find returns the first of duplicate tags */
    assert_ptr_equal(model_file_find(f, "TEXT"), &f->sections[0]);
    assert_ptr_equal(model_file_find(f, "BANK"), &f->sections[2]);
    assert_null(model_file_find(f, "NOPE"));
    assert_null(model_file_find(f, "BAN"));

    /* From memory at an odd address: payloads still come out aligned. */
    uint8_t *odd = malloc(f->size + 1);
    assert_non_null(odd);
    memcpy(odd + 1, f->buffer, f->size);
    model_file *g = NULL;
    expect_ok(model_file_read_memory(odd + 1, f->size, "mem", &g, &err), &err);
    assert_int_equal(g->n_sections, 5);
    assert_string_equal(g->path, "mem");
    assert_int_equal((uintptr_t)g->sections[2].data % 64, 0);
    assert_memory_equal(g->sections[2].data, big, big_n);
    model_file_free(g);
    free(odd);
    model_file_free(f);
    model_file_free(NULL);
    free(big);
    remove_dir(dir);
}

static void test_no_sections(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const char *path = tu_path("%s/empty.nmm", dir);
    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(path, &w, &err), &err);
    expect_ok(model_writer_commit(w, &err), &err);
    model_file *f = NULL;
    expect_ok(model_file_read(path, &f, &err), &err);
    assert_int_equal(f->n_sections, 0);
    assert_int_equal(f->size, 76);
    model_file_free(f);
    remove_dir(dir);
}

/* ---------------------------------------------------------------- damage */

static uint8_t *small_model_bytes(size_t *size, char *dir, size_t dir_size)
{
    make_temp_dir(dir, dir_size);
    const char *path = tu_path("%s/small.nmm", dir);
    write_small_model(path);
    uint8_t *b = tu_read_file(path, size);
    assert_non_null(b);
    return b;
}

static void test_every_truncation(void **state)
{
    (void)state;
    char dir[512];
    size_t size = 0;
    uint8_t *b = small_model_bytes(&size, dir, sizeof dir);
    for (size_t n = 0; n < size; n++)
        expect_fail(b, n, "trunc.nmm", NM_ERR_FORMAT);
    /* The file itself reads fine, and a cut file says how much is there. */
    model_file *f = NULL;
    nm_error err = {0};
    expect_ok(model_file_read_memory(b, size, "whole", &f, &err), &err);
    model_file_free(f);
    const char *msg = expect_fail(b, size - 1, "cut.nmm", NM_ERR_FORMAT);
    char want[64];
    snprintf(want, sizeof want, "truncated (%zu of %zu bytes)", size - 1, size);
    if (!strstr(msg, want))
        fail_msg("expected \"%s\" in: %s", want, msg);
    free(b);
    remove_dir(dir);
}

static void test_every_bit_flip(void **state)
{
    (void)state;
    char dir[512];
    size_t size = 0;
    uint8_t *b = small_model_bytes(&size, dir, sizeof dir);
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            expect_fail(b, size, "flip.nmm", NM_ERR_FORMAT);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* A payload byte is reported as that section's damage. */
    model_file *f = NULL;
    nm_error err = {0};
    expect_ok(model_file_read_memory(b, size, "ok", &f, &err), &err);
    size_t data_at = (size_t)(model_file_find(f, "DATA")->data - f->buffer);
    model_file_free(f);
    b[data_at + 5] ^= 0x10;
    const char *msg = expect_fail(b, size, "flip.nmm", NM_ERR_FORMAT);
    if (!strstr(msg, "section 'DATA' is corrupted (checksum mismatch)"))
        fail_msg("unexpected message: %s", msg);
    free(b);
    remove_dir(dir);
}

/* Edits with both checksums recomputed: the bounds checks must hold on
 * their own, whatever the size fields say. */
static void test_edited_fields(void **state)
{
    (void)state;
    char dir[512];
    size_t size = 0;
    uint8_t *orig = small_model_bytes(&size, dir, sizeof dir);
    uint8_t *b = malloc(size + 128);
    assert_non_null(b);
    const uint64_t sizes[] = {1, 63, 64, 65, 128, 1000, 0x7fffffffffffffffull,
                              0xffffffffffffffffull, 0xffffffffffffffc0ull};
    /* Section headers of META (7 bytes), EMPT (0), SIXF (64), DATA (100) */
    const size_t heads[] = {64, 192, 256, 384};
    for (size_t h = 0; h < 4; h++) {
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            if (sizes[s] == (const uint64_t[]){7, 0, 64, 100}[h])
                continue;
            memcpy(b, orig, size);
            put_u64(b + heads[h] + 8, sizes[s]);
            fix_checksums(b, size);
            expect_fail(b, size, "edit.nmm", NM_ERR_FORMAT);
        }
    }
    const uint32_t counts[] = {0, 1, 3, 5, 6, 1000, 0xffffffffu};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        memcpy(b, orig, size);
        put_u32(b + 12, counts[k]);
        fix_checksums(b, size);
        expect_fail(b, size, "count.nmm", NM_ERR_FORMAT);
    }
    const uint64_t totals[] = {0, 12, 76, 77, size - 64, size + 64,
                               0xffffffffffffffffull};
    for (size_t k = 0; k < sizeof totals / sizeof *totals; k++) {
        memcpy(b, orig, size);
        put_u64(b + 16, totals[k]);
        fix_checksums(b, size);
        expect_fail(b, size, "total.nmm", NM_ERR_FORMAT);
    }
    /* A non-ASCII tag */
    memcpy(b, orig, size);
    b[64] = 0x80;
    fix_checksums(b, size);
    expect_fail(b, size, "tag.nmm", NM_ERR_FORMAT);
    /* Extra bytes after the trailer */
    memcpy(b, orig, size);
    memset(b + size, 0, 64);
    const char *msg = expect_fail(b, size + 64, "long.nmm", NM_ERR_FORMAT);
    if (!strstr(msg, "64 unexpected bytes"))
        fail_msg("unexpected message: %s", msg);
    free(b);
    free(orig);
    remove_dir(dir);
}

static void test_newer_version(void **state)
{
    (void)state;
    char dir[512];
    size_t size = 0;
    uint8_t *b = small_model_bytes(&size, dir, sizeof dir);
    put_u32(b + 8, MODEL_FILE_VERSION + 1);
    fix_checksums(b, size);
    const char *path = tu_path("%s/newer.nmm", dir);
    assert_int_equal(tu_write_file(path, b, size), 0);
    model_file *f = NULL;
    nm_error err = {0};
    assert_int_equal(model_file_read(path, &f, &err), NM_ERR_UNSUPPORTED);
    assert_null(f);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "newer"));
    assert_non_null(strstr(err.msg, "version 2"));
    put_u32(b + 8, 0xffffffffu);
    fix_checksums(b, size);
    expect_fail(b, size, "newest.nmm", NM_ERR_UNSUPPORTED);
    put_u32(b + 8, 0);
    fix_checksums(b, size);
    expect_fail(b, size, "zero.nmm", NM_ERR_FORMAT);
    free(b);
    remove_dir(dir);
}

static void test_not_a_model(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                           0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    const char *msg = expect_fail(png, sizeof png, "pic.png", NM_ERR_FORMAT);
    assert_non_null(strstr(msg, "not a nominal model file"));
    assert_false(model_file_has_magic(png, sizeof png));
    assert_false(model_file_has_magic((const uint8_t *)"NOMINAL", 7));
    assert_true(model_file_has_magic((const uint8_t *)"NOMINAL\x1a", 8));

    const char *empty = tu_path("%s/empty.nmm", dir);
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    model_file *f = NULL;
    nm_error err = {0};
    assert_int_equal(model_file_read(empty, &f, &err), NM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, empty));
    assert_non_null(strstr(err.msg, "not a nominal model file"));

    const char *missing = tu_path("%s/missing.nmm", dir);
    assert_int_equal(model_file_read(missing, &f, &err), NM_ERR_IO);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(model_file_read(dir, &f, &err), NM_ERR_IO);
    assert_null(f);
    remove_dir(dir);
}

/* ---------------------------------------------------------- atomic write */

static void test_bad_arguments(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(tu_path("%s/m.nmm", dir), &w, &err), &err);
    assert_int_equal(model_writer_add(w, "a\nbc", "x", 1, &err), NM_ERR_ARG);
    assert_int_equal(model_writer_add(w, "ABCD", NULL, 1, &err), NM_ERR_ARG);
    model_writer_abort(w);
    model_writer_abort(NULL);
    assert_int_equal(count_entries(dir), 0);
    /* A directory that does not exist */
    assert_int_equal(model_writer_open(tu_path("%s/no/m.nmm", dir), &w, &err),
                     NM_ERR_IO);
    remove_dir(dir);
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(tu_path("%s/m.nmm", dir), &w, &err), &err);
    expect_ok(model_writer_add(w, "DATA", "abc", 3, &err), &err);
    assert_int_equal(count_entries(dir), 1); /* the temp file */
    model_writer_abort(w);
    assert_int_equal(count_entries(dir), 0);
    remove_dir(dir);
}

static void write_one_section(const char *path, const char *tag,
                              const void *data, size_t size)
{
    model_writer *w = NULL;
    nm_error err = {0};
    expect_ok(model_writer_open(path, &w, &err), &err);
    expect_ok(model_writer_add(w, tag, data, size, &err), &err);
    expect_ok(model_writer_commit(w, &err), &err);
}

static void expect_one_section(const char *path, const char *tag,
                               const void *data, size_t size)
{
    model_file *f = NULL;
    nm_error err = {0};
    expect_ok(model_file_read(path, &f, &err), &err);
    assert_int_equal(f->n_sections, 1);
    assert_string_equal(f->sections[0].tag, tag);
    assert_int_equal(f->sections[0].size, size);
    assert_memory_equal(f->sections[0].data, data, size);
    model_file_free(f);
}

static void test_commit_replaces(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const char *path = tu_path("%s/m.nmm", dir);
    write_one_section(path, "OLD1", "old contents", 12);
    write_one_section(path, "NEW1", "new", 3);
    expect_one_section(path, "NEW1", "new", 3);
    assert_int_equal(count_entries(dir), 1);
    remove_dir(dir);
}

/* A section of 80 MiB takes the parallel checksum path (chunks joined with
 * crc32_combine): it must agree with the plain checksum, and one flipped
 * byte anywhere in it, including the last chunk, must be caught. A loaded
 * file is a mapping of the file: replacing the file (as every writer does,
 * by rename) must not change what was loaded. */
static void test_big_section_and_replace(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const char *path = tu_path("%s/big.nmm", dir);
    size_t n = (size_t)80 << 20;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    fill_random(big, n, 7);
    write_one_section(path, "BIG1", big, n);

    nm_error err = {0};
    model_file *f = NULL;
    expect_ok(model_file_read(path, &f, &err), &err);
    assert_int_equal(f->sections[0].size, n);
    assert_memory_equal(f->sections[0].data, big, n);
    write_one_section(path, "NEW1", "new", 3); /* replaced while loaded */
    assert_string_equal(f->sections[0].tag, "BIG1");
    assert_memory_equal(f->sections[0].data, big, n);
    model_file_free(f);

    const size_t flips[] = {0, n / 2 + 12345, n - 1};
    for (int i = 0; i < 3; i++) {
        write_one_section(path, "BIG1", big, n);
        FILE *fp = fopen(path, "r+b");
        assert_non_null(fp);
        long at = 64 + 64 + (long)flips[i]; /* file header, section header */
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        int c = fgetc(fp);
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        fputc(c ^ 0x10, fp);
        fclose(fp);
        f = NULL;
        assert_int_equal(model_file_read(path, &f, &err), NM_ERR_FORMAT);
        assert_null(f);
        assert_non_null(strstr(err.msg, "'BIG1' is corrupted"));
    }
    free(big);
    remove_dir(dir);
}

/* In a child limited to 64 KiB per file (a full disk, as far as the writer
 * can tell), writing a 1 MiB model over an existing one must fail and leave
 * the old model untouched and no temp file behind. */
static void test_failed_write_keeps_old(void **state)
{
    (void)state;
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    const char *path = tu_path("%s/m.nmm", dir);
    write_one_section(path, "OLD1", "old contents", 12);
    size_t n = (size_t)1 << 20;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
        struct rlimit lim = {65536, 65536};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(3);
        model_writer *w = NULL;
        nm_error err = {0};
        if (model_writer_open(path, &w, &err) != NM_OK)
            _exit(4);
        /* Commit even after a failed add: it must refuse and clean up. */
        nm_status add = model_writer_add(w, "BIG1", big, n, &err);
        nm_status commit = model_writer_commit(w, &err);
        free(big); /* valgrind's leak check runs in the child too */
        _exit(commit == NM_ERR_IO && (add == NM_OK || add == NM_ERR_IO) ? 0
                                                                       : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    expect_one_section(path, "OLD1", "old contents", 12);
    assert_int_equal(count_entries(dir), 1);
    free(big);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_crc_matches_bitwise),
        cmocka_unit_test(test_crc_throughput),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_no_sections),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_edited_fields),
        cmocka_unit_test(test_newer_version),
        cmocka_unit_test(test_not_a_model),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_commit_replaces),
        cmocka_unit_test(test_big_section_and_replace),
        cmocka_unit_test(test_failed_write_keeps_old),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
