# parse: cdef declarations included by _core.pxd: the Batch of classify and its kernel.
#
# An embedding Cython daemon can `cimport fmipfast._core` and call classify_frame() on one frame with a
# classify_out whose pointers address its own arrays (row i of each), or read a Batch's arrays directly:
# through `_out` only the common columns (every one but target, ncoa, lladdr, has_lladdr, identifier and
# fmip_code), which classify writes for every frame; the class columns are complete only once read through
# the Batch's Python attributes (Batch._complete).

from libc.stdint cimport int32_t, uint32_t, uint64_t

# Row-0 pointers of every per-frame array of a Batch (row i of an [n, k] array is at + k*i).
cdef struct classify_out:
    uint8_t* verdict
    uint8_t* drop_reason
    uint8_t* checksum_ok
    uint8_t* icmp_type
    uint8_t* icmp_code
    uint8_t* fmip_code
    uint8_t* next_header
    uint8_t* hop_limit
    uint8_t* has_ah
    uint32_t* l3_offset
    uint32_t* l4_offset
    uint32_t* l4_length
    uint8_t* src           # [n, 16]
    uint8_t* dst           # [n, 16]
    uint8_t* ncoa          # [n, 16]
    uint8_t* target        # [n, 16]
    uint8_t* eth_src       # [n, 6]
    uint8_t* eth_dst       # [n, 6]
    uint8_t* lladdr        # [n, 6]
    uint8_t* has_lladdr
    int32_t* identifier
    uint64_t* drop_counts  # [len(DropReason)]

# The codepoint profile as the kernel reads it (docs/design.md §2).
cdef struct classify_profile:
    uint8_t fmip_type       # the ICMPv6 type of the fmipfast messages
    uint8_t code_map[256]   # wire Code -> canonical FmipCode 1-7, 0 = not in the profile

# Classify one frame of `length` octets at `frame` and fill row `i` of `out`: every common column, and the
# class columns of an ND or fmipfast frame (the others keep what row `i` held: give it the defaults, zeros
# and identifier -1, first).  Returns verdict | drop_reason << 8; never fails.
cdef int classify_frame(const uint8_t* frame, Py_ssize_t length, const classify_profile* profile,
                        classify_out* out, Py_ssize_t i) noexcept nogil

cdef class Batch:
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t n
    cdef dict _store              # attribute name -> numpy array of `capacity` rows (never resized)
    cdef object _drop_counts      # numpy uint64[len(DropReason)]
    cdef classify_out _out        # row-0 pointers into _store
    cdef int _stale               # _LAZY_* bits: class columns whose non-carrying rows are not yet filled
    cdef uint8_t _fmip_type       # the profile's ICMPv6 type of the last classify (which rows carry what)
    cdef void _reset(self, Py_ssize_t n) noexcept nogil
    cdef void _reset_lazy(self, Py_ssize_t n, uint8_t fmip_type) noexcept nogil
    cdef void _complete(self, int column) noexcept nogil
