# On-wire layouts and byte-order helpers shared by every kernel (docs/conventions.md §1, §2).
#
# Multi-byte fields are declared as octet arrays, never as uint16_t/uint32_t, so reading one in host
# order by accident does not compile: go through load_be16/load_be32, which memcpy (safe on the
# unaligned frames of a TPACKET_V3 ring) and convert from network order.  Sizes are asserted by
# tests/test_core_consts.py through fmipfast._core._struct_sizes() (VPP's STATIC_ASSERT_SIZEOF).

from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

# POSIX byte-order conversions (no-ops on big-endian hosts).
cdef extern from "<arpa/inet.h>" nogil:
    uint16_t ntohs(uint16_t netshort)
    uint32_t ntohl(uint32_t netlong)
    uint16_t htons(uint16_t hostshort)
    uint32_t htonl(uint32_t hostlong)

# Sizes in octets; they mirror constants.py (tests/test_core_consts.py checks they agree).
cdef enum:
    ETH_HDR_LEN = 14        # IEEE 802.3: destination(6) source(6) EtherType(2)
    IP6_HDR_LEN = 40        # RFC 8200 §3
    ICMP6_HDR_LEN = 4       # RFC 4443 §2.1: type, code, checksum
    SUBOPT_HDR_LEN = 2      # docs/design.md §2: sub-option type(1) length(1)
    SUBOPT_MAX_LEN = 255
    LKB_FRAGMENT_MAX = 253  # SUBOPT_MAX_LEN - SUBOPT_HDR_LEN
    ADDR_LEN = 16           # IPv6 address
    EUI64_LEN = 8           # the draft's 64-bit MAC fields (docs/design.md §3)
    MAC48_LEN = 6           # Ethernet MAC
    MAC_VALUE_LEN = 16      # HMAC-SHA-256-128
    IID_LEN = 8             # RFC 4291 §2.5.1: 64-bit interface identifier
    ICMP6_CKSUM_OFFSET = 2  # RFC 4443 §2.1: checksum is octets 2-3 of the message
    IP6_PSEUDO_HDR_LEN = 40 # RFC 8200 §8.1: src(16) dst(16) length(4) zero(3) next header(1)

# Ethernet II header.
#  0                   1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                   Destination MAC (48 bits)                   |
# +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                               |                               |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
# |                     Source MAC (48 bits)                      |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |           EtherType           |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
cdef packed struct eth_hdr:
    uint8_t dst[6]
    uint8_t src[6]
    uint8_t ethertype[2]     # big-endian; load_be16

# IPv6 fixed header, RFC 8200 §3.
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |Version| Traffic Class |           Flow Label                  |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |         Payload Length        |  Next Header  |   Hop Limit   |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                 Source Address (128 bits)                     |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |              Destination Address (128 bits)                   |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
cdef packed struct ip6_hdr:
    uint8_t ver_tc_flow[4]   # big-endian; load_be32; version = top 4 bits
    uint8_t payload_len[2]   # big-endian; load_be16
    uint8_t next_header
    uint8_t hop_limit
    uint8_t src[16]
    uint8_t dst[16]

# ICMPv6 header, RFC 4443 §2.1.
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |     Type      |     Code      |          Checksum             |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
cdef packed struct icmp6_hdr:
    uint8_t type
    uint8_t code
    uint8_t checksum[2]      # big-endian; load_be16 / store_be16


cdef inline uint16_t load_be16(const uint8_t* p) noexcept nogil:
    """The big-endian 16-bit value at p (any alignment)."""
    cdef uint16_t v
    memcpy(&v, p, 2)
    return ntohs(v)


cdef inline uint32_t load_be32(const uint8_t* p) noexcept nogil:
    """The big-endian 32-bit value at p (any alignment)."""
    cdef uint32_t v
    memcpy(&v, p, 4)
    return ntohl(v)


cdef inline void store_be16(uint8_t* p, uint16_t v) noexcept nogil:
    """Write v big-endian at p (any alignment)."""
    v = htons(v)
    memcpy(p, &v, 2)


cdef inline void store_be32(uint8_t* p, uint32_t v) noexcept nogil:
    """Write v big-endian at p (any alignment)."""
    v = htonl(v)
    memcpy(p, &v, 4)
