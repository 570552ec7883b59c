# fib: cdef declarations included by _core.pxd, for embedders that cimport Fib.
#
# A Fib is immutable once built: lookup only reads the table, so any number of threads may call it at
# once (each with its own `out`).

from libc.stdint cimport int32_t, uint8_t, uint64_t

# One slot of the open-addressing table: a masked key (native 64-bit halves of the big-endian address),
# its length (FIB_EMPTY: free slot) and its best matching prefix (the value of the longest prefix of
# length <= len covering the key, -1 when none).  24 octets.
cdef struct fib_slot:
    uint64_t hi
    uint64_t lo
    int32_t bmp
    uint8_t len

# The whole table as the nogil kernel sees it.  `slots` is memory the Fib allocated and owns (never
# exposed, never resized); the arrays of length nlen are the sorted distinct prefix lengths and their
# netmasks.
cdef struct fib_table:
    fib_slot* slots
    uint64_t mask          # nslots - 1, nslots a power of two >= 2 * entries (load <= 0.5)
    uint64_t max_probe     # longest probe run of a present key: no loop examines more slots
    uint64_t k0            # hash key
    uint64_t k1
    Py_ssize_t nslots
    Py_ssize_t prefixes
    Py_ssize_t entries     # prefixes + markers
    int nlen               # distinct lengths, 0..129
    uint8_t lengths[129]
    uint64_t mask_hi[129]
    uint64_t mask_lo[129]
    uint64_t inner0[129]   # the inner hash mix of a zero low half, per length (fib.pxi)


cdef class Fib:
    cdef fib_table t


# Kernels (_kernels/fib.pxi)
cdef uint64_t fib_hash(uint64_t hi, uint64_t lo, uint64_t length, uint64_t k0, uint64_t k1) noexcept nogil
cdef void fib_lookup_batch(const fib_table* t, const uint8_t* dst, Py_ssize_t m, int32_t* out) noexcept nogil
