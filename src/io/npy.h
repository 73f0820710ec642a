/* NumPy .npy writer: float32 arrays any user can open with numpy.load. */
#ifndef NM_IO_NPY_H
#define NM_IO_NPY_H

#include <stdint.h>

#include "nominal.h"

/* Write a C-order float32 array of the given shape, atomically
 * (temp file + fsync + rename). */
nm_status npy_write_f32(const char *path, const float *data, const int64_t *dims,
                        int rank, nm_error *err);

#endif
