/*
 * nominal — industrial visual anomaly detection in C.
 *
 * The one public header. The pipeline is: decode an image -> preprocess it
 * into a normalized tensor -> run a pretrained backbone and tap its feature
 * maps -> (methods, later) -> maps and scores.
 *
 * Conventions
 *  - Every function that can fail returns an nm_status (NM_OK == 0) and, when
 *    the caller passes a non-NULL nm_error, fills it with a one-line message
 *    naming the file/node and the problem.
 *  - Whatever a function allocates for the caller is released by the matching
 *    *_free / *_close function; nothing is kept in global mutable state.
 */
#ifndef NOMINAL_H
#define NOMINAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NM_VERSION_MAJOR 0
#define NM_VERSION_MINOR 1
#define NM_VERSION_PATCH 0
#define NM_VERSION_STRING "0.1.0"

/* Version of the library actually linked (may differ from the header). */
const char *nm_version(void);

/* ------------------------------------------------------------------ errors */

typedef enum nm_status {
    NM_OK = 0,
    NM_ERR_ARG = 1,         /* caller passed an invalid argument */
    NM_ERR_IO = 2,          /* a file could not be opened, read or written */
    NM_ERR_FORMAT = 3,      /* the bytes are not a valid file of that kind */
    NM_ERR_UNSUPPORTED = 4, /* valid input that nominal does not handle */
    NM_ERR_NOMEM = 5,       /* out of memory */
    NM_ERR_LIMIT = 6,       /* input exceeds a size limit */
    NM_ERR_BACKEND = 7,     /* the compute backend failed */
    NM_ERR_INTERNAL = 8     /* a bug in nominal */
} nm_status;

typedef struct nm_error {
    nm_status code;
    char msg[512];
} nm_error;

/* Short stable name of a status code ("io", "format", ...). */
const char *nm_status_name(nm_status code);

/* ------------------------------------------------------------------ images */

/* Decoded images are 8-bit, interleaved, row-major. 16-bit sources are
 * reduced to 8 bits (round(v / 257)); alpha is dropped (not composited);
 * palette and gray images are expanded. channels is 3 (RGB) or 1 (gray). */
typedef struct nm_image {
    int width;
    int height;
    int channels;
    uint8_t *pixels; /* width * height * channels bytes, owned */
} nm_image;

/* Largest image (width * height) decoders accept when max_pixels == 0. */
#define NM_IMAGE_DEFAULT_MAX_PIXELS ((size_t)100000000)

/* Decode PNG or JPEG bytes (format from the magic bytes) into RGB.
 * name is used in error messages only. max_pixels 0 = default limit. */
nm_status nm_image_decode(const uint8_t *data, size_t size, const char *name,
                          size_t max_pixels, nm_image *out, nm_error *err);
/* Read and decode a file into RGB. */
nm_status nm_image_load(const char *path, size_t max_pixels, nm_image *out,
                        nm_error *err);
/* Same as nm_image_load but converts to one gray channel (masks). */
nm_status nm_image_load_gray(const char *path, size_t max_pixels,
                             nm_image *out, nm_error *err);
void nm_image_free(nm_image *img);

/* Bilinear resize with antialiasing when shrinking; bit-exact with
 * PIL.Image.resize(..., BILINEAR) (which torchvision.Resize uses). */
nm_status nm_image_resize(const nm_image *src, int width, int height,
                          nm_image *dst, nm_error *err);

/* How an image becomes a network input, as torchvision's
 * Resize(resize_short) -> CenterCrop(crop) -> ToTensor -> Normalize. */
typedef struct nm_preprocess {
    int resize_short; /* shorter side is resized to this; 0 = no resize */
    int crop_width;   /* center crop; 0 = no crop */
    int crop_height;
    float mean[3];
    float std[3];
} nm_preprocess;

/* resize 256, crop 224, ImageNet mean/std. */
void nm_preprocess_default(nm_preprocess *p);

/* Where the network input came from, so maps can be put back onto the
 * original image: crop_x/crop_y may be negative when the crop is larger
 * than the resized image (that part is zero-padded). */
typedef struct nm_geometry {
    int src_width, src_height;         /* decoded image */
    int resized_width, resized_height; /* after resize */
    int crop_x, crop_y;                /* top-left of crop in resized image */
    int out_width, out_height;         /* network input size */
} nm_geometry;

/* Compute the geometry without touching pixels. */
nm_status nm_preprocess_geometry(const nm_preprocess *p, int src_width,
                                 int src_height, nm_geometry *geom,
                                 nm_error *err);
/* Produce a planar float tensor [3][out_height][out_width] into out
 * (caller allocates 3 * out_width * out_height floats; geometry first). */
nm_status nm_preprocess_image(const nm_preprocess *p, const nm_image *img,
                              float *out, nm_geometry *geom, nm_error *err);

/* Encode a PNG: channels 1 (gray) or 3 (RGB); bit_depth 8, or 16 for gray
 * (pixels are then host-order uint16). *out is malloc'ed. */
nm_status nm_png_encode(const void *pixels, int width, int height,
                        int channels, int bit_depth, uint8_t **out,
                        size_t *out_size, nm_error *err);
/* Encode and write atomically (temp file + fsync + rename). */
nm_status nm_png_write(const char *path, const void *pixels, int width,
                       int height, int channels, int bit_depth, nm_error *err);

/* ------------------------------------------------------ backbone networks */

typedef struct nm_net nm_net;

/* A dense float32 tensor, row-major (NCHW for 4-D). */
typedef struct nm_tensor {
    int rank;
    int64_t dims[4];
    float *data;
} nm_tensor;

typedef struct nm_net_options {
    int threads; /* 0 = all cores */
} nm_net_options;

/* Load an ONNX backbone. Fails with a message naming the node, op and
 * attribute if the graph uses anything the runtime cannot execute. */
nm_status nm_net_open(const char *onnx_path, const nm_net_options *opts,
                      nm_net **out, nm_error *err);
void nm_net_close(nm_net *net);

/* Number and names of the graph's outputs (valid while net is open). */
int nm_net_output_count(const nm_net *net);
const char *nm_net_output_name(const nm_net *net, int i);

/* Choose which named tensors a run returns ("taps"): any graph output or
 * intermediate value. Only the nodes these need are executed. */
nm_status nm_net_set_taps(nm_net *net, const char *const *names, int n_taps,
                          nm_error *err);

/* Run on a batch: input is [n][3][h][w] floats. taps[i] receives the i-th
 * tap; its data belongs to net and stays valid until the next run or close.
 * After the first run at a given (n, h, w) a run allocates no memory. */
nm_status nm_net_run(nm_net *net, const float *input, int n, int h, int w,
                     nm_tensor *taps, nm_error *err);


/* ------------------------------------------------------------------ models
 *
 * A model is one self-contained file: preprocessing, the backbone subgraph
 * up to its last tap, the method's parameters and data (e.g. PatchCore's
 * memory bank), checksummed. Fit learns it from good images only; score
 * gives an image score and an anomaly map aligned with the input image.
 */

typedef struct nm_model nm_model;

/* Progress of long work: stage is a short word ("features", "coreset"). */
typedef void (*nm_progress_fn)(void *ctx, const char *stage, size_t done,
                               size_t total);

/* A method-specific setting, e.g. {"coreset", "0.1"} for PatchCore. */
typedef struct nm_param {
    const char *key;
    const char *value;
} nm_param;

typedef struct nm_fit_options {
    const char *method;       /* "patchcore" */
    const char *backbone;     /* ONNX file */
    const char *const *taps;  /* names of tensors in the backbone */
    int n_taps;
    nm_preprocess preprocess;
    const nm_param *params;   /* method settings; unknown keys are errors */
    int n_params;
    uint64_t seed;
    int threads;              /* 0 = all cores */
    int batch_size;           /* images per backbone pass (default 8) */
    int skip_bad_images;      /* 1: report unreadable images and go on */
    nm_progress_fn progress;  /* may be NULL */
    void *progress_ctx;
    /* warnings (skipped images): one line each; may be NULL */
    void (*warn)(void *ctx, const char *message);
} nm_fit_options;

void nm_fit_options_default(nm_fit_options *o);

/* Learn a model from good images (paths). */
nm_status nm_model_fit(const nm_fit_options *opts, const char *const *images,
                       int n_images, nm_model **out, nm_error *err);
/* Write atomically (temp file + fsync + rename). */
nm_status nm_model_save(const nm_model *m, const char *path, nm_error *err);
/* Read and verify (magic, version, checksums). threads 0 = all cores. */
nm_status nm_model_load(const char *path, int threads, nm_model **out,
                        nm_error *err);
void nm_model_close(nm_model *m);

/* The result of scoring one image. map is width x height floats on the
 * decoded image's own geometry (zero outside the center crop). */
typedef struct nm_result {
    float score;
    int width, height;
    float *map; /* owned: nm_result_free */
    /* where the time went, milliseconds */
    double ms_preprocess, ms_backbone, ms_method, ms_map;
} nm_result;

/* Score a decoded image. want_map 0 skips the map (faster). */
nm_status nm_model_score(nm_model *m, const nm_image *img, int want_map,
                         nm_result *out, nm_error *err);
/* Score n images, several per backbone pass: consecutive images whose
 * network input has the same size (always, with a fixed crop) share one
 * pass of up to NM_SCORE_BATCH_MAX; others go one at a time. Results match
 * nm_model_score to float rounding (about 1e-6 relative). out[n] is
 * filled in order; ms_* are the batch's times divided evenly. On failure
 * no out[i] holds memory. */
#define NM_SCORE_BATCH_MAX 64
nm_status nm_model_score_batch(nm_model *m, const nm_image *const *imgs, int n,
                               int want_map, nm_result *out, nm_error *err);
void nm_result_free(nm_result *r);

/* Facts about a model, valid while it is open. */
typedef struct nm_model_info {
    const char *method;
    const char *backbone;  /* original file name of the backbone */
    const char *taps;      /* comma-separated */
    nm_preprocess preprocess;
    size_t memory_bank;    /* rows in the method's bank (0 if none) */
    int feature_dim;
    float map_scale;       /* a typical normal patch score (colour scaling) */
    double fit_seconds;
    int train_images;
} nm_model_info;

void nm_model_get_info(const nm_model *m, nm_model_info *info);
/* The model's description as a JSON object text (malloc'ed). */
char *nm_model_describe_json(const nm_model *m);

/* ------------------------------------------------------------ calibration
 *
 * A decision threshold with a false-alarm rate stated before the line runs
 * (docs/calibration.md). From n scores of held-out good images and a target
 * alpha: k = floor(alpha (n + 1)), threshold = the k-th largest of them, and
 * an image is anomalous iff score > threshold. If good scores are
 * exchangeable (same process; the images were not used for training),
 *     P(a new good image is flagged) <= k / (n + 1) <= alpha.
 * alpha < 1/(n+1) is impossible with n images (NM_ERR_ARG says how many
 * are needed). The p-value of a score s is
 *     p = (1 + #{calibration scores >= s}) / (n + 1),
 * and P(p <= a) <= a for a new good image.
 */

typedef enum nm_calibration_kind {
    NM_CALIBRATE_FPR = 0, /* conformal on good scores: the guarantee above */
    NM_CALIBRATE_FNR = 1, /* conformal on bad scores: P(new defect missed)
                             <= target, for defects exchangeable with them */
    NM_CALIBRATE_F1 = 2   /* best F1 on the given images (no guarantee) */
} nm_calibration_kind;

typedef struct nm_calibration_target {
    nm_calibration_kind kind;
    double target;    /* FPR or FNR in (0, 1). FPR 0: the smallest achievable
                         alpha that is >= 0.01, i.e. max(0.01, 1/(n+1)) */
    double pixel_fpr; /* > 0: also a pixel threshold, k-th largest of the
                         good images' map values, k = floor(pixel_fpr (N+1)) */
} nm_calibration_target;

/* What a calibration is computed from. Arrays are only read. */
typedef struct nm_calibration_data {
    const float *good_scores; /* image scores of held-out good images */
    int n_good;
    const float *bad_scores;  /* of defective images; needed for FNR, F1 */
    int n_bad;
    const float *good_pixels; /* every map value of the good images */
    size_t n_good_pixels;     /* needed when pixel_fpr > 0 */
    const float *defect_pixels; /* map values under the bad images' masks */
    size_t n_defect_pixels;     /* optional: reports pixel FNR */
    const char *good_source;  /* recorded, e.g. the folder; may be NULL */
    const char *bad_source;
    const char *const *held_out; /* file names (fit --holdout); may be NULL */
    int n_held_out;
} nm_calibration_data;

/* One row of the false-alarm / miss trade-off on the calibration images. */
typedef struct nm_tradeoff_row {
    float threshold;
    double fpr_good;  /* fraction of calibration good scores > threshold */
    double fpr_bound; /* (1 + #{good > threshold}) / (n_good + 1): for a
                         conformal threshold (the k-th largest good score)
                         k/(n+1), the guaranteed bound on P(new good
                         flagged); for one chosen from bad images (F1,
                         FNR) an estimate of it, not a guarantee */
    double fnr_bad;   /* fraction of bad scores <= threshold; NAN: no bad */
} nm_tradeoff_row;

typedef struct nm_calibration {
    nm_calibration_kind kind;
    double target;
    float threshold;  /* anomalous iff score > threshold */
    int k;            /* order statistic used (FPR, FNR); 0 for F1 */
    int n_good;
    const float *good_scores; /* ascending, n_good: p-values */
    double fpr_good;  /* on the calibration good images */
    double fpr_bound; /* FPR kind: k/(n_good+1), the guaranteed bound on new
                         good images; other kinds: the estimate
                         (1 + #{good > threshold}) / (n_good + 1) */
    int n_bad;
    double fnr_bad;   /* on the calibration bad images; NAN without */
    double fnr_bound; /* FNR kind: k/(n_bad+1), guaranteed for defects
                         exchangeable with the bad images; other kinds:
                         (1 + #{bad <= threshold}) / (n_bad + 1); NAN
                         without bad images */
    int has_pixel_threshold;
    float pixel_threshold;  /* a pixel is anomalous iff map value > this */
    double pixel_target;    /* pixel_fpr asked for */
    size_t n_good_pixels;
    double pixel_fpr_good;  /* fraction of good pixels > pixel_threshold */
    size_t n_defect_pixels;
    double pixel_fnr_bad;   /* fraction of defect pixels <= it; NAN */
    const char *created;    /* UTC, ISO 8601 */
    const char *good_source;  /* may be NULL */
    const char *bad_source;   /* may be NULL */
    const char *const *held_out;
    int n_held_out;
    const nm_tradeoff_row *table; /* descending thresholds */
    int n_table;
} nm_calibration;

/* The fewest good images for which a target FPR alpha is achievable. */
long nm_calibration_min_images(double alpha);
/* Compute and attach a calibration (replacing any); nm_model_save stores
 * it. The model is unchanged on failure. */
nm_status nm_model_calibrate(nm_model *m, const nm_calibration_data *data,
                             const nm_calibration_target *target, nm_error *err);
/* 1 and *out filled if the model is calibrated, else 0. The pointers in
 * *out stay valid until the model is closed or calibrated again. */
int nm_model_get_calibration(const nm_model *m, nm_calibration *out);
/* "fpr", "fnr" or "f1", as the model file and the JSON outputs spell it. */
const char *nm_calibration_kind_name(nm_calibration_kind kind);
/* The decision for an image score: *anomalous = score > threshold, and the
 * conformal p-value. NM_ERR_ARG if the model is not calibrated or the
 * score is not finite. Either output may be NULL. */
nm_status nm_decide(const nm_model *m, float score, int *anomalous,
                    double *p_value, nm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* NOMINAL_H */
