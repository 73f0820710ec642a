#include "io/npy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "io/atomic_file.h"

nm_status npy_write_f32(const char *path, const float *data, const int64_t *dims,
                        int rank, nm_error *err)
{
    /* The header below has room for 8 dims of 20 digits; the byte count
     * must not wrap around. */
    size_t count = 1;
    if (rank < 0 || rank > 8)
        return nm_fail(err, NM_ERR_ARG, "%s: cannot write a rank %d array", path, rank);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0 || __builtin_mul_overflow(count, (size_t)dims[i], &count) ||
            count > SIZE_MAX / sizeof(float))
            return nm_fail(err, NM_ERR_ARG, "%s: invalid array dims", path);
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < rank; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld,%s", (long long)dims[i],
                        i + 1 < rank ? " " : "");
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* magic(6) + version(2) + header length(2) + dict + padding + '\n' is a
     * multiple of 64, as the format asks. */
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hlen = (size_t)len + pad + 1;
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    char spaces[64];
    memset(spaces, ' ', sizeof spaces);
    atomic_file af;
    nm_status st = atomic_file_open(&af, path, err);
    if (st)
        return st;
    if ((st = atomic_file_write(&af, head, sizeof head, err)) ||
        (st = atomic_file_write(&af, dict, (size_t)len, err)) ||
        (st = atomic_file_write(&af, spaces, pad, err)) ||
        (st = atomic_file_write(&af, "\n", 1, err)) ||
        (st = atomic_file_write(&af, data, count * sizeof(float), err))) {
        atomic_file_abort(&af);
        return st;
    }
    return atomic_file_commit(&af, err);
}
