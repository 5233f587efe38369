/*
 * libloader.so: a library that opens plugins by bare name, found through
 * its own DT_RUNPATH ($ORIGIN/sub), as glibc's dlopen looks a bare name
 * up along the RUNPATH of the object that calls it
 * (tests/tests/side_doors_plugins.rs).
 *
 *   loader_open(name, mode)
 *       dlopen(name, mode) called from this library; the handle, or
 *       null with dlerror() for the caller.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

/* Kept out of a tail call, so that this library is dlopen's caller. */
static void *volatile last;

void *loader_open(const char *name, int mode)
{
    last = dlopen(name, mode);
    return last;
}
