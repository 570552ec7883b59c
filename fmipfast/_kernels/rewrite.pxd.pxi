# rewrite: cdef declarations included by _core.pxd: the per-frame rewrite kernels.
#
# Pointers: `frame` is the start of the Ethernet frame, `length` its octets, l3 / l4 offsets inside it.
# Statuses are constants.DropReason values (DROP_* of includes/consts.pxi): 0 = done.  Callers guarantee
# frame[0:length] is readable (forward: frame[0:l3 + 40] writable, l3 >= 14) and outputs have room (rw_*_check
# report the size).

from libc.stdint cimport uint8_t

# L2 rewrite + hop-limit decrement in place (RFC 8200 §3; hop limit <= 1: HOP_LIMIT_EXCEEDED, untouched).
cdef uint8_t rw_forward(uint8_t* frame, Py_ssize_t l3, const uint8_t* dst_mac,
                        const uint8_t* src_mac) noexcept nogil
# RFC 2473 encapsulation: status, and in *inner_len the inner packet's octets (output = 14 + 40 + that).
cdef uint8_t rw_encap_check(const uint8_t* frame, Py_ssize_t length, Py_ssize_t l3, Py_ssize_t mtu,
                            Py_ssize_t* inner_len) noexcept nogil
cdef void rw_encap_write(const uint8_t* inner, Py_ssize_t inner_len, const uint8_t* dst_mac,
                         const uint8_t* src_mac, const uint8_t* outer_src, const uint8_t* outer_dst,
                         uint8_t hop_limit, uint8_t* out) noexcept nogil
# RFC 2473 §3.2 decapsulation: status, and in *inner_len the inner packet's octets (output = 14 + that).
cdef uint8_t rw_decap_check(const uint8_t* frame, Py_ssize_t length, Py_ssize_t l3, Py_ssize_t l4,
                            Py_ssize_t* inner_len) noexcept nogil
cdef void rw_decap_write(const uint8_t* inner, Py_ssize_t inner_len, uint8_t* out) noexcept nogil
