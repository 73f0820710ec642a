#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *nm_version(void) { return NM_VERSION_STRING; }

const char *nm_status_name(nm_status code)
{
    switch (code) {
    case NM_OK: return "ok";
    case NM_ERR_ARG: return "argument";
    case NM_ERR_IO: return "io";
    case NM_ERR_FORMAT: return "format";
    case NM_ERR_UNSUPPORTED: return "unsupported";
    case NM_ERR_NOMEM: return "memory";
    case NM_ERR_LIMIT: return "limit";
    case NM_ERR_BACKEND: return "backend";
    case NM_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

nm_status nm_fail(nm_error *err, nm_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* Names in messages come from files (ONNX node names, paths, JSON
         * strings): control characters there must not break the one-line
         * message or reach a terminal. */
        for (char *c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return code;
}

void nm_error_clear(nm_error *err)
{
    if (err) {
        err->code = NM_OK;
        err->msg[0] = '\0';
    }
}
