# parse: frame classification, the batch core's first stage (docs/design.md §5, §7).
# Included by _core.pyx; not a module.  Oracle: fmipfast/reference/wire.py (same checks, same order).
#
# classify_frame() walks one Ethernet frame: 802.1Q/802.1ad tags, the IPv6 header (RFC 8200 §3), the
# extension headers (RFC 8200 §4, RFC 4302 §2.2), then the upper layer: ICMPv6 Neighbor Discovery
# (RFC 4861 §4.6, §6.1, §7.1, §8.1; RFC 6980), the fmipfast messages (draft-koodli-mobileip-fastv6-02
# §5-§7 with the docs/design.md §2 codepoints) and IPv6-in-IPv6 (RFC 2473).  The first failing check names the
# drop reason; the order is the one listed in the module docstring of fmipfast/reference/wire.py.
#
# Speed: the frame is read through one const pointer with every read behind a length guard; multi-byte
# fields with load_be16 (memcpy, any alignment); per-type limits come from uint8[256] tables (docs/conventions.md
# §2); the outputs are written through raw row pointers (classify_out) taken once per Batch, so the
# loop holds no memoryview and takes no reference.  Each output row is written once: the common fields
# (Ethernet and IPv6 addresses, offsets, hop limit, next header, ICMPv6 type and code, checksum_ok, has_ah)
# are gathered in a _frame_fields on the stack as the walk finds them and stored in one go per frame,
# defaults included (_store_fields); the class columns (target of ND; fmip_code, ncoa, identifier of
# fmipfast; lladdr, has_lladdr of both) are written, defaults included, only in the rows of the frames of
# their class (_nd, _fmip), and a Batch completes the other rows when such a column is first read
# (Batch._complete): a data frame costs no write of them.  The batch loop prefetches the frames a few rows
# ahead and runs in two passes per _CHUNK frames: the columns that are constant for a plain frame are filled
# for the whole round in wide stores first; the plain untagged frame without extension headers gets the rest
# of its row from _fast_frame, which lists the ICMPv6 ones without a branch, and the second pass finishes
# those (_fast_icmp6), so a mix of data and ICMPv6 frames is not a guess per frame; the second pass takes the
# ICMPv6 frames grouped by kind (ND type, fmipfast code, other: _ICMP_BUCKET, a counting sort) and runs each
# ND type and fmipfast code through a copy of _nd / _fmip of its own (_nd_run, _fmip_run, the type or code a
# constant), so their branches meet runs of one kind rather than a random sequence; every other frame takes
# the full walk (_classify_frame).  The ICMPv6 checksum is verified by _icmp6_ok_short, a one-pass sum
# specialised for messages of at most 65 535 octets.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport int32_t, int64_t

from fmipfast.includes.wire cimport ETH_HDR_LEN, IP6_HDR_LEN, SUBOPT_HDR_LEN, load_be32

from fmipfast.constants import DEFAULT_CODEPOINTS as _DEFAULT_CODEPOINTS
from fmipfast.constants import MESSAGE_KEYS as _MESSAGE_KEYS
from fmipfast.constants import Codepoints as _Codepoints
from fmipfast.constants import DropReason as _DropReason

import numpy as _np

__all__ += ["classify", "Batch"]

cdef enum:
    _PREFETCH_AHEAD = 8     # frames the batch loop prefetches ahead of the one it classifies
    _CHUNK = 64             # frames per two-pass round of the batch loop (their octets stay in L1)
    _MAX_VLAN_TAGS = 2
    _MAX_EXT_HEADERS = 16   # fmipfast.frames.MAX_EXT_HEADERS

# Number of DropReason members (the length of drop_counts and counters), taken from the IntEnum.
cdef Py_ssize_t _N_REASONS = len(_DropReason)

# ---------------------------------------------------------------------------------------------------
# Validation tables (docs/conventions.md §2), filled once at import by _init_tables().

# RFC 4861 §6.1.1 / §6.1.2 / §7.1.1 / §7.1.2 / §8.1, "ICMP length ... is N or more octets": the minimum
# length of each ND type, which is also where its options start; 0 = not an ND type.
cdef uint8_t _ND_MIN_LEN[256]
# Same clauses: the largest valid Code ("ICMP Code is 0").
cdef uint8_t _ND_MAX_CODE[256]
# Same clauses: "The IP Hop Limit field has a value of 255"; 1 = required.
cdef uint8_t _ND_HOP255[256]
# RFC 4861 §4.6: the link-layer address option type each ND type carries (1 Source, 2 Target).
cdef uint8_t _ND_LLA_OPT[256]
# By canonical FmipCode (index 1-7; 0 unused).  docs/design.md §2 layouts: fixed part before the flag-driven
# fields (24 for HRD/HI/HE; 10 for the HRA shape, whose Length field must equal the message length).
cdef uint8_t _FMIP_FIXED_LEN[8]
cdef uint8_t _FMIP_HAS_LENGTH_FIELD[8]
# docs/design.md §2 "Hop limit" column: 1 = must arrive with 255 (HRD, HRA, AMN, Attach, FD).
cdef uint8_t _FMIP_HOP255[8]
# docs/design.md §4: 1 = router-to-router, must carry AH (HI, HE).
cdef uint8_t _FMIP_NEEDS_AH[8]
# RFC 8200 §4.1, RFC 4302: 1 = an extension header the walk steps over (hop-by-hop 0, routing 43,
# fragment 44, AH 51, destination options 60).
cdef uint8_t _IS_EXT_HEADER[256]
# The batch loop's second pass groups the ICMPv6 frames by kind: 1-5 the ND types 133-137, 0 any other type
# (the profile's fmipfast type adds 8 + its canonical code: 8-15).
cdef uint8_t _ICMP_BUCKET[256]


cdef void _init_tables() noexcept:
    cdef int t
    for t in range(256):
        _IS_EXT_HEADER[t] = t in (NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_AH, NH_DSTOPTS)
        _ND_MIN_LEN[t] = 0
        _ND_MAX_CODE[t] = 0
        _ND_HOP255[t] = 0
        _ND_LLA_OPT[t] = 0
        _ICMP_BUCKET[t] = t - ICMP6T_ROUTER_SOLICITATION + 1 if ICMP6T_ROUTER_SOLICITATION <= t <= ICMP6T_REDIRECT else 0
    _ND_MIN_LEN[ICMP6T_ROUTER_SOLICITATION] = 8
    _ND_MIN_LEN[ICMP6T_ROUTER_ADVERTISEMENT] = 16
    _ND_MIN_LEN[ICMP6T_NEIGHBOR_SOLICITATION] = 24
    _ND_MIN_LEN[ICMP6T_NEIGHBOR_ADVERTISEMENT] = 24
    _ND_MIN_LEN[ICMP6T_REDIRECT] = 40
    for t in range(ICMP6T_ROUTER_SOLICITATION, ICMP6T_REDIRECT + 1):
        _ND_HOP255[t] = 1
    _ND_LLA_OPT[ICMP6T_ROUTER_SOLICITATION] = NDOPT_SOURCE_LL_ADDR
    _ND_LLA_OPT[ICMP6T_ROUTER_ADVERTISEMENT] = NDOPT_SOURCE_LL_ADDR
    _ND_LLA_OPT[ICMP6T_NEIGHBOR_SOLICITATION] = NDOPT_SOURCE_LL_ADDR
    _ND_LLA_OPT[ICMP6T_NEIGHBOR_ADVERTISEMENT] = NDOPT_TARGET_LL_ADDR
    _ND_LLA_OPT[ICMP6T_REDIRECT] = NDOPT_TARGET_LL_ADDR
    for t in range(8):
        _FMIP_FIXED_LEN[t] = 10
        _FMIP_HAS_LENGTH_FIELD[t] = 1
        _FMIP_HOP255[t] = 1
        _FMIP_NEEDS_AH[t] = 0
    for t in (FMIPCODE_HANDOVER_REDIRECT, FMIPCODE_HANDOVER, FMIPCODE_HANDOVER_ERROR):
        _FMIP_FIXED_LEN[t] = 24
        _FMIP_HAS_LENGTH_FIELD[t] = 0
    for t in (FMIPCODE_HANDOVER, FMIPCODE_HANDOVER_ERROR):
        _FMIP_HOP255[t] = 0
        _FMIP_NEEDS_AH[t] = 1


_init_tables()


# ---------------------------------------------------------------------------------------------------
# The per-frame kernel

cdef inline int _drop(int reason) noexcept nogil:
    return VERDICT_DROP | (reason << 8)


# The fields every frame has, as far as the walk got (zeros / NULL = not reached: the default).
cdef struct _frame_fields:
    const uint8_t* eth      # the frame (its first 12 octets: destination, source MAC), NULL if shorter
    const uint8_t* addrs    # the IPv6 source address, the destination right after it; NULL if not reached
    uint32_t l3_offset
    uint32_t l4_offset
    uint32_t l4_length
    uint8_t hop_limit
    uint8_t next_header
    uint8_t icmp_type
    uint8_t icmp_code
    uint8_t checksum_ok     # 1 unless an ICMPv6 checksum was verified and failed
    uint8_t has_ah


cdef inline void _init_fields(_frame_fields* d) noexcept nogil:
    """The defaults of every field of ``d``: zeros, checksum_ok 1."""
    memset(d, 0, sizeof(d[0]))
    d.checksum_ok = 1


cdef inline void _store_fields(classify_out* o, Py_ssize_t i, const _frame_fields* d) noexcept nogil:
    """Write row ``i`` of the fields every frame has, the defaults (zeros) where the walk did not reach."""
    if d.eth != NULL:
        memcpy(o.eth_dst + 6 * i, d.eth, 6)
        memcpy(o.eth_src + 6 * i, d.eth + 6, 6)
    else:
        memset(o.eth_dst + 6 * i, 0, 6)
        memset(o.eth_src + 6 * i, 0, 6)
    if d.addrs != NULL:
        memcpy(o.src + 16 * i, d.addrs, 16)
        memcpy(o.dst + 16 * i, d.addrs + 16, 16)
    else:
        memset(o.src + 16 * i, 0, 16)
        memset(o.dst + 16 * i, 0, 16)
    o.l3_offset[i] = d.l3_offset
    o.l4_offset[i] = d.l4_offset
    o.l4_length[i] = d.l4_length
    o.hop_limit[i] = d.hop_limit
    o.next_header[i] = d.next_header
    o.icmp_type[i] = d.icmp_type
    o.icmp_code[i] = d.icmp_code
    o.checksum_ok[i] = d.checksum_ok
    o.has_ah[i] = d.has_ah


cdef extern from *:
    """
    /* RFC 4443 §2.3 verification of an ICMPv6 message of n <= 65535 octets: the one's-complement sum of the
     * RFC 8200 §8.1 pseudo-header and the message, checksum included, must be all ones.  Native-order 64-bit
     * words (RFC 1071 §2(B) byte-order independence, §2(C) parallel summation) added with end-around carry
     * (add, then adc 0: fmip_add1c) into two independent sums, the 4-, 2- and 1-octet tail at even offsets,
     * then folds to 16 bits; 0xFFFF reads the same in either byte order.  Same result as cksum_icmp6_ok()
     * (tests compare them); one pass, no call. */
    #include <stdint.h>
    #include <string.h>
    #include <arpa/inet.h>
    static inline uint64_t fmip_add1c(uint64_t a, uint64_t b) {
        uint64_t r;
        return __builtin_add_overflow(a, b, &r) ? r + 1 : r;  /* r <= 2^64 - 2 after a carry */
    }
    static inline uint64_t fmip_word(const uint8_t *p) { uint64_t w; memcpy(&w, p, 8); return w; }
    static inline int fmip_icmp6_ok_short(const uint8_t *src, const uint8_t *dst, const uint8_t *m, size_t n) {
        uint64_t s0 = (uint64_t)htonl((uint32_t)n) + (uint64_t)htonl(58), s1 = 0, s;
        uint32_t w4;
        uint16_t w2 = 0;
        size_t i = 0;
        s0 = fmip_add1c(s0, fmip_word(src));
        s1 = fmip_add1c(s1, fmip_word(src + 8));
        s0 = fmip_add1c(s0, fmip_word(dst));
        s1 = fmip_add1c(s1, fmip_word(dst + 8));
        for (; i + 16 <= n; i += 16) {
            s0 = fmip_add1c(s0, fmip_word(m + i));
            s1 = fmip_add1c(s1, fmip_word(m + i + 8));
        }
        if (n & 8) { s0 = fmip_add1c(s0, fmip_word(m + i)); i += 8; }
        if (n & 4) { memcpy(&w4, m + i, 4); s1 = fmip_add1c(s1, w4); i += 4; }
        if (n & 2) { memcpy(&w2, m + i, 2); s0 = fmip_add1c(s0, w2); i += 2; }
        if (n & 1) { w2 = 0; memcpy(&w2, m + i, 1); s1 = fmip_add1c(s1, w2); }
        s = fmip_add1c(s0, s1);
        s = (s & 0xFFFFFFFFu) + (s >> 32);
        s = (s & 0xFFFFFFFFu) + (s >> 32);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return s == 0xFFFF;
    }
    """
    bint _icmp6_ok_short "fmip_icmp6_ok_short" (const uint8_t* src, const uint8_t* dst, const uint8_t* m,
                                                  size_t n) noexcept nogil


cdef inline bint _is_link_scope_mcast(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.7: multicast of scope 0 (reserved), 1 (interface-local) or 2 (link-local)."""
    return a[0] == 0xFF and (a[1] & 0x0F) <= 2


cdef inline int _pass(int verdict, const uint8_t* dst) noexcept nogil:
    """A router never forwards link-scope multicast (RFC 4291 §2.7): such a FORWARD is CONTROL."""
    if verdict == VERDICT_FORWARD and _is_link_scope_mcast(dst):
        return VERDICT_CONTROL
    return verdict


cdef inline bint _is_zero16(const uint8_t* a) noexcept nogil:
    cdef uint64_t x, y
    memcpy(&x, a, 8)
    memcpy(&y, a + 8, 8)
    return (x | y) == 0


cdef inline bint _is_unspecified_or_loopback(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.5.2 / §2.5.3: :: or ::1 (one test when the first half is not zero, as almost always)."""
    cdef uint64_t x
    memcpy(&x, a, 8)
    if x != 0:
        return False
    return load_be32(a + 8) == 0 and load_be32(a + 12) <= 1


cdef inline bint _is_loopback(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.5.3: ::1."""
    cdef uint64_t x
    memcpy(&x, a, 8)
    return x == 0 and load_be32(a + 8) == 0 and load_be32(a + 12) == 1


cdef inline bint _is_solicited_node(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.7.1: ff02::1:ff00:0/104."""
    return (load_be32(a) == 0xFF020000U and load_be32(a + 4) == 0 and load_be32(a + 8) == 1
            and a[12] == 0xFF)


cdef inline bint _eui64_lladdr(const uint8_t* eui, classify_out* o, Py_ssize_t i) noexcept nogil:
    """docs/design.md §3: an EUI-64 whose octets 3-4 are FF-FE carries a 48-bit MAC in its other six octets."""
    if eui[3] != 0xFF or eui[4] != 0xFE:
        return False
    memcpy(o.lladdr + 6 * i, eui, 3)
    memcpy(o.lladdr + 6 * i + 3, eui + 5, 3)
    o.has_lladdr[i] = 1
    return True


cdef inline int _nd(int t, const uint8_t* msg, Py_ssize_t mlen, const uint8_t* src, const uint8_t* dst,
                    int hop_limit, bint fragmented, classify_out* o, Py_ssize_t i,
                    _frame_fields* d) noexcept nogil:
    """Steps 4(a)-(f) for an ND message of type ``t`` == msg[0] (mlen >= 4).  Writes the ND columns of row
    ``i`` (target, lladdr, has_lladdr), defaults included: an ND frame carries them (_lazy_carriers).  The
    batch loop passes ``t`` as a constant (_nd_run), so each ND type gets a copy of its own checks."""
    cdef Py_ssize_t start = _ND_MIN_LEN[t], pos, units
    cdef int lla_type = _ND_LLA_OPT[t]
    cdef bint saw_slla = False, got_lla = False
    memset(o.target + 16 * i, 0, 16)
    memset(o.lladdr + 6 * i, 0, 6)
    o.has_lladdr[i] = 0
    # (a) RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1: "ICMP Code is 0".
    if msg[1] > _ND_MAX_CODE[t]:
        return _drop(DROP_ICMP6_BAD_CODE)
    # (b) same clauses: "ICMP length (derived from the IP length) is N or more octets".
    if mlen < start:
        return _drop(DROP_ICMP6_TRUNCATED)
    # (c) same clauses: "The IP Hop Limit field has a value of 255".
    if _ND_HOP255[t] and hop_limit != ND_HOP_LIMIT:
        return _drop(DROP_ICMP6_BAD_HOP_LIMIT)
    # (d) same clauses: "The ICMP checksum is valid" (RFC 4443 §2.3 pseudo-header).
    if not _icmp6_ok_short(src, dst, msg, <size_t>mlen):
        d.checksum_ok = 0
        return _drop(DROP_ICMP6_BAD_CHECKSUM)
    if t == ICMP6T_NEIGHBOR_SOLICITATION or t == ICMP6T_NEIGHBOR_ADVERTISEMENT or t == ICMP6T_REDIRECT:
        memcpy(o.target + 16 * i, msg + 8, 16)  # mlen >= start >= 24
    # (e) RFC 4861 §4.6: 8-octet units; length 0 or past the end invalidates the message; the first
    # link-layer address option of the type this message carries is kept when it holds 6 octets.
    pos = start
    while pos < mlen:
        if mlen - pos < 2:
            return _drop(DROP_ND_BAD_OPTION)
        units = msg[pos + 1]
        if units == 0 or units * 8 > mlen - pos:
            return _drop(DROP_ND_BAD_OPTION)
        if msg[pos] == NDOPT_SOURCE_LL_ADDR:
            saw_slla = True
        if msg[pos] == lla_type and not got_lla:
            got_lla = True
            if units == 1:
                memcpy(o.lladdr + 6 * i, msg + pos + 2, 6)
                o.has_lladdr[i] = 1
        pos += units * 8
    # (f) validity.
    if fragmented:
        return _drop(DROP_ND_INVALID)  # RFC 6980 §5: ND is never fragmented (atomic fragments included)
    if t == ICMP6T_NEIGHBOR_SOLICITATION or t == ICMP6T_NEIGHBOR_ADVERTISEMENT:
        if msg[8] == 0xFF:
            return _drop(DROP_ND_INVALID)  # RFC 4861 §7.1.1 / §7.1.2: "Target Address is not a multicast"
    if t == ICMP6T_NEIGHBOR_SOLICITATION and _is_zero16(src):
        # RFC 4861 §7.1.1: from :: (DAD) the destination is solicited-node multicast and there is no SLLA.
        if not _is_solicited_node(dst) or saw_slla:
            return _drop(DROP_ND_INVALID)
    if t == ICMP6T_NEIGHBOR_ADVERTISEMENT and (msg[4] & 0x40) and dst[0] == 0xFF:
        return _drop(DROP_ND_INVALID)  # RFC 4861 §7.1.2: multicast destination => Solicited flag is 0
    if t == ICMP6T_ROUTER_SOLICITATION and saw_slla and _is_zero16(src):
        return _drop(DROP_ND_INVALID)  # RFC 4861 §6.1.1: from :: => no source link-layer address option
    if (t == ICMP6T_ROUTER_ADVERTISEMENT or t == ICMP6T_REDIRECT) and not (src[0] == 0xFE and
                                                                          (src[1] & 0xC0) == 0x80):
        return _drop(DROP_ND_INVALID)  # RFC 4861 §6.1.2 / §8.1: "IP Source Address is a link-local address"
    return VERDICT_CONTROL


cdef inline int _fmip(int code, const uint8_t* msg, Py_ssize_t mlen, const uint8_t* src, const uint8_t* dst,
                      int hop_limit, classify_out* o, Py_ssize_t i, _frame_fields* d) noexcept nogil:
    """Steps 4(a)-(f) for an fmipfast message (msg[0] is the profile's type, mlen >= 4) whose wire code
    the profile maps to ``code`` (canonical 1-7, 0 = not in the profile).  Writes the fmipfast columns of
    row ``i`` (fmip_code, ncoa, lladdr, has_lladdr, identifier), defaults included: an fmipfast frame
    carries them (_lazy_carriers).  The batch loop passes ``code`` as a constant (_fmip_run)."""
    cdef int flags = 0, olen
    cdef Py_ssize_t start, pos, mac_at = -1
    cdef bint got_lla = False, saw_identifier = False, saw_lla = False
    o.fmip_code[i] = 0
    memset(o.ncoa + 16 * i, 0, 16)
    memset(o.lladdr + 6 * i, 0, 6)
    o.has_lladdr[i] = 0
    o.identifier[i] = -1
    # (a) docs/design.md §2 "code known": the profile maps the wire code to one of the seven messages.
    if code == 0:
        return _drop(DROP_ICMP6_BAD_CODE)
    o.fmip_code[i] = code
    # (b) docs/design.md §2 "minimum length per code ... flags consistent with lengths" (draft §5 HRD: 24 +8 if
    # M +16 if C; §6 HI: 24 +8 if M; §7 HE: 24; §6.1 HRA shape: 10, Length field = message length).
    start = _FMIP_FIXED_LEN[code]
    if mlen < start:
        return _drop(DROP_FMIP_BAD_LENGTH)
    if _FMIP_HAS_LENGTH_FIELD[code]:
        if load_be16(msg + 8) != mlen:
            return _drop(DROP_FMIP_BAD_LENGTH)
    else:
        flags = msg[5]
        if code == FMIPCODE_HANDOVER_REDIRECT:
            if flags & HRDFLAG_M:
                mac_at = start
                start += EUI64_LEN
            if flags & HRDFLAG_C:
                start += ADDR_LEN
        elif code == FMIPCODE_HANDOVER and flags & HIFLAG_M:
            mac_at = start
            start += EUI64_LEN
        if mlen < start:
            return _drop(DROP_FMIP_BAD_LENGTH)
    # (c) docs/design.md §2 "hop limit 255 where the table says so".
    if _FMIP_HOP255[code] and hop_limit != ND_HOP_LIMIT:
        return _drop(DROP_ICMP6_BAD_HOP_LIMIT)
    # (d) docs/design.md §2 "checksum (RFC 4443 pseudo-header)".
    if not _icmp6_ok_short(src, dst, msg, <size_t>mlen):
        d.checksum_ok = 0
        return _drop(DROP_ICMP6_BAD_CHECKSUM)
    if code == FMIPCODE_HANDOVER_REDIRECT:
        if flags & HRDFLAG_C:
            memcpy(o.ncoa + 16 * i, msg + start - ADDR_LEN, 16)  # C is the last fixed field
    elif code == FMIPCODE_HANDOVER or code == FMIPCODE_HANDOVER_ERROR:
        memcpy(o.ncoa + 16 * i, msg + 8, 16)
    if mac_at >= 0:
        got_lla = _eui64_lladdr(msg + mac_at, o, i)
    # (e) docs/design.md §2 sub-options: a length below 2 or past the end invalidates the message; unknown
    # types are skipped; the first Identifier (6) and the first Link-layer address (9) are kept.
    pos = start
    while pos < mlen:
        if mlen - pos < SUBOPT_HDR_LEN:
            return _drop(DROP_FMIP_BAD_SUBOPTION)
        olen = msg[pos + 1]
        if olen < SUBOPT_HDR_LEN or olen > mlen - pos:
            return _drop(DROP_FMIP_BAD_SUBOPTION)
        if msg[pos] == SUBOPT_IDENTIFIER and not saw_identifier:
            saw_identifier = True
            if olen == 6:
                o.identifier[i] = load_be16(msg + pos + 2)
        elif msg[pos] == SUBOPT_LINK_LAYER_ADDRESS and not saw_lla:
            saw_lla = True
            if olen == 10 and not got_lla:
                got_lla = _eui64_lladdr(msg + pos + 2, o, i)
        pos += olen
    # (f) docs/design.md §4: HI and HE travel between routers under AH.
    if _FMIP_NEEDS_AH[code] and not d.has_ah:
        return _drop(DROP_FMIP_NO_AH)
    return VERDICT_CONTROL


cdef int classify_frame(const uint8_t* f, Py_ssize_t length, const classify_profile* prof,
                        classify_out* o, Py_ssize_t i) noexcept nogil:
    """Classify one Ethernet frame; fill row ``i`` of ``o``; return verdict | drop_reason << 8.

    Reference: fmipfast.reference.wire.classify
    """
    cdef _frame_fields d
    _init_fields(&d)
    cdef int r = _classify_frame(f, length, prof, o, i, &d)
    _store_fields(o, i, &d)
    return r


# SAFETY: no memoryview here (nothing for boundscheck to check): f is read through a raw pointer, and every
# read of f[k] sits behind a guard on `length` (Ethernet, IPv6 header) or `end` (<= length: the payload,
# extension headers, the message; _nd/_fmip read msg[k] only for k < mlen after their length checks).
cdef inline int _classify_frame(const uint8_t* f, Py_ssize_t length, const classify_profile* prof,
                                classify_out* o, Py_ssize_t i, _frame_fields* d) noexcept nogil:
    """classify_frame()'s walk: the common fields go to ``d`` (_init_fields by the caller), the class
    columns to row ``i`` of ``o``, written whole in the rows of ND and fmipfast frames only."""
    cdef Py_ssize_t pos, l3, end, size, walked = 0, mlen
    cdef uint32_t etype
    cdef int tags = 0, nh, nxt, hop_limit, off_m, t
    cdef bint fragmented = False
    cdef const uint8_t* src
    cdef const uint8_t* dst
    cdef const uint8_t* msg
    if FMIPFAST_DEBUG:
        FMIPFAST_ASSERT(length >= 0)

    # 1. Ethernet (IEEE 802.3), up to two IEEE 802.1Q (0x8100) / 802.1ad (0x88A8) tags.
    if length < ETH_HDR_LEN:
        return _drop(DROP_ETH_TRUNCATED)
    d.eth = f
    pos = 12
    etype = load_be16(f + 12)
    if etype != ETYPE_IPV6:  # the untagged IPv6 frame skips the tag loop with one test
        while etype == ETYPE_VLAN or etype == ETYPE_QINQ:
            tags += 1
            if tags > _MAX_VLAN_TAGS:
                return _drop(DROP_TOO_MANY_VLANS)
            if length < pos + 6:
                return _drop(DROP_ETH_TRUNCATED)
            etype = load_be16(f + pos + 4)
            pos += 4
        if etype != ETYPE_IPV6:
            return _drop(DROP_NOT_IPV6)
    l3 = pos + 2

    # 2. IPv6 header (RFC 8200 §3).
    if length - l3 < IP6_HDR_LEN:
        return _drop(DROP_IP6_TRUNCATED)
    if (f[l3] >> 4) != 6:
        return _drop(DROP_IP6_BAD_VERSION)
    nh = f[l3 + 6]
    hop_limit = f[l3 + 7]
    src = f + l3 + 8
    dst = f + l3 + 24
    d.l3_offset = <uint32_t>l3
    d.hop_limit = <uint8_t>hop_limit
    d.next_header = <uint8_t>nh
    d.addrs = src
    # RFC 8200 §3: Payload Length counts the octets after the header; octets past it are link padding.
    # A zero is a zero-length payload (no RFC 2675 jumbograms).
    end = l3 + IP6_HDR_LEN + load_be16(f + l3 + 4)
    if end > length:
        return _drop(DROP_IP6_BAD_PAYLOAD_LENGTH)
    # RFC 4291 §2.7: a multicast address is never a source; §2.5.3: loopback never leaves a node.
    if src[0] == 0xFF or _is_loopback(src):
        return _drop(DROP_IP6_BAD_SOURCE)
    # RFC 4291 §2.5.2: the unspecified address is never a destination; §2.5.3 as above.
    if _is_unspecified_or_loopback(dst):
        return _drop(DROP_IP6_BAD_DESTINATION)

    # 3. Extension headers (RFC 8200 §4): hop-by-hop, destination options, routing, fragment, AH.
    pos = l3 + IP6_HDR_LEN
    while _IS_EXT_HEADER[nh]:
        if walked >= _MAX_EXT_HEADERS:
            return _drop(DROP_EXT_CHAIN_TOO_LONG)
        # RFC 8200 §4.3: the hop-by-hop options header only ever follows the IPv6 header.
        if nh == NH_HOPOPTS and walked != 0:
            return _drop(DROP_HBH_NOT_FIRST)
        # Every extension header is at least 8 octets (RFC 8200 §4.3-§4.6, RFC 4302 §2.2).
        if end - pos < 8:
            return _drop(DROP_EXT_TRUNCATED)
        walked += 1
        nxt = f[pos]
        if nh == NH_FRAGMENT:
            # RFC 8200 §4.5: 8 octets; Fragment Offset (13 bits) and M (low bit) in octets 2-3.
            off_m = load_be16(f + pos + 2)
            fragmented = True
            if (off_m >> 3) != 0 or (off_m & 1):
                # Not a whole packet: only the first fragment has the upper-layer header; not parsed.
                d.next_header = <uint8_t>nxt
                d.l4_offset = <uint32_t>(pos + 8)
                d.l4_length = <uint32_t>(end - pos - 8)
                # RFC 6980 §5: ND is never fragmented; a first fragment shows the ICMPv6 type.
                if nxt == NH_ICMPV6 and (off_m >> 3) == 0 and end - pos > 8 and _ND_MIN_LEN[f[pos + 8]]:
                    return _drop(DROP_ND_INVALID)
                return _pass(VERDICT_FORWARD, dst)
            size = 8
        elif nh == NH_AH:
            size = (<Py_ssize_t>f[pos + 1] + 2) * 4  # RFC 4302 §2.2: 32-bit words, minus 2
            d.has_ah = 1
        else:
            size = (<Py_ssize_t>f[pos + 1] + 1) * 8  # RFC 8200 §4.3-§4.6: 8-octet units, minus 1
        if size > end - pos:
            return _drop(DROP_EXT_TRUNCATED)
        pos += size
        nh = nxt
    d.next_header = <uint8_t>nh
    d.l4_offset = <uint32_t>pos
    d.l4_length = <uint32_t>(end - pos)
    msg = f + pos
    mlen = end - pos

    if nh == NH_ICMPV6:
        # 4. ICMPv6 (RFC 4443 §2.1): type, code, checksum.
        if mlen < ICMP6_HDR_LEN:
            return _drop(DROP_ICMP6_TRUNCATED)
        t = msg[0]
        d.icmp_type = <uint8_t>t
        d.icmp_code = msg[1]
        if _ND_MIN_LEN[t]:
            return _nd(t, msg, mlen, src, dst, hop_limit, fragmented, o, i, d)
        if t == prof.fmip_type:
            return _fmip(prof.code_map[msg[1]], msg, mlen, src, dst, hop_limit, o, i, d)
        # Other ICMPv6 is end to end: a bad checksum is reported, not dropped, by a router.
        if not _icmp6_ok_short(src, dst, msg, <size_t>mlen):
            d.checksum_ok = 0
        return _pass(VERDICT_FORWARD, dst)
    if nh == NH_IPV6:
        # 5. IPv6-in-IPv6 (RFC 2473 §3): the inner packet holds at least an IPv6 header of version 6.
        if mlen < IP6_HDR_LEN:
            return _drop(DROP_IP6_TRUNCATED)
        if (msg[0] >> 4) != 6:
            return _drop(DROP_IP6_BAD_VERSION)
        return _pass(VERDICT_DECAP, dst)
    # 6. Everything else (UDP, TCP, ESP, No Next Header, ...).
    return _pass(VERDICT_FORWARD, dst)


# ---------------------------------------------------------------------------------------------------
# Batch

# (attribute, dtype, octets per row) of every per-frame array, in documentation order.
_FIELDS = (
    ("verdict", _np.uint8, 1),
    ("drop_reason", _np.uint8, 1),
    ("checksum_ok", _np.bool_, 1),
    ("icmp_type", _np.uint8, 1),
    ("icmp_code", _np.uint8, 1),
    ("fmip_code", _np.uint8, 1),
    ("next_header", _np.uint8, 1),
    ("hop_limit", _np.uint8, 1),
    ("has_ah", _np.bool_, 1),
    ("l3_offset", _np.uint32, 1),
    ("l4_offset", _np.uint32, 1),
    ("l4_length", _np.uint32, 1),
    ("src", _np.uint8, 16),
    ("dst", _np.uint8, 16),
    ("ncoa", _np.uint8, 16),
    ("target", _np.uint8, 16),
    ("eth_src", _np.uint8, 6),
    ("eth_dst", _np.uint8, 6),
    ("lladdr", _np.uint8, 6),
    ("has_lladdr", _np.bool_, 1),
    ("identifier", _np.int32, 1),
)


# The class-specific columns (docs/api/batch.md "Class columns"): classify writes them only in the rows of
# the frames that carry them and leaves the other rows stale; the first read of such a column through its
# attribute after a classify completes those rows with the default (Batch._complete).  One bit each.
cdef enum:
    _LAZY_FMIP_CODE = 1
    _LAZY_NCOA = 2
    _LAZY_TARGET = 4
    _LAZY_LLADDR = 8
    _LAZY_HAS_LLADDR = 16
    _LAZY_IDENTIFIER = 32
    _LAZY_ALL = 63

_LAZY_BITS = {"fmip_code": _LAZY_FMIP_CODE, "ncoa": _LAZY_NCOA, "target": _LAZY_TARGET,
              "lladdr": _LAZY_LLADDR, "has_lladdr": _LAZY_HAS_LLADDR, "identifier": _LAZY_IDENTIFIER}


cdef inline int _lazy_carriers(uint8_t icmp_type, uint8_t fmip_type) noexcept nogil:
    """The class columns classify wrote in a row whose ``icmp_type`` the walk recorded: an ND message's
    (_nd: target, lladdr, has_lladdr) or an fmipfast message's (_fmip: fmip_code, ncoa, lladdr, has_lladdr,
    identifier); none for any other frame (icmp_type is 0 unless the walk reached the ICMPv6 type, and the
    profile's type is never an ND type: Codepoints refuses 128-137)."""
    if _ND_MIN_LEN[icmp_type]:
        return _LAZY_TARGET | _LAZY_LLADDR | _LAZY_HAS_LLADDR
    if icmp_type == fmip_type:
        return _LAZY_FMIP_CODE | _LAZY_NCOA | _LAZY_LLADDR | _LAZY_HAS_LLADDR | _LAZY_IDENTIFIER
    return 0


cdef class Batch:
    """Per-frame results of :func:`classify`: numpy arrays of ``n`` rows over ``capacity``-row storage.

    ``Batch(capacity)`` allocates the storage once; pass it as ``out=`` to reuse it.  Every attribute is
    a view of the first ``n`` rows, overwritten by the next ``classify`` into this Batch.  Attributes
    (dtype, shape): verdict, drop_reason, icmp_type, icmp_code, fmip_code, next_header, hop_limit (uint8
    [n]); checksum_ok, has_ah, has_lladdr (bool [n]); l3_offset, l4_offset, l4_length (uint32 [n]); src,
    dst, ncoa, target (uint8 [n, 16]); eth_src, eth_dst, lladdr (uint8 [n, 6]); identifier (int32 [n],
    -1 = absent); drop_counts (uint64 [len(DropReason)]).

    The class columns (target, ncoa, lladdr, has_lladdr, identifier, fmip_code) are written by classify
    only in the rows of the ND and fmipfast frames that carry them; the first read of such an attribute
    after a classify fills the other rows with their defaults (once), so every attribute read gives the
    reference's values.  A view taken before a classify is not completed by it: read the attribute again.
    C readers of ``_out`` (the forwarding node, _kernels/node.pxi) read only the columns written for every
    frame: verdict, drop_reason, l3_offset, l4_offset, l4_length, next_header, hop_limit, src, dst,
    eth_dst, eth_src, checksum_ok, icmp_type, icmp_code, has_ah, drop_counts.

    Reference: fmipfast.reference.wire.Batch
    """

    def __cinit__(self, capacity):
        capacity = _index(capacity)  # TypeError for a float or a str, as the reference
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if capacity > PY_SSIZE_T_MAX:
            raise ValueError(f"capacity {capacity} is too large")
        cdef Py_ssize_t cap = capacity
        self.capacity = cap
        self.n = 0
        rows = cap if cap > 0 else 1  # one spare row so every array has a first element to point at
        self._store = {}
        for name, dtype, width in _FIELDS:
            shape = (rows,) if width == 1 or dtype is not _np.uint8 else (rows, width)
            self._store[name] = _np.zeros(shape, dtype=dtype)
        self._drop_counts = _np.zeros(_N_REASONS, dtype=_np.uint64)
        s = self._store
        self._out.verdict = <uint8_t*>_row0(s["verdict"])
        self._out.drop_reason = <uint8_t*>_row0(s["drop_reason"])
        self._out.checksum_ok = <uint8_t*>_row0(s["checksum_ok"])
        self._out.icmp_type = <uint8_t*>_row0(s["icmp_type"])
        self._out.icmp_code = <uint8_t*>_row0(s["icmp_code"])
        self._out.fmip_code = <uint8_t*>_row0(s["fmip_code"])
        self._out.next_header = <uint8_t*>_row0(s["next_header"])
        self._out.hop_limit = <uint8_t*>_row0(s["hop_limit"])
        self._out.has_ah = <uint8_t*>_row0(s["has_ah"])
        self._out.l3_offset = <uint32_t*>_row0(s["l3_offset"])
        self._out.l4_offset = <uint32_t*>_row0(s["l4_offset"])
        self._out.l4_length = <uint32_t*>_row0(s["l4_length"])
        self._out.src = <uint8_t*>_row0(s["src"])
        self._out.dst = <uint8_t*>_row0(s["dst"])
        self._out.ncoa = <uint8_t*>_row0(s["ncoa"])
        self._out.target = <uint8_t*>_row0(s["target"])
        self._out.eth_src = <uint8_t*>_row0(s["eth_src"])
        self._out.eth_dst = <uint8_t*>_row0(s["eth_dst"])
        self._out.lladdr = <uint8_t*>_row0(s["lladdr"])
        self._out.has_lladdr = <uint8_t*>_row0(s["has_lladdr"])
        self._out.identifier = <int32_t*>_row0(s["identifier"])
        self._out.drop_counts = <uint64_t*>_row0(self._drop_counts)

    cdef void _reset(self, Py_ssize_t n) noexcept nogil:
        """Set the first n rows of every column to the defaults (zeros, checksum_ok True, identifier -1)
        and the drop counts to zero; nothing is stale."""
        cdef classify_out* o = &self._out
        self.n = n
        self._stale = 0
        memset(o.drop_counts, 0, <size_t>_N_REASONS * 8)
        memset(o.checksum_ok, 1, <size_t>n)
        memset(o.has_ah, 0, <size_t>n)
        memset(o.fmip_code, 0, <size_t>n)
        memset(o.ncoa, 0, <size_t>n * 16)
        memset(o.target, 0, <size_t>n * 16)
        memset(o.lladdr, 0, <size_t>n * 6)
        memset(o.has_lladdr, 0, <size_t>n)
        memset(o.identifier, 0xFF, <size_t>n * 4)  # int32 -1
        memset(o.icmp_type, 0, <size_t>n)
        memset(o.icmp_code, 0, <size_t>n)
        memset(o.next_header, 0, <size_t>n)
        memset(o.hop_limit, 0, <size_t>n)
        memset(o.l3_offset, 0, <size_t>n * 4)
        memset(o.l4_offset, 0, <size_t>n * 4)
        memset(o.l4_length, 0, <size_t>n * 4)
        memset(o.src, 0, <size_t>n * 16)
        memset(o.dst, 0, <size_t>n * 16)
        memset(o.eth_src, 0, <size_t>n * 6)
        memset(o.eth_dst, 0, <size_t>n * 6)

    cdef void _reset_lazy(self, Py_ssize_t n, uint8_t fmip_type) noexcept nogil:
        """Before the batch loop: n rows, the drop counts zero, every class column stale.  The loop writes
        every common column of every row and the class columns of the rows that carry them
        (_classify_frame); _complete() gives the rest their defaults when they are read."""
        self.n = n
        self._fmip_type = fmip_type
        self._stale = _LAZY_ALL
        memset(self._out.drop_counts, 0, <size_t>_N_REASONS * 8)

    cdef void _complete(self, int column) noexcept nogil:
        """Give the rows of the frames that do not carry ``column`` (a _LAZY_* bit) its default."""
        cdef classify_out* o = &self._out
        cdef Py_ssize_t i
        cdef uint8_t fmip_type = self._fmip_type
        for i in range(self.n):
            if _lazy_carriers(o.icmp_type[i], fmip_type) & column:
                continue
            if column == _LAZY_FMIP_CODE:
                o.fmip_code[i] = 0
            elif column == _LAZY_NCOA:
                memset(o.ncoa + 16 * i, 0, 16)
            elif column == _LAZY_TARGET:
                memset(o.target + 16 * i, 0, 16)
            elif column == _LAZY_LLADDR:
                memset(o.lladdr + 6 * i, 0, 6)
            elif column == _LAZY_HAS_LLADDR:
                o.has_lladdr[i] = 0
            else:
                o.identifier[i] = -1
        self._stale &= ~column

    def __getattr__(self, name):
        array = self._store.get(name)
        if array is None:
            raise AttributeError(name)
        cdef int column
        if self._stale:
            column = _LAZY_BITS.get(name, 0)
            if self._stale & column:
                self._complete(column)
        return array[:self.n]

    @property
    def drop_counts(self):
        """uint64[len(DropReason)]: the frames of this batch dropped under each reason."""
        return self._drop_counts

    def __dir__(self):
        return sorted(set(object.__dir__(self)) | set(self._store))

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"Batch(n={self.n}, capacity={self.capacity})"


# ---------------------------------------------------------------------------------------------------
# The wrapper

_profiles = {}  # Codepoints -> bytes: fmip_type followed by the 256-entry code map


cdef bytes _profile_bytes(object codepoints):
    cached = _profiles.get(codepoints)
    if cached is None:
        table = bytearray(257)
        table[0] = codepoints.type
        for index, key in enumerate(_MESSAGE_KEYS):
            table[1 + codepoints.code(key)] = index + 1
        cached = bytes(table)
        if len(_profiles) < 64:
            _profiles[codepoints] = cached
    return cached


cdef int _load_profile(object codepoints, classify_profile* prof) except -1:
    """Fill ``prof`` (a copy: the caller's stack, so concurrent calls never share it) from ``codepoints``."""
    cdef bytes profile = _profile_bytes(codepoints)
    cdef const uint8_t* table = profile
    prof.fmip_type = table[0]
    memcpy(prof.code_map, table + 1, 256)
    return 0


cdef Py_ssize_t _copy_inside(int64_t* oc, uint32_t* lc, const int64_t* offsets, const uint32_t* lengths,
                             Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    """Copy the caller's n offsets and lengths into classify()'s private ``oc`` / ``lc``, checking in the
    same pass that each span lies inside an arena of ``size`` octets: the value checked is the value
    stored, read once from the caller.  Returns the index of the first frame outside (found in the copy
    with _span_outside), or -1.

    The pass's test is _span_outside's without a branch: an offset above ``size`` (a negative one too, as
    an unsigned number) or an end above it; the end cannot wrap, as a 32-bit length is added to an offset
    of at most ``size`` < 2**63."""
    cdef Py_ssize_t i
    cdef uint64_t a, l, outside = 0, limit = <uint64_t>size
    for i in range(n):
        a = <uint64_t>offsets[i]
        l = lengths[i]
        oc[i] = <int64_t>a
        lc[i] = <uint32_t>l
        outside |= (a > limit) | (a + l > limit)
    if outside:
        for i in range(n):
            if _span_outside(oc[i], lc[i], limit):
                return i
    return -1


# SAFETY: as _classify_frame: f is read through a raw pointer, every read behind a guard on `length` (the
# Ethernet and IPv6 headers: length >= 54).
cdef inline int _fast_frame(const uint8_t* f, Py_ssize_t length, classify_out* o, Py_ssize_t i) noexcept nogil:
    """The common frame, first pass: untagged IPv6 with no extension header whose IPv6 checks all pass,
    carrying anything (ICMPv6 of at least 4 octets, IPv6-in-IPv6 with an inner header of version 6: DECAP).
    Completes its row as
    _classify_frame and _store_fields would for a frame of step 6 (FORWARD, or CONTROL to a link-scope
    multicast destination): the columns that are constant for such a frame (l3_offset, l4_offset, has_ah,
    checksum_ok, icmp_type, icmp_code, drop_reason) _classify_loop has filled for the round.  Returns 1
    if it is ICMPv6 (step 4 still to do: _fast_icmp6 finishes the row), else 0; returns -1, having written
    nothing, for any other frame (the full walk then classifies it from
    the start).  One path for both answers (the ICMPv6 rows are overwritten by the second pass), so a mix
    of data and ICMPv6 frames costs no mispredicted branch here."""
    cdef Py_ssize_t mlen
    cdef int nh, icmp, mcast, tun
    # Steps 1-2 (see _classify_frame) with every check passing; step 3 with no extension header.
    if length < ETH_HDR_LEN + IP6_HDR_LEN or load_be16(f + 12) != ETYPE_IPV6 or (f[14] >> 4) != 6:
        return -1
    nh = f[20]
    mlen = load_be16(f + 18)
    if _IS_EXT_HEADER[nh] or mlen > length - (ETH_HDR_LEN + IP6_HDR_LEN):
        return -1
    # Step 5 passing: an inner IPv6 header of version 6 (f[54] lies inside: 54 + 40 <= 54 + mlen <= length).
    tun = nh == NH_IPV6
    if tun and (mlen < IP6_HDR_LEN or (f[ETH_HDR_LEN + IP6_HDR_LEN] >> 4) != 6):
        return -1
    if f[22] == 0xFF or _is_loopback(f + 22) or _is_unspecified_or_loopback(f + 38):
        return -1
    icmp = nh == NH_ICMPV6
    if icmp & (mlen < ICMP6_HDR_LEN):
        return -1
    memcpy(o.eth_dst + 6 * i, f, 6)
    memcpy(o.eth_src + 6 * i, f + 6, 6)
    memcpy(o.src + 16 * i, f + 22, 16)
    memcpy(o.dst + 16 * i, f + 38, 16)
    o.l4_length[i] = <uint32_t>mlen
    o.hop_limit[i] = f[21]
    o.next_header[i] = <uint8_t>nh
    # Step 6.  l3_offset, l4_offset, has_ah, checksum_ok, icmp_type, icmp_code and drop_reason hold the
    # plain frame's constants already (_classify_loop fills them for the whole round).
    # _pass() without its branch: in a mix, the link-scope multicast destinations (most ND) are no guess.
    mcast = (f[38] == 0xFF) & ((f[39] & 0x0F) <= 2)
    o.verdict[i] = <uint8_t>(VERDICT_FORWARD + mcast * (VERDICT_CONTROL - VERDICT_FORWARD))
    if tun:  # IPv6-in-IPv6 (RFC 2473 §3): to be decapsulated, whatever the destination
        o.verdict[i] = VERDICT_DECAP
    return icmp


# SAFETY: f passed _fast_frame (length >= 54, end = 54 + mlen <= length); _nd/_fmip and the checksum read
# the message only below mlen.
cdef inline int _fast_icmp6(const uint8_t* f, const classify_profile* prof, classify_out* o,
                            Py_ssize_t i) noexcept nogil:
    """The second pass over a frame _fast_frame found to be ICMPv6: step 4; returns the verdict |
    drop_reason << 8 (the caller stores it).  Any ICMPv6 type; the batch loop sends it the kinds without a
    run of their own (neither ND nor fmipfast: _nd_run and _fmip_run take those)."""
    cdef Py_ssize_t mlen = load_be16(f + 18)
    cdef const uint8_t* msg = f + ETH_HDR_LEN + IP6_HDR_LEN
    cdef int t = msg[0], r
    cdef _frame_fields d
    o.icmp_type[i] = <uint8_t>t
    o.icmp_code[i] = msg[1]
    if _ND_MIN_LEN[t]:
        _init_fields(&d)
        r = _nd(t, msg, mlen, f + 22, f + 38, f[21], False, o, i, &d)
        o.checksum_ok[i] = d.checksum_ok
    elif t == prof.fmip_type:
        _init_fields(&d)
        r = _fmip(prof.code_map[msg[1]], msg, mlen, f + 22, f + 38, f[21], o, i, &d)
        o.checksum_ok[i] = d.checksum_ok
    else:
        # Other ICMPv6 is end to end: a bad checksum is reported, not dropped, by a router.
        o.checksum_ok[i] = _icmp6_ok_short(f + 22, f + 38, msg, <size_t>mlen)
        r = _pass(VERDICT_FORWARD, f + 38)
    return r


# SAFETY: as _fast_icmp6 (every frame listed passed _fast_frame and is an ND message of type t).
cdef inline void _nd_run(int t, const uint8_t* arena, const int64_t* offsets, const Py_ssize_t* order,
                         Py_ssize_t start, Py_ssize_t stop, classify_out* o) noexcept nogil:
    """The second pass over the frames order[start:stop], all ND messages of type ``t``: _fast_icmp6's
    work, with ``t`` a constant in each of the batch loop's five calls, so that each ND type runs its own
    copy of _nd (branches of its own for the branch predictor, the other types' tests folded away)."""
    cdef Py_ssize_t j, i
    cdef const uint8_t* f
    cdef int r
    cdef _frame_fields d
    for j in range(start, stop):
        i = order[j]
        f = arena + offsets[i]
        o.icmp_type[i] = <uint8_t>t
        o.icmp_code[i] = f[ETH_HDR_LEN + IP6_HDR_LEN + 1]
        _init_fields(&d)
        r = _nd(t, f + (ETH_HDR_LEN + IP6_HDR_LEN), load_be16(f + 18), f + 22, f + 38, f[21], False, o, i, &d)
        o.checksum_ok[i] = d.checksum_ok
        o.verdict[i] = <uint8_t>(r & 0xFF)
        o.drop_reason[i] = <uint8_t>(r >> 8)
        if (r & 0xFF) == VERDICT_DROP:
            o.drop_counts[r >> 8] += 1


# SAFETY: as _fast_icmp6 (every frame listed passed _fast_frame and is an fmipfast message of this code).
cdef inline void _fmip_run(int code, const uint8_t* arena, const int64_t* offsets, const Py_ssize_t* order,
                           Py_ssize_t start, Py_ssize_t stop, classify_out* o) noexcept nogil:
    """The second pass over the frames order[start:stop], all fmipfast messages whose code the profile
    maps to ``code``: as _nd_run, one copy of _fmip per code."""
    cdef Py_ssize_t j, i
    cdef const uint8_t* f
    cdef int r
    cdef _frame_fields d
    for j in range(start, stop):
        i = order[j]
        f = arena + offsets[i]
        o.icmp_type[i] = f[ETH_HDR_LEN + IP6_HDR_LEN]
        o.icmp_code[i] = f[ETH_HDR_LEN + IP6_HDR_LEN + 1]
        _init_fields(&d)
        r = _fmip(code, f + (ETH_HDR_LEN + IP6_HDR_LEN), load_be16(f + 18), f + 22, f + 38, f[21], o, i, &d)
        o.checksum_ok[i] = d.checksum_ok
        o.verdict[i] = <uint8_t>(r & 0xFF)
        o.drop_reason[i] = <uint8_t>(r >> 8)
        if (r & 0xFF) == VERDICT_DROP:
            o.drop_counts[r >> 8] += 1


cdef inline int classify_one(const uint8_t* f, Py_ssize_t length, const classify_profile* prof, classify_out* o,
                             Py_ssize_t i) noexcept nogil:
    """One frame the way _classify_loop takes it (the plain frame's constants, _fast_frame, _fast_icmp6, else
    the full walk): row ``i`` of ``o`` written whole but for the verdict and drop reason, which it returns as
    verdict | drop_reason << 8 (the caller stores them).  For a single frame outside a batch: the forwarding
    node's decapsulated inner packets."""
    cdef int r
    o.has_ah[i] = 0
    o.checksum_ok[i] = 1
    o.icmp_type[i] = 0
    o.icmp_code[i] = 0
    o.drop_reason[i] = DROP_NONE
    o.l3_offset[i] = ETH_HDR_LEN
    o.l4_offset[i] = ETH_HDR_LEN + IP6_HDR_LEN
    r = _fast_frame(f, length, o, i)
    if r == 0:
        return o.verdict[i]
    if r == 1:
        return _fast_icmp6(f, prof, o, i)
    return classify_frame(f, length, prof, o, i)


cdef void _classify_loop(const uint8_t* arena, const int64_t* offsets, const uint32_t* lengths,
                         Py_ssize_t n, const classify_profile* prof, classify_out* o) noexcept nogil:
    """Classify n frames, _CHUNK at a time in two passes: the first writes every plain frame's row
    (_fast_frame) and lists the ICMPv6 ones without a branch, the second finishes those while their octets
    are still in the cache, grouped by kind (_nd_run, _fmip_run, _fast_icmp6; the rows are independent: any
    order gives the same rows and drop counts); any other frame takes the full walk in the first pass.  SAFETY:
    raw pointers, no memoryview to check: offsets/lengths are classify()'s private copies of n entries,
    every frame inside the arena (_copy_inside returned -1 on them)."""
    cdef Py_ssize_t i, j, base, stop, pending
    cdef int r, t, b, k
    cdef _frame_fields d
    cdef const uint8_t* f
    cdef Py_ssize_t icmp[_CHUNK]
    cdef Py_ssize_t order[_CHUNK]
    cdef uint8_t kind[_CHUNK]
    cdef uint64_t lo_n, hi_n, lo_at, hi_at, one, at
    cdef uint8_t starts[17]
    # A local copy of the row pointers: the stores through them (uint8_t, which may alias anything) cannot
    # change a local whose address goes nowhere else, so the compiler keeps the pointers in registers.
    cdef classify_out lo = o[0]
    base = 0
    while base < n:
        stop = base + _CHUNK if n - base > _CHUNK else n
        pending = 0
        # The plain frame's constant columns, for the whole round in wide stores; a frame that takes the
        # full walk or the second pass overwrites its own.
        k = <int>(stop - base)
        memset(lo.has_ah + base, 0, <size_t>k)
        memset(lo.checksum_ok + base, 1, <size_t>k)
        memset(lo.icmp_type + base, 0, <size_t>k)
        memset(lo.icmp_code + base, 0, <size_t>k)
        memset(lo.drop_reason + base, DROP_NONE, <size_t>k)
        for i in range(base, stop):
            lo.l3_offset[i] = ETH_HDR_LEN
            lo.l4_offset[i] = ETH_HDR_LEN + IP6_HDR_LEN
        for i in range(base, stop):
            if i + _PREFETCH_AHEAD < n:
                # Inside the arena (checked by _copy_inside); a prefetch never faults in any case.
                __builtin_prefetch(arena + offsets[i + _PREFETCH_AHEAD])
                __builtin_prefetch(arena + offsets[i + _PREFETCH_AHEAD] + 64)
            r = _fast_frame(arena + offsets[i], lengths[i], &lo, i)
            icmp[pending] = i
            pending += r == 1
            if r < 0:
                _init_fields(&d)
                r = _classify_frame(arena + offsets[i], lengths[i], prof, o, i, &d)
                _store_fields(&lo, i, &d)
                lo.verdict[i] = <uint8_t>(r & 0xFF)
                lo.drop_reason[i] = <uint8_t>(r >> 8)
                if (r & 0xFF) == VERDICT_DROP:
                    lo.drop_counts[r >> 8] += 1
        # Bucket the ICMPv6 frames by message kind (a counting sort with no branch), so that the second pass
        # meets each kind in a run and the per-kind branches of _nd / _fmip go the same way frame after frame.
        # The 16 counters are octets of two registers (lo: kinds 0-7, hi: 8-15; at most _CHUNK = 64 each), so
        # a run of one kind is a chain of register additions, not of stores and reloads of one counter.
        lo_n = 0
        hi_n = 0
        for j in range(pending):
            f = arena + offsets[icmp[j]] + (ETH_HDR_LEN + IP6_HDR_LEN)
            t = f[0]
            b = _ICMP_BUCKET[t] + (t == prof.fmip_type) * (8 + prof.code_map[f[1]])
            kind[j] = <uint8_t>b
            one = (<uint64_t>1) << ((b & 7) * 8)
            lo_n += one * (b < 8)
            hi_n += one * (b >= 8)
        # Exclusive prefix sums: where each kind's run starts in order[], as octets of the same layout.
        lo_at = 0
        hi_at = 0
        k = 0
        for b in range(8):
            starts[b] = <uint8_t>k
            lo_at |= (<uint64_t>k) << (b * 8)
            k += <int>((lo_n >> (b * 8)) & 0xFF)
        for b in range(8):
            starts[8 + b] = <uint8_t>k
            hi_at |= (<uint64_t>k) << (b * 8)
            k += <int>((hi_n >> (b * 8)) & 0xFF)
        starts[16] = <uint8_t>k
        for j in range(pending):
            b = kind[j]
            one = (<uint64_t>1) << ((b & 7) * 8)
            at = (hi_at if b >= 8 else lo_at) >> ((b & 7) * 8)
            order[at & 0xFF] = icmp[j]
            lo_at += one * (b < 8)
            hi_at += one * (b >= 8)
        # The runs: each ND type and fmipfast code through its own copy of _nd / _fmip, any other
        # ICMPv6 through _fast_icmp6.
        for b in range(16):
            if starts[b] == starts[b + 1]:
                continue
            if b == 1:
                _nd_run(ICMP6T_ROUTER_SOLICITATION, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 2:
                _nd_run(ICMP6T_ROUTER_ADVERTISEMENT, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 3:
                _nd_run(ICMP6T_NEIGHBOR_SOLICITATION, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 4:
                _nd_run(ICMP6T_NEIGHBOR_ADVERTISEMENT, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 5:
                _nd_run(ICMP6T_REDIRECT, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 8:
                _fmip_run(0, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 9:
                _fmip_run(FMIPCODE_HANDOVER_REDIRECT, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 10:
                _fmip_run(FMIPCODE_HANDOVER_REDIRECT_ACK, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 11:
                _fmip_run(FMIPCODE_HANDOVER, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 12:
                _fmip_run(FMIPCODE_AUTHENTICATED_MN, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 13:
                _fmip_run(FMIPCODE_ATTACH, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 14:
                _fmip_run(FMIPCODE_HANDOVER_ERROR, arena, offsets, order, starts[b], starts[b + 1], &lo)
            elif b == 15:
                _fmip_run(FMIPCODE_FORWARDING_DISABLE, arena, offsets, order, starts[b], starts[b + 1], &lo)
            else:
                for j in range(starts[b], starts[b + 1]):
                    i = order[j]
                    r = _fast_icmp6(arena + offsets[i], prof, &lo, i)
                    lo.verdict[i] = <uint8_t>(r & 0xFF)
                    lo.drop_reason[i] = <uint8_t>(r >> 8)
                    if (r & 0xFF) == VERDICT_DROP:  # rare: a branch, not a read-modify-write per frame
                        lo.drop_counts[r >> 8] += 1
        base = stop


def classify(arena, offsets, lengths, *, codepoints=_DEFAULT_CODEPOINTS, out=None, counters=None):
    """Classify a batch of Ethernet frames held in one arena; one verdict and one parsed row per frame.

    Parameters
    ----------
    arena : 1-D C-contiguous uint8 buffer
        The frames (e.g. one TPACKET_V3 block).
    offsets : int64[n]
        Where each frame starts in ``arena``; ``0 <= offsets[i]``.
    lengths : uint32[n]
        Each frame's length; ``offsets[i] + lengths[i] <= len(arena)``.
    codepoints : Codepoints
        The fmipfast ICMPv6 type and codes (docs/design.md §2); ``fmip_code`` reports canonical codes 1-7.
    out : Batch, optional
        Storage to reuse (``n <= out.capacity``); None allocates a Batch of capacity ``n``.
    counters : uint64[len(DropReason)], optional
        Cumulative drop counters; this batch's ``drop_counts`` are added to it.

    Returns
    -------
    Batch
        ``out`` (or a new Batch) holding ``n`` rows.

    Raises
    ------
    ValueError
        Wrong dimensions, layout (a non-contiguous array or memoryview) or lengths; a frame outside the
        arena (the message names its index); ``n`` above ``out.capacity``; ``counters`` of the wrong size
        or read-only.
    TypeError
        An argument without the buffer protocol or of the wrong dtype (``offsets: need dtype int64, got
        int32``), ``out`` not a Batch, ``codepoints`` not a Codepoints.

    Thread safety: ``offsets`` and ``lengths`` are copied once, then checked and used from the copy, so
    another thread writing them meanwhile cannot move a frame outside the arena.

    Reference: fmipfast.reference.wire.classify
    """
    # Typed views, with the reference's exception classes: TypeError for None or no buffer protocol,
    # ValueError for a wrong dimension count, dtype or layout (a non-contiguous memoryview refuses the
    # view with BufferError: reported as the ValueError the reference raises).
    cdef const uint8_t[::1] av
    cdef const int64_t[::1] ov
    cdef const uint32_t[::1] lv
    cdef uint64_t[::1] cnt
    if arena is None:
        raise TypeError("arena: a bytes-like object is required, not 'NoneType'")
    try:
        av = arena
    except (BufferError, ValueError) as exc:  # the reference's checks, in its order and words
        _buffer_arg(arena, "arena", "B", 1)
        if isinstance(exc, BufferError):
            raise ValueError("arena: Buffer not C contiguous.") from None
        raise
    if offsets is None:
        raise TypeError("offsets: a bytes-like object is required, not 'NoneType'")
    try:
        ov = offsets
    except (BufferError, ValueError) as exc:  # the reference's checks, in its order and words
        _buffer_arg(offsets, "offsets", "bhilqn", 8)
        if isinstance(exc, BufferError):
            raise ValueError("offsets: Buffer not C contiguous.") from None
        raise
    if lengths is None:
        raise TypeError("lengths: a bytes-like object is required, not 'NoneType'")
    try:
        lv = lengths
    except (BufferError, ValueError) as exc:  # the reference's checks, in its order and words
        _buffer_arg(lengths, "lengths", "BHILQN", 4)
        if isinstance(exc, BufferError):
            raise ValueError("lengths: Buffer not C contiguous.") from None
        raise
    if not isinstance(codepoints, _Codepoints):
        raise TypeError(f"codepoints: expected Codepoints, got {type(codepoints).__name__}")
    if out is not None and not isinstance(out, Batch):
        raise TypeError(f"out: expected Batch, got {type(out).__name__}")
    cdef uint64_t* cum = NULL
    if counters is not None:
        try:
            cnt = counters
        except (BufferError, ValueError) as exc:  # the reference's checks, in its order and words
            _buffer_arg(counters, "counters", "BHILQN", 8, True)
            if isinstance(exc, BufferError):
                raise ValueError("counters: need a writable, C-contiguous buffer") from None
            raise
        if cnt.shape[0] != _N_REASONS:
            raise ValueError(f"counters: need {_N_REASONS} entries (one per DropReason), got {cnt.shape[0]}")
        cum = &cnt[0]  # shape[0] == _N_REASONS >= 1
    cdef Py_ssize_t n = ov.shape[0], size = av.shape[0], bad = -1, k
    if lv.shape[0] != n:
        raise ValueError(f"offsets and lengths differ in length ({n} != {lv.shape[0]})")
    cdef Batch ob
    if out is None:
        ob = Batch(n)
    else:
        ob = out
        if n > ob.capacity:
            raise ValueError(f"out: batch of {n} frames exceeds its capacity of {ob.capacity}")
    cdef classify_profile prof
    _load_profile(codepoints, &prof)
    cdef const uint8_t* base = _data(av)
    if n == 0:
        with nogil:
            ob._reset(0)
        return ob
    # Private copies, taken once: the checks and the loop read only these (never the caller's arrays a
    # second time), so a concurrent writer cannot turn a checked frame into a wild read.
    cdef int64_t* oc = <int64_t*>PyMem_Malloc(<size_t>n * (sizeof(int64_t) + sizeof(uint32_t)))
    if oc == NULL:
        raise MemoryError()
    cdef uint32_t* lc = <uint32_t*>(oc + n)
    try:
        with nogil:
            bad = _copy_inside(oc, lc, &ov[0], &lv[0], n, size)
            if bad < 0:
                ob._reset_lazy(n, prof.fmip_type)
                _classify_loop(base, oc, lc, n, &prof, &ob._out)
                if cum != NULL:
                    for k in range(_N_REASONS):
                        cum[k] += ob._out.drop_counts[k]
        if bad >= 0:
            raise ValueError(f"frame {bad}: offset {oc[bad]} + length {lc[bad]} is outside the "
                             f"{size}-octet arena")
    finally:
        PyMem_Free(oc)
    return ob


def _py_classify_frame(const uint8_t[::1] frame not None, codepoints=_DEFAULT_CODEPOINTS):
    """Test hook (docs/conventions.md §10): ``(verdict, drop_reason)`` of classify_frame() on one frame."""
    if not isinstance(codepoints, _Codepoints):
        raise TypeError(f"codepoints: expected Codepoints, got {type(codepoints).__name__}")
    cdef Batch out = Batch(1)
    cdef classify_profile prof
    _load_profile(codepoints, &prof)
    cdef const uint8_t* p = _data(frame)
    cdef int r
    with nogil:
        out._reset(1)
        r = classify_frame(p, frame.shape[0], &prof, &out._out, 0)
    return r & 0xFF, r >> 8


def _py_icmp6_ok_short(src, dst, message):
    """Test hook: _icmp6_ok_short() on one message (16-octet addresses; at most 65 535 octets)."""
    cdef const uint8_t[::1] s = _octets(src)
    cdef const uint8_t[::1] t = _octets(dst)
    cdef const uint8_t[::1] m = _octets(message)
    _need(s.shape[0], "src", ADDR_LEN)
    _need(t.shape[0], "dst", ADDR_LEN)
    if m.shape[0] > 65535:
        raise ValueError(f"message: at most 65535 octets, got {m.shape[0]}")
    return bool(_icmp6_ok_short(&s[0], &t[0], _data(m), <size_t>m.shape[0]))
