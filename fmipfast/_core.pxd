# C-level interface of fmipfast._core for Cython code that cimports it (docs/conventions.md §1): the kernel
# status codes, the `noexcept nogil` kernels behind the def wrappers, and (from the included
# _kernels/*.pxd.pxi) the cdef classes of the batch core.
#
# Kernels take raw pointers; fixed-size arguments must hold the documented number of octets
# (addresses 16, EUI-64 / interface identifiers 8, MACs 6) and outputs must have room for theirs.
# A kernel returns ST_OK (0), for verdicts 1/0, or a negative ST_* status; it never raises.

from libc.stdint cimport uint8_t, uint16_t

cdef enum:
    ST_OK = 0
    ST_BAD_LENGTH = -1         # negative length, or too long for the 32-bit upper-layer length
    ST_SHORT_MESSAGE = -2      # ICMPv6 message shorter than its 4-octet header
    ST_BAD_NEXT_HEADER = -3    # next header outside 0..255
    ST_BAD_CKSUM_OFFSET = -4   # checksum field not inside the payload
    ST_BAD_PREFIX_LEN = -5     # prefix length outside 0..128
    ST_LL_PREFIX_NOT_64 = -6   # link-local derivation with a prefix size other than 64
    ST_NOT_FFFE = -7           # EUI-64 whose octets 3-4 are not FF FE
    ST_IID_TOO_SHORT = -8      # prefix size > 64: the interface identifier is shorter than an EUI-64
    ST_IID_NOT_EUI64 = -9      # interface identifier not FF-FE based: the sender must set M
    ST_WRONG_SIZE = -10        # a fixed-size argument has the wrong length (wrappers only)
    ST_READONLY = -11          # an output buffer is read-only (wrappers only)

# _kernels/cksum.pxi
cdef int cksum_internet(const uint8_t* data, Py_ssize_t n, uint16_t* out) noexcept nogil
cdef int cksum_upper_layer(const uint8_t* src, const uint8_t* dst, int next_header, const uint8_t* payload,
                           Py_ssize_t n, Py_ssize_t checksum_offset, uint16_t* out) noexcept nogil
cdef int cksum_icmp6(const uint8_t* src, const uint8_t* dst, const uint8_t* message, Py_ssize_t n,
                     uint16_t* out) noexcept nogil
cdef int cksum_icmp6_ok(const uint8_t* src, const uint8_t* dst, const uint8_t* message,
                        Py_ssize_t n) noexcept nogil
cdef int cksum_icmp6_fill(const uint8_t* src, const uint8_t* dst, uint8_t* message, Py_ssize_t n,
                          uint16_t* out) noexcept nogil

# _kernels/derive.pxi
cdef int derive_ncoa(const uint8_t* nar_address, int prefix_len, const uint8_t* coa,
                     uint8_t* out16) noexcept nogil
cdef int derive_nar_link_local(const uint8_t* nar_address, int prefix_len, uint8_t* out16) noexcept nogil
cdef int derive_eui64_from_mac48(const uint8_t* mac6, uint8_t* out8) noexcept nogil
cdef int derive_flip_ul(const uint8_t* in8, uint8_t* out8) noexcept nogil
cdef int derive_link_local_from_mac48(const uint8_t* mac6, uint8_t* out16) noexcept nogil
cdef int derive_mac48_from_eui64(const uint8_t* eui8, uint8_t* out6) noexcept nogil
cdef int derive_eui64_from_address(const uint8_t* address16, int prefix_len, uint8_t* out8) noexcept nogil
cdef int derive_mac48_from_address(const uint8_t* address16, int prefix_len, uint8_t* out6) noexcept nogil

# The batch core: one declaration fragment per kernel fragment.
include "_kernels/parse.pxd.pxi"
include "_kernels/ncache.pxd.pxi"
include "_kernels/bufq.pxd.pxi"
include "_kernels/rewrite.pxd.pxi"
include "_kernels/fib.pxd.pxi"
