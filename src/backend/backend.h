/*
 * The compute backend: the only place that talks to oneDNN (backend_dnnl.c),
 * so that another backend (cuDNN) can be added by writing one more file.
 *
 * The network layer (src/nn) hands the backend a small program: a list of
 * layers in execution order over numbered values, with fusions already
 * decided (BatchNorm folded into Conv weights, ReLU/Clip/Add attached to a
 * Conv as post-ops) and shapes already inferred for one input shape. The
 * backend compiles that into primitives, lets the library choose memory
 * formats, plans buffers so that values whose lives do not overlap share
 * memory, and runs it; a run allocates nothing.
 */
#ifndef NM_BACKEND_H
#define NM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nominal.h"

typedef enum nn_op {
    NN_CONV,       /* with optional bias and post-ops */
    NN_BATCHNORM,  /* inference; optional fused ReLU */
    NN_MAXPOOL,
    NN_AVGPOOL,    /* also GlobalAveragePool (kernel = whole map) */
    NN_RELU,
    NN_CLIP,
    NN_ADD,
    NN_CONCAT,     /* along channels */
    NN_FLATTEN,    /* [N,C,H,W] -> [N,C*H*W] */
    NN_GEMM        /* [N,K] x W[O,K]^T + b -> [N,O] */
} nn_op;

typedef enum nn_post_kind { NN_POST_RELU, NN_POST_CLIP, NN_POST_SUM } nn_post_kind;

/* An operation applied to a layer's result before it is stored, in order. */
typedef struct nn_post_op {
    nn_post_kind kind;
    float lo, hi; /* NN_POST_CLIP bounds */
    int value;    /* NN_POST_SUM: value added elementwise */
} nn_post_op;

#define NN_MAX_POST 4
#define NN_MAX_INPUTS 64 /* Concat fan-in */

typedef struct nn_layer {
    nn_op op;
    const char *name; /* ONNX node name, for messages */
    int inputs[NN_MAX_INPUTS];
    int n_inputs;
    int output;

    /* Conv / pooling geometry (pool_pad_end already includes the extra
     * padding that ceil_mode needs at this shape). */
    int kernel[2], stride[2], dilation[2];
    int pad_begin[2], pad_end[2];
    int group;
    int count_include_pad; /* NN_AVGPOOL */

    /* Conv: weight [out_ch][in_ch/group][kh][kw]; Gemm: weight [out][in];
     * BatchNorm: scale/shift/mean/var per channel. Owned by the network. */
    int in_channels, out_channels;
    const float *weight;
    const float *bias; /* may be NULL */
    const float *bn_scale, *bn_shift, *bn_mean, *bn_var;
    float epsilon;
    int fuse_relu; /* NN_BATCHNORM */
    float clip_lo, clip_hi; /* NN_CLIP */

    nn_post_op post[NN_MAX_POST];
    int n_post;
} nn_layer;

/* Shape of a value: rank 4 [N,C,H,W] or rank 2 [N,C]. */
typedef struct nn_shape {
    int rank;
    int64_t dims[4];
} nn_shape;

typedef struct nn_program {
    const nn_layer *layers;
    int n_layers;
    int n_values;
    int input_value;
    const nn_shape *shapes; /* n_values, for this input shape */
    const int *taps;        /* values returned to the caller, in order */
    int n_taps;
    size_t max_bytes;       /* refuse a plan needing more memory (0: no limit) */
} nn_program;

typedef struct nm_backend nm_backend;
typedef struct backend_plan backend_plan;

nm_status backend_create(int threads, nm_backend **out, nm_error *err);
void backend_destroy(nm_backend *be);
int backend_threads(const nm_backend *be);

/* A matmul with a fixed right-hand side, c = a . b^T with b [n][k]
 * row-major: b is reordered once into the layout the library prefers for
 * m_hint rows of a, and the primitive is kept for the last m seen, so a
 * run is only the product. (Nearest-neighbour search against a bank.) */
typedef struct backend_matmul_plan backend_matmul_plan;
nm_status backend_matmul_prepare(nm_backend *be, const float *b, int64_t n, int64_t k,
                                 int64_t m_hint, backend_matmul_plan **out,
                                 nm_error *err);
/* c [m][n] = a [m][k] . b^T */
nm_status backend_matmul_run(backend_matmul_plan *p, const float *a, int64_t m, float *c,
                             nm_error *err);
void backend_matmul_plan_free(backend_matmul_plan *p);
/* Human-readable description ("oneDNN 2.6.3 cpu, omp, 2 threads, isa ..."). */
const char *backend_describe(const nm_backend *be);

/* Compile a program for the shapes it carries. The program's weights must
 * outlive the plan. */
nm_status backend_plan_build(nm_backend *be, const nn_program *prog,
                             backend_plan **out, nm_error *err);
/* Run: input is plain NCHW float of the program's input shape. tap_data[i]
 * receives a pointer to plan-owned plain row-major output of tap i. */
nm_status backend_plan_run(backend_plan *plan, const float *input,
                           float **tap_data, nm_error *err);
void backend_plan_free(backend_plan *plan);
/* Bytes of activation memory the plan holds (buffers + scratchpad). */
size_t backend_plan_memory(const backend_plan *plan);

/* c[m][n] = a[m][k] . b, row-major float32, where b is [k][n], or [n][k]
 * when b_transposed (then c = a . b^T: rows of a against rows of b, as a
 * nearest-neighbour search needs). Runs on the backend's threads. */
nm_status backend_matmul(nm_backend *be, const float *a, const float *b, float *c,
                         int64_t m, int64_t k, int64_t n, int b_transposed,
                         nm_error *err);

#endif
