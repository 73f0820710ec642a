/*
 * Thread stacks for `nominal serve`'s HTTP threads.
 *
 * civetweb as Debian builds it (USE_STACK_SIZE) starts each HTTP thread
 * with a 100 KB stack, and glibc carves every thread's static TLS out of
 * the stack size it was asked for. OpenBLAS alone has 60 KB of static TLS,
 * so once it is linked (LAPACK) an HTTP thread reaches nominal's request
 * handler with about 17 KB left, less than civetweb's own mg_printf needs:
 * the server dies of a stack overflow on its first answer (seen in the
 * ASan build, which links OpenBLAS already).
 *
 * So this executable raises any explicitly requested thread stack below
 * MIN_THREAD_STACK to that size (only touched pages take memory). It lives
 * in the CLI, not in libnominal: a library must not change how its host
 * program's threads are made.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#define MIN_THREAD_STACK ((size_t)1 << 20)

int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    int (*libc_setstacksize)(pthread_attr_t *, size_t);
    /* POSIX's way to turn dlsym's object pointer into a function pointer */
    *(void **)&libc_setstacksize = dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
    if (!libc_setstacksize)
        return EINVAL;
    return libc_setstacksize(attr, size < MIN_THREAD_STACK ? MIN_THREAD_STACK : size);
}
