/* FMIPFAST_DEBUG: 1 in debug builds (setup.py, FMIPFAST_DEBUG=1: -O0 -g, ASan + UBSan), else 0.
 *
 * FMIPFAST_ASSERT(cond) aborts with the failed condition in debug builds and compiles to nothing
 * otherwise.  It does not use assert(): Python's CFLAGS carry -DNDEBUG, which would silence it.
 * Kernels guard their preconditions with it (docs/conventions.md §2, uvloop's UVLOOP_DEBUG). */
#ifndef FMIPFAST_DEBUG_H
#define FMIPFAST_DEBUG_H

#ifndef FMIPFAST_DEBUG
#define FMIPFAST_DEBUG 0
#endif

#if FMIPFAST_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define FMIPFAST_ASSERT(cond)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: FMIPFAST_ASSERT(%s) failed\n", __FILE__, __LINE__, \
                    #cond);                                                          \
            abort();                                                                 \
        }                                                                            \
    } while (0)
#else
#define FMIPFAST_ASSERT(cond) ((void)0)
#endif

#endif /* FMIPFAST_DEBUG_H */
