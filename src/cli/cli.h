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
int cli_is_help(const char *arg);

/* Split "a,b,c" into at most max malloc'ed strings; returns count or -1. */
int cli_split_list(const char *s, char **out, int max);

/* Peak resident set size of this process in bytes (from getrusage). */
size_t cli_peak_rss(void);
double cli_now_seconds(void);

int cmd_info(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
