/* Internal helpers for filling nm_error. */
#ifndef NM_CORE_ERROR_H
#define NM_CORE_ERROR_H

#include "nominal.h"

/* Set err (if non-NULL) to code and a printf-style message (control
 * characters, e.g. from names in files, become '?'); returns code so
 * callers can write `return nm_fail(err, NM_ERR_IO, "%s: ...", path);`. */
nm_status nm_fail(nm_error *err, nm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset err to NM_OK with an empty message. */
void nm_error_clear(nm_error *err);

#endif
