# The FMIPFAST_DEBUG switch and the kernels' debug-only assertion (includes/debug.h).
#
# setup.py also passes FMIPFAST_DEBUG as a Cython compile-time constant, so `if FMIPFAST_DEBUG:` blocks
# are dropped from normal builds before the C compiler sees them; the C macro keeps the two in step
# for code written in C (debug.h).

cdef extern from "debug.h":
    cdef int FMIPFAST_DEBUG
    # Aborts with the condition text when cond is false (debug builds); nothing in normal builds.
    void FMIPFAST_ASSERT(bint cond) noexcept nogil
