#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

int cli_report(const nm_error *err)
{
    fprintf(stderr, "nominal: %s\n", err->msg[0] ? err->msg : nm_status_name(err->code));
    switch (err->code) {
    case NM_OK: return EXIT_OK;
    case NM_ERR_ARG: return EXIT_USAGE;
    case NM_ERR_IO: return EXIT_IO;
    case NM_ERR_FORMAT:
    case NM_ERR_LIMIT: return EXIT_BAD_INPUT;
    case NM_ERR_UNSUPPORTED: return EXIT_UNSUPPORTED;
    default: return EXIT_FAILURE_GENERIC;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nominal %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see `nominal %s --help`)\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_fraction(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0 && v < 1))
        return -1;
    *out = v;
    return 0;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int cli_split_list(const char *s, char **out, int max)
{
    int n = 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (len) {
            if (n == max)
                return -1;
            out[n] = strndup(s, len);
            if (!out[n])
                return -1;
            n++;
        }
        s += len + (comma ? 1 : 0);
    }
    return n;
}

size_t cli_peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

double cli_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
