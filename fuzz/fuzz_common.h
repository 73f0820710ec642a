/*
 * Shared by the fuzz targets: the oracle every failure must pass.
 *
 * Crashes, leaks, hangs and huge allocations are caught by libFuzzer and
 * the sanitizers. What they cannot see is nominal's own promise for bad
 * input: a clear one-line error that names the file. So a failure whose
 * message is empty, spans lines, does not name the input, disagrees with
 * the returned status, or is an "internal" error (a bug by definition) is
 * turned into an abort, and the fuzzer keeps the input as a crash.
 */
#ifndef NM_FUZZ_COMMON_H
#define NM_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nominal.h"

static inline void fuzz_fail(const char *what, nm_status st, const nm_error *err)
{
    fprintf(stderr, "fuzz oracle: %s (status %s): \"%s\"\n", what,
            nm_status_name(st), err->msg);
    abort();
}

/* The targets run with a 2 GB RSS limit; nominal's own activation budget
 * (NOMINAL_MEMORY_LIMIT_MB, default: the machine's memory) is set well
 * below it, so a graph that asks for more is refused, as it must be, and
 * not reported as an out-of-memory crash. */
static inline void fuzz_limit_memory(void)
{
    setenv("NOMINAL_MEMORY_LIMIT_MB", "512", 0);
}

/* st is what running input `name` returned for a call whose own arguments
 * may not fit it (an image too small for the network's kernels is the
 * caller's argument error): everything but the "no argument errors" rule. */
static inline void fuzz_check_run_error(nm_status st, const nm_error *err,
                                        const char *name)
{
    if (st == NM_OK)
        return;
    if (err->code != st)
        fuzz_fail("error code differs from the returned status", st, err);
    if (!err->msg[0])
        fuzz_fail("empty error message", st, err);
    if (strchr(err->msg, '\n'))
        fuzz_fail("error message spans lines", st, err);
    if (!strstr(err->msg, name))
        fuzz_fail("error message does not name the input", st, err);
    if (st == NM_ERR_INTERNAL)
        fuzz_fail("bad input reported as a bug", st, err);
}

/* st is what a loader returned for input `name`. */
static inline void fuzz_check_error(nm_status st, const nm_error *err,
                                    const char *name)
{
    fuzz_check_run_error(st, err, name);
    if (st == NM_ERR_ARG)
        fuzz_fail("bad input reported as a caller error", st, err);
}

#endif
