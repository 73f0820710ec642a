/* Shared pieces of the `nominal` command-line tool. */
#ifndef NM_CLI_H
#define NM_CLI_H

#include <stdio.h>

#include "nominal.h"

/* Exit codes (documented in README.md). */
enum {
    EXIT_OK = 0,
    EXIT_FAILURE_GENERIC = 1, /* runtime failure: backend, memory, internal */
    EXIT_USAGE = 2,           /* bad command line */
    EXIT_IO = 3,              /* file missing / unreadable / unwritable */
    EXIT_BAD_INPUT = 4,       /* file corrupt or wrong format */
    EXIT_UNSUPPORTED = 5      /* valid input nominal cannot handle */
};

/* Print "nominal: MESSAGE" and return the exit code for err->code. */
int cli_report(const nm_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Option parsing: if argv[*i] is `name VALUE` or `name=VALUE`, set *value,
 * advance *i past it and return 1; 0 if argv[*i] is not this option;
 * -1 if the value is missing. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
int cli_parse_int(const char *s, int lo, int hi, int *out);
/* A number strictly between 0 and 1 (rates, fractions). */
int cli_parse_fraction(const char *s, double *out);
int cli_is_help(const char *arg);

/* Split "a,b,c" into at most max malloc'ed strings; returns count or -1. */
int cli_split_list(const char *s, char **out, int max);

/* Peak resident set size of this process in bytes (from getrusage). */
size_t cli_peak_rss(void);
double cli_now_seconds(void);

/* Decode + score up to cap image files per call (cli_batch.c). After
 * cli_batch_score, image i of the batch has results[i] when errors[i].code
 * is NM_OK, else errors[i] says why (unreadable file, scoring failure). */
typedef struct cli_batch {
    int n, cap;
    nm_image *images;
    nm_result *results;
    nm_error *errors;
    const nm_image **loaded; /* scratch */
    nm_result *scored;       /* scratch */
} cli_batch;

nm_status cli_batch_init(cli_batch *b, int cap, nm_error *err);
void cli_batch_score(cli_batch *b, nm_model *m, const char *const *paths, int n,
                     int want_map);
void cli_batch_clear(cli_batch *b);
void cli_batch_free(cli_batch *b);

/* Calibrating a model from image folders (cli_calibrate.c): shared by
 * `calibrate` and `fit --holdout`. */
typedef struct cli_calibration_request {
    nm_calibration_target target;
    const char *const *good; /* image paths */
    int n_good;
    const char *good_source;
    const char *const *bad; /* may be NULL */
    int n_bad;
    const char *bad_source;
    const char *masks;      /* folder of NAME_mask.png for the bad images */
    const char *const *held_out; /* names recorded in the model */
    int n_held_out;
    int batch;
    /* non-NULL: unreadable images are reported here and skipped */
    void (*warn)(void *ctx, const char *message);
    void *warn_ctx;
} cli_calibration_request;

nm_status cli_calibrate(nm_model *m, const cli_calibration_request *r, nm_error *err);
/* A few human-readable lines (info, calibrate, fit). */
void cli_print_calibration(const nm_calibration *c);

int cmd_info(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
