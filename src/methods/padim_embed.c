/* PaDiM's patch embedding: channel choice and the gather (padim_embed.h). */
#include "methods/padim_embed.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "methods/coreset_internal.h"

int padim_default_d(int total)
{
    if (total == 448)
        return 100;
    int d = (int)lround((double)total * 550.0 / 1792.0);
    int lo = total < 100 ? total : 100;
    return d < lo ? lo : d > 550 ? 550 : d;
}

static int compare_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

nm_status padim_choose_channels(uint64_t seed, int total, int d, int32_t *out,
                                nm_error *err)
{
    if (d < 1 || d > total)
        return nm_fail(err, NM_ERR_ARG, "padim: d=%d must be 1..%d (the taps' channels)", d,
                       total);
    int32_t *perm = malloc((size_t)total * sizeof *perm);
    if (!perm)
        return nm_fail(err, NM_ERR_NOMEM, "padim: out of memory");
    for (int i = 0; i < total; i++)
        perm[i] = i;
    coreset_rng rng;
    coreset_rng_init(&rng, seed, PADIM_STREAM_CHANNELS);
    for (int i = 0; i < d; i++) {
        int j = i + (int)(coreset_rng_next(&rng) % (uint64_t)(total - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    qsort(perm, (size_t)d, sizeof *perm, compare_i32);
    for (int i = 0; i < d; i++)
        out[i] = perm[i];
    free(perm);
    return NM_OK;
}

int padim_nearest_index(int o, int in, int out)
{
    /* aten/src/ATen/native/UpSample.h nearest_idx: the scale in float */
    if (in == out)
        return o;
    if (out == 2 * in)
        return o >> 1;
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)o * scale);
    return s < in - 1 ? s : in - 1;
}

void padim_gather(const nm_tensor *taps, int n_taps, const int32_t *channels, int d,
                  int n0, int count, float *out, size_t pos_stride, size_t img_stride,
                  int threads)
{
    const int H = (int)taps[0].dims[2], W = (int)taps[0].dims[3];
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int n = 0; n < count; n++) {
        for (int y = 0; y < H; y++) {
            int k = 0, first = 0; /* first concatenated channel of tap t */
            for (int t = 0; t < n_taps && k < d; t++) {
                const nm_tensor *tp = &taps[t];
                int c = (int)tp->dims[1], th = (int)tp->dims[2], tw = (int)tp->dims[3];
                size_t plane = (size_t)th * (size_t)tw;
                const float *img = tp->data + (size_t)(n0 + n) * (size_t)c * plane +
                                   (size_t)padim_nearest_index(y, th, H) * (size_t)tw;
                int k_end = k;
                while (k_end < d && channels[k_end] < first + c)
                    k_end++;
                for (int x = 0; x < W; x++) {
                    const float *src = img + padim_nearest_index(x, tw, W);
                    float *dst = out + ((size_t)y * (size_t)W + (size_t)x) * pos_stride +
                                 (size_t)n * img_stride;
                    for (int j = k; j < k_end; j++)
                        dst[j] = src[(size_t)(channels[j] - first) * plane];
                }
                k = k_end;
                first += c;
            }
        }
    }
}
