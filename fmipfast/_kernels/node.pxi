# node: the forwarding node.  One nogil call per block takes the frames classify judged through the neighbor
# cache, the FIB and the handover columns to their action, rewrites what is forwarded in place and fills one
# TX vector per output interface; with a PacketBuffer set it pushes the handover's buffered frames itself, and
# with a tunnel set up it encapsulates toward the NAR into its own arena and per-interface tunnel TX vectors.
# Python sees only the frames punted to it (control, resolution, ICMPv6 errors, decapsulation, and the
# handover classes the node cannot finish: no buffer, no tunnel, a NAR's next hop unresolved).
#
# Contract (fmipfast/reference/node.py is the oracle, output for output):
#   * tables: the NeighborCache and Fib given to the node (it keeps references; the engine thread is their
#     only writer and the node's only caller), the node's own columns entry_key / entry_peer (one row per
#     neighbor entry, written by the engine's handover hooks), interface MACs, route columns, peers;
#   * `run` validates every argument and the span of every frame in the arena before the first write; inside
#     the loop every index it derives is bounds-checked (neighbor entries < capacity, routes < route rows,
#     interfaces < interfaces, l3 + 40 <= frame length) so a stale or foreign table value is a no-route or a
#     drop, never a stray access;
#   * outputs are the node's own arrays, overwritten by the next `run`: callers copy what they keep across a
#     nested pass (the tunnel arena too: send its vectors before starting one);
#   * the tunnel arena holds `capacity` frames of 14 + max(mtu) octets and an encapsulated frame is at most
#     14 + its interface's MTU (rw_encap_check), so a block cannot run out of it (the cursor is checked anyway:
#     a frame that would not fit is punted, never written past the end);
#   * the buffer is pushed once per block, after the loop, in block order (bufq_push): its statuses turn a
#     frame's BUFFERED into a drop by that reason;
#   * with finish_inner, a decapsulated inner packet is classified (into the node's own Batch, the engine's
#     codepoints) and finished at its outer frame's place in the block when its action is one the node
#     completes (DECAPPED: FORWARD, TUNNELLED, BUFFERED, DROP); any other goes to the decap vector untouched,
#     for Python's pass, which classifies and looks it up again.

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.string cimport memcmp

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>
    #include <time.h>
    /* Ask the kernel to send what a TX ring holds (send(2) of nothing, as PacketRing._kick does): 0, or the
       errno of a failure other than "would block" (the kernel then sends as the device drains). */
    static int fmip_node_kick(int fd) {
        for (;;) {
            if (send(fd, "", 0, MSG_DONTWAIT) >= 0) return 0;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return errno ? errno : EIO;
        }
    }
    static int64_t fmip_node_monotonic_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    """
    int fmip_node_kick(int fd) noexcept nogil
    int64_t fmip_node_monotonic_ns() noexcept nogil

from fmipfast.includes.linux cimport TP_STATUS_CSUMNOTREADY

import fmipfast.reference.node as _node_ref
from fmipfast.constants import EngineCounter as _EngineCounter

_EMPTY_I64 = _np.zeros(0, dtype=_np.int64)
_EMPTY_U32 = _np.zeros(0, dtype=_np.uint32)
cdef Py_ssize_t _N_COUNTERS = len(_EngineCounter)  # rows of the engine's counters (run's ``counts``)

cdef enum:
    _NODE_MIN_MTU = 1280  # RFC 8200 §5

cdef enum:
    # run_ring's reasons (the reference's RING_IDLE .. RING_CHUNK)
    _NODE_RING_IDLE = 0
    _NODE_RING_LIMIT = 1
    _NODE_RING_BLOCK = 2
    _NODE_RING_CHUNK = 3

cdef enum:
    _NODE_STAT_DROPPED = 0
    _NODE_STAT_HELD = 1
    _NODE_STAT_CSUM = 2
    _NODE_STAT_FRAMES = 3
    _NODE_STAT_BUFFERED = 4
    _NODE_STAT_DECAPPED = 5
    _NODE_NSTATS = 6
    # a route not looked up yet (the FIB answers -1 for none): _node_transit looks it up if it needs it
    _NODE_ROUTE_LATER = -2
    # the actions whose frames Python handles before a block's TX vectors are sent (they may send frames of
    # their own that go first: a flushed buffer, a resolved queue, decapsulated packets): a block with any of
    # them is not filled into the TX rings
    _NODE_PYTHON_FIRST = ~((1 << ACTION_DROP) | (1 << ACTION_FORWARD) | (1 << ACTION_BUFFERED)
                           | (1 << ACTION_TUNNELLED) | (1 << ACTION_DECAPPED))


cdef inline int _node_csum_field(uint8_t nh) noexcept nogil:
    if nh == NH_UDP:
        return 6
    if nh == NH_TCP:
        return 16
    if nh == NH_ICMPV6:
        return 2
    return -1


@cython.boundscheck(False)
cdef bint _node_complete_checksum(uint8_t* frame, Py_ssize_t length, Py_ssize_t l3, Py_ssize_t l4, uint8_t nh,
                                  const uint8_t* src, const uint8_t* dst) noexcept nogil:
    """Complete the upper-layer checksum the sending kernel left to the device; False when not applicable."""
    cdef int field = _node_csum_field(nh)
    cdef Py_ssize_t end
    cdef uint16_t value
    if field < 0 or l4 == 0:
        return False
    end = l3 + IP6_HDR_LEN + ((<Py_ssize_t>frame[l3 + 4] << 8) | frame[l3 + 5])
    if end > length or l4 > end or end - l4 < field + 2:
        return False
    if cksum_upper_layer(src, dst, nh, frame + l4, end - l4, field, &value) != ST_OK:
        return False
    frame[l4 + field] = <uint8_t>(value >> 8)
    frame[l4 + field + 1] = <uint8_t>(value & 0xFF)
    return True


# What a frame's decision reads and appends to during one run: the tables, the TX and tunnel vectors, the
# tunnel arena's cursor and the route of the last peer tunnelled to (the tables do not change during a run).
cdef struct _node_run:
    nc_table* t
    const fib_table* ft
    Py_ssize_t entries, nroutes, nif, cap, ekey_rows, ntpeers, tsize, cursor
    const int32_t* ekey
    const int32_t* epeer
    const uint8_t* imac
    const int32_t* rif
    const uint8_t* rvia
    const uint8_t* rhas
    int64_t* txc
    int64_t* txo
    uint32_t* txl
    uint64_t* stats
    bint tunnel_on
    uint8_t thlim
    const uint8_t* tsrc
    const uint32_t* tmtu
    const uint32_t* mtu            # each output interface's MTU (set_mtus): a larger packet is PACKET_TOO_BIG
    const uint8_t* tpeers
    uint8_t* tarena
    int64_t* tcount
    int64_t* toffsets
    uint32_t* tlengths
    int32_t last_peer
    int t_out
    int64_t t_k
    const uint8_t* peer
    const uint8_t* t_hop


cdef inline bint _node_link_local(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.5.6: fe80::/10."""
    return a[0] == 0xFE and (a[1] & 0xC0) == 0x80


cdef inline bint _node_v4_mapped(const uint8_t* a) noexcept nogil:
    """RFC 4291 §2.5.5.2: ::ffff:0:0/96."""
    cdef uint64_t x
    memcpy(&x, a, 8)
    return x == 0 and a[8] == 0 and a[9] == 0 and a[10] == 0xFF and a[11] == 0xFF


cdef inline bint _node_not_forwarded(const uint8_t* src, const uint8_t* dst) noexcept nogil:
    """Whether a router never forwards a packet of ``src`` to ``dst`` (ADDRESS_NOT_FORWARDED): a link-local
    source or destination, an IPv4-mapped one, a multicast destination.  The common global unicast packet
    costs one branch on two first octets (0xFE, 0xFF and 0 are the ones that may be).  The callers refuse a
    unicast packet in a link-layer group frame from the wire after it (LINK_MULTICAST_NOT_FORWARDED).
    Reference: reference.node.not_forwarded"""
    if (<uint8_t>(src[0] + 2) <= 2) | (<uint8_t>(dst[0] + 2) <= 2):
        return (dst[0] == 0xFF or _node_link_local(src) or _node_link_local(dst) or _node_v4_mapped(src)
                or _node_v4_mapped(dst))
    return False


@cython.boundscheck(False)
cdef inline int _node_transit(_node_run* c, uint8_t* frame, int64_t at, Py_ssize_t length, Py_ssize_t l3,
                              const uint8_t* dst, uint8_t hop_limit, int64_t e, int32_t r, bint hold_ok,
                              int32_t* x, int* out_if, const uint8_t** next_hop) noexcept nogil:
    """The action of a frame (at offset ``at`` of the arena) whose destination is not the router's: entry
    ``e`` (-1: none, else < entries), route ``r`` (bounded here; _NODE_ROUTE_LATER: looked up if needed); the
    caller has refused what a router never forwards (_node_not_forwarded).  A TUNNEL entry's frame is encapsulated
    toward its peer (TUNNELLED) or punted (TUNNEL); a PROXY entry's, and a HOLD entry's when ``hold_ok``, is
    BUFFER (key in ``x``: the caller pushes or punts it); anything else is forwarded: rewritten and appended to
    its interface's TX vector (FORWARD), or NO_ROUTE / TIME_EXCEEDED / PACKET_TOO_BIG (aux: the MTU) / RESOLVE
    with nothing written.
    ``out_if`` / ``next_hop`` are set for FORWARD and RESOLVE, ``x`` (the aux) always."""
    cdef nc_table* t = c.t
    cdef uint8_t fl = t.flags[e] if e >= 0 else 0
    cdef int32_t p, t_route
    cdef int out
    cdef int64_t k, n
    cdef Py_ssize_t inner_len
    cdef uint8_t rst
    cdef const uint8_t* hop
    x[0] = -1
    if fl & NCFLAG_TUNNEL:
        p = c.epeer[e] if e < c.ekey_rows else -1
        x[0] = p
        if not c.tunnel_on or p < 0 or p >= c.ntpeers:
            return ACTION_TUNNEL
        if p != c.last_peer:  # the peer's route and next hop, once per peer and block
            c.last_peer = p
            c.peer = c.tpeers + p * ADDR_LEN
            c.t_out = -1
            c.t_k = -1
            fib_lookup_batch(c.ft, c.peer, 1, &t_route)
            if 0 <= t_route < c.nroutes and 0 <= c.rif[t_route] < c.nif:
                c.t_out = c.rif[t_route]
                c.t_hop = c.rvia + t_route * ADDR_LEN if c.rhas[t_route] else c.peer
                nc_lookup_batch(t, c.t_hop, 1, &c.t_k)
                if c.t_k >= c.entries or (c.t_k >= 0 and t.states[c.t_k] == NCSTATE_INCOMPLETE):
                    c.t_k = -1
        if c.t_k < 0:
            return ACTION_TUNNEL
        rst = rw_encap_check(frame, length, l3, c.tmtu[c.t_out], &inner_len)
        if rst == DROP_HOP_LIMIT_EXCEEDED:  # RFC 2473 §3.1: forwarded first, so Time Exceeded is due
            x[0] = -1
            return ACTION_TIME_EXCEEDED
        if rst == DROP_FRAME_TOO_BIG and inner_len > _NODE_MIN_MTU:
            # RFC 2473 §7.1 (b): Packet Too Big with the tunnel's MTU (the link's less the outer header), or
            # the minimum MTU if that is less; a packet of at most the minimum would be fragmented: dropped
            x[0] = <int32_t>(c.tmtu[c.t_out] - IP6_HDR_LEN if c.tmtu[c.t_out] - IP6_HDR_LEN > _NODE_MIN_MTU
                             else _NODE_MIN_MTU)
            return ACTION_PACKET_TOO_BIG
        if rst != DROP_NONE:
            x[0] = rst
            return ACTION_DROP
        if inner_len > c.tsize - c.cursor - ETH_HDR_LEN - IP6_HDR_LEN:  # cannot happen (see the contract)
            return ACTION_TUNNEL
        rw_encap_write(frame + l3, inner_len, t.macs + c.t_k * MAC48_LEN, c.imac + c.t_out * MAC48_LEN,
                       c.tsrc + c.t_out * ADDR_LEN, c.peer, c.thlim, c.tarena + c.cursor)
        n = c.tcount[c.t_out]
        c.toffsets[c.t_out * c.cap + n] = c.cursor
        c.tlengths[c.t_out * c.cap + n] = <uint32_t>(ETH_HDR_LEN + IP6_HDR_LEN + inner_len)
        c.tcount[c.t_out] = n + 1
        c.cursor += ETH_HDR_LEN + IP6_HDR_LEN + inner_len
        return ACTION_TUNNELLED
    if fl & NCFLAG_PROXY:
        x[0] = c.ekey[e] if e < c.ekey_rows else -1
        return ACTION_BUFFER
    if (fl & NCFLAG_HOLD) and hold_ok:
        x[0] = c.ekey[e] if e < c.ekey_rows else -1
        c.stats[_NODE_STAT_HELD] += 1
        return ACTION_BUFFER
    out = -1
    hop = dst
    if e >= 0 and t.states[e] != NCSTATE_INCOMPLETE:
        out = <int>t.ifindex[e] if t.ifindex[e] < <uint32_t>c.nif else -1
    else:
        if r == _NODE_ROUTE_LATER:
            fib_lookup_batch(c.ft, dst, 1, &r)
        if 0 <= r < c.nroutes:
            out = c.rif[r]
            if c.rhas[r]:
                hop = c.rvia + r * ADDR_LEN
    if out < 0 or out >= c.nif:
        return ACTION_NO_ROUTE
    if hop_limit <= 1:
        return ACTION_TIME_EXCEEDED
    if length - l3 > <Py_ssize_t>c.mtu[out]:  # 0 <= out < nif; a router never fragments (RFC 8200 §5)
        x[0] = <int32_t>c.mtu[out]
        return ACTION_PACKET_TOO_BIG
    out_if[0] = out
    next_hop[0] = hop
    if hop == dst and e >= 0:  # on-link: the destination's own entry
        k = e
    else:
        nc_lookup_batch(t, hop, 1, &k)
        if k >= c.entries:
            k = -1
    if k < 0 or t.states[k] == NCSTATE_INCOMPLETE:
        return ACTION_RESOLVE
    memcpy(frame, t.macs + k * MAC48_LEN, MAC48_LEN)
    memcpy(frame + MAC48_LEN, c.imac + out * MAC48_LEN, MAC48_LEN)
    frame[l3 + 7] -= 1
    n = c.txc[out]
    c.txo[out * c.cap + n] = at
    c.txl[out * c.cap + n] = <uint32_t>length
    c.txc[out] = n + 1
    return ACTION_FORWARD


cdef inline int _node_buffered(const bufq_t* bq, int32_t* x) noexcept nogil:
    """A BUFFER frame with the node's buffer set: BUFFERED (the caller lists it for the block's push) when
    its key ``x`` is the buffer's, else DROP with the reason in ``x``."""
    if x[0] < 0:  # this handover does not buffer (the HI's U flag was clear)
        x[0] = DROP_NOT_BUFFERED
        return ACTION_DROP
    if x[0] >= bq.max_keys:  # a column value outside the buffer: not the engine's
        x[0] = DROP_INTERNAL_ERROR
        return ACTION_DROP
    return ACTION_BUFFERED


@cython.boundscheck(False)
cdef inline int _node_inner(_node_run* c, const classify_profile* prof, classify_out* io, Py_ssize_t i,
                            uint8_t* f, int64_t at, Py_ssize_t length, const bufq_t* bq, int32_t* x,
                            int64_t* entry) noexcept nogil:
    """The inner packet of a frame just decapsulated in place (its own frame at ``f``, offset ``at`` of the
    arena, ``length`` octets), classified into row ``i`` of ``io``: its action when the node finishes it --
    FORWARD, TUNNELLED, BUFFERED (the caller lists it for the push), DROP (reason in ``x``) -- with ``x`` and
    ``entry`` set as for an outer frame; or -1, with nothing done (no frame octet, vector or counter written)
    for anything Python's pass does (the router's own, control, resolution, ICMPv6 errors, a punted tunnel
    or buffer, another level of tunnel).  Reference: Node._inner"""
    cdef int r = classify_one(f, length, prof, io, i)
    cdef int v = r & 0xFF, a, out
    cdef Py_ssize_t l3
    cdef int64_t e
    cdef const uint8_t* dst
    cdef const uint8_t* hop
    entry[0] = -1
    if v == VERDICT_DROP:
        x[0] = r >> 8
        return ACTION_DROP
    l3 = io.l3_offset[i]
    if l3 < ETH_HDR_LEN or l3 + IP6_HDR_LEN > length:
        x[0] = DROP_IP6_TRUNCATED
        return ACTION_DROP
    if v != VERDICT_FORWARD and v != VERDICT_DECAP:
        return -1
    dst = io.dst + i * ADDR_LEN
    nc_lookup_batch(c.t, dst, 1, &e)
    if e >= c.entries:
        e = -1
    if e >= 0 and (c.t.flags[e] & NCFLAG_LOCAL):
        return -1
    if _node_not_forwarded(io.src + i * ADDR_LEN, dst):
        x[0] = DROP_ADDRESS_NOT_FORWARDED
        return ACTION_DROP
    a = _node_transit(c, f, at, length, l3, dst, io.hop_limit[i], e, _NODE_ROUTE_LATER, False, x, &out, &hop)
    if a == ACTION_BUFFER and bq != NULL:
        a = _node_buffered(bq, x)
    if a == ACTION_FORWARD or a == ACTION_TUNNELLED or a == ACTION_BUFFERED:
        entry[0] = e
        return a
    if a == ACTION_DROP:
        return a
    return -1



# An output interface's TPACKET_V3 TX ring, as the node fills it (set_tx_ring): the mapping, its slots, and the
# cell holding the next slot to use, shared with the ring's own sender (fmipfast.rings.PacketRing), which
# carries on from wherever the node stopped.
cdef struct _node_txring:
    uint8_t* base
    Py_ssize_t slots
    Py_ssize_t fsize
    int64_t* head


@cython.boundscheck(False)
cdef Py_ssize_t _node_fill(const _node_txring* r, const uint8_t* src, const int64_t* offs, const uint32_t* lens,
                           Py_ssize_t m) noexcept nogil:
    """Queue the first frames of a TX vector (offsets into ``src``, every span checked by the caller) on the
    TX ring, in order, until the ring is full or a frame does not fit a slot; returns how many (the rest is
    left to the ring's sender, which counts what does not fit).  Each slot through ring_tx_put, as
    ring_tx_fill fills them.  A head outside the ring (not the sender's) fills nothing."""
    cdef int64_t h = r.head[0]
    cdef Py_ssize_t j = 0, room = r.fsize - <Py_ssize_t>FMIPFAST_TX_DATA_OFF
    if h < 0 or h >= r.slots:
        return 0
    while j < m:
        if lens[j] > <uint64_t>room:
            break
        if not ring_tx_put(r.base + h * r.fsize, src + offs[j], lens[j]):  # 0 <= h < slots: inside the ring
            break
        h += 1
        if h == r.slots:
            h = 0
        j += 1
    r.head[0] = h
    return j


cdef class Node:
    """The forwarding node: see fmipfast/reference/node.py, whose ``Node`` this is, output for output.

    One ``run`` per classified block takes each frame through the neighbor cache, the FIB and the handover
    columns to its :class:`~fmipfast.constants.Action`, rewrites the forwarded frames in place and fills one
    TX vector per output interface.  The outputs (``action`` .. ``stats``) are read-only views of the node's
    own arrays, overwritten by the next ``run``.  One thread (the engine's) calls ``run`` and the setters.

    ``Node(ncache, capacity, interfaces)``: ``capacity`` is the most frames one ``run`` takes (1..2**20),
    ``interfaces`` the number of output interfaces (1..4096).  Other values are a ``ValueError``; ``ncache``
    not a NeighborCache a ``TypeError``.

    The columns the engine writes: ``entry_key`` int32 (ncache.capacity,), the buffer key of each PROXY /
    HOLD neighbor entry (-1: none); ``entry_peer`` int32 (ncache.capacity,), the peer index of each TUNNEL
    neighbor entry (-1: none; a row of ``set_tunnel_peers``).  ``set_buffer`` and ``set_tunnel`` let the node
    finish the BUFFER and TUNNEL classes itself (see the reference).

    Reference: fmipfast.reference.node.Node
    """

    cdef NeighborCache _nc
    cdef Fib _fib
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t interfaces
    # the columns the engine writes (numpy, never resized: the node holds a reference to each)
    cdef readonly object entry_key, entry_peer
    # outputs and tables: the node's own arrays; the attributes users see are read-only views of them
    cdef object _iface_mac, _action, _aux, _entry, _out_if, _next_hop, _tx_count, _tx_offsets, _tx_lengths
    cdef object _stats, _route_if, _route_via, _route_has_via, _peers, _routes_scratch, _rdst, _ridx, _rtmp
    cdef object _poff, _plen
    # the TX rings the node fills (set_tx_ring): one per interface (base NULL: none), the arrays kept alive
    cdef _node_txring* _txr
    cdef list _txr_refs
    cdef object _txq, _tq
    cdef int64_t* _p_txq
    cdef int64_t* _p_tq
    # the handover's buffer and tunnel (None / unset: the node punts BUFFER and TUNNEL)
    cdef PacketBuffer _buf
    cdef object _bkeys, _boff, _blen, _bidx, _bst
    cdef bint _tunnel_on
    cdef int _tunnel_hlim
    cdef object _tsrc, _tmtu, _tpeers, _tarena, _tcount, _toffsets, _tlengths
    cdef object _tarena_ro        # its read-only view, made with it (read once per tunnelling block)
    cdef Py_ssize_t _ntpeers, _tsize
    cdef object _doffsets, _dlengths
    cdef Py_ssize_t _dcount
    # the inner packets the node finishes (run's finish_inner): their classification and outcome
    cdef Batch _inner_batch
    cdef classify_profile _prof
    cdef object _iact, _iaux, _ient
    cdef uint8_t* _p_iact
    cdef int32_t* _p_iaux
    cdef int64_t* _p_ient
    cdef public object last_drops
    cdef Py_ssize_t _nroutes, _npeers
    # data pointers of the arrays above, taken once (run acquires only its arguments' buffers)
    cdef int32_t* _p_ekey
    cdef int32_t* _p_epeer
    cdef Py_ssize_t _ekey_rows
    cdef uint8_t* _p_imac
    cdef uint8_t* _p_act
    cdef int32_t* _p_aux
    cdef int64_t* _p_ent
    cdef int32_t* _p_oif
    cdef uint8_t* _p_nhop
    cdef int64_t* _p_txc
    cdef int64_t* _p_txo
    cdef uint32_t* _p_txl
    cdef uint64_t* _p_stats
    cdef int32_t* _p_routes
    cdef int64_t* _p_poff
    cdef uint32_t* _p_plen
    cdef uint8_t* _p_rdst
    cdef int64_t* _p_ridx
    cdef int32_t* _p_rtmp
    cdef int32_t* _p_rif
    cdef uint8_t* _p_rvia
    cdef uint8_t* _p_rhas
    cdef uint8_t* _p_peers
    cdef int32_t* _p_bkeys
    cdef int64_t* _p_boff
    cdef uint32_t* _p_blen
    cdef int64_t* _p_bidx
    cdef uint8_t* _p_bst
    cdef uint8_t* _p_tsrc
    cdef uint32_t* _p_tmtu
    cdef uint8_t* _p_tpeers
    cdef uint8_t* _p_tarena
    cdef int64_t* _p_tcount
    cdef int64_t* _p_toffsets
    cdef uint32_t* _p_tlengths
    cdef int64_t* _p_doffsets
    cdef uint32_t* _p_dlengths
    cdef object _mtu              # each output interface's MTU (set_mtus; 65535: as large as IPv6 describes)
    cdef uint32_t* _p_mtu
    cdef object _kfd, _ring_tx     # run_ring: the socket to kick per interface (-1: none), frames it queued
    cdef int32_t* _p_kfd
    cdef int64_t* _p_ring_tx

    def __cinit__(self, ncache, capacity, interfaces):
        _node_ref.check_init(ncache, capacity, interfaces)
        if not isinstance(ncache, NeighborCache):
            raise TypeError(f"ncache: need fmipfast._core.NeighborCache, got {type(ncache).__name__}")
        self._nc = ncache
        self.capacity = capacity
        self.interfaces = interfaces
        cdef Py_ssize_t entries = self._nc.t.capacity
        self.entry_key = _np.full(max(entries, 1), -1, dtype=_np.int32)
        self.entry_peer = _np.full(max(entries, 1), -1, dtype=_np.int32)
        self._ekey_rows = entries
        self._iface_mac = _np.zeros((interfaces, MAC48_LEN), dtype=_np.uint8)
        self._action = _np.zeros(capacity, dtype=_np.uint8)
        self._aux = _np.full(capacity, -1, dtype=_np.int32)
        self._entry = _np.full(capacity, -1, dtype=_np.int64)
        self._out_if = _np.full(capacity, -1, dtype=_np.int32)
        self._next_hop = _np.zeros((capacity, ADDR_LEN), dtype=_np.uint8)
        self._tx_count = _np.zeros(interfaces, dtype=_np.int64)
        self._tx_offsets = _np.zeros((interfaces, capacity), dtype=_np.int64)
        self._tx_lengths = _np.zeros((interfaces, capacity), dtype=_np.uint32)
        self._stats = _np.zeros(_NODE_NSTATS, dtype=_np.uint64)
        self._routes_scratch = _np.zeros(capacity, dtype=_np.int32)
        self._p_ekey = <int32_t*>_row0(self.entry_key)
        self._p_epeer = <int32_t*>_row0(self.entry_peer)
        self._p_imac = <uint8_t*>_row0(self._iface_mac)
        self._p_act = <uint8_t*>_row0(self._action)
        self._p_aux = <int32_t*>_row0(self._aux)
        self._p_ent = <int64_t*>_row0(self._entry)
        self._p_oif = <int32_t*>_row0(self._out_if)
        self._p_nhop = <uint8_t*>_row0(self._next_hop)
        self._p_txc = <int64_t*>_row0(self._tx_count)
        self._p_txo = <int64_t*>_row0(self._tx_offsets)
        self._p_txl = <uint32_t*>_row0(self._tx_lengths)
        self._p_stats = <uint64_t*>_row0(self._stats)
        self._p_routes = <int32_t*>_row0(self._routes_scratch)
        self._txr = <_node_txring*>PyMem_Calloc(<size_t>interfaces, sizeof(_node_txring))
        if self._txr == NULL:
            raise MemoryError()
        self._txr_refs = [None] * interfaces
        self._txq = _np.zeros(interfaces, dtype=_np.int64)
        self._tq = _np.zeros(interfaces, dtype=_np.int64)
        self._p_txq = <int64_t*>_row0(self._txq)
        self._p_tq = <int64_t*>_row0(self._tq)
        self._poff = _np.zeros(capacity, dtype=_np.int64)
        self._plen = _np.zeros(capacity, dtype=_np.uint32)
        self._p_poff = <int64_t*>_row0(self._poff)
        self._p_plen = <uint32_t*>_row0(self._plen)
        self._rdst = _np.zeros((capacity, ADDR_LEN), dtype=_np.uint8)
        self._ridx = _np.zeros(capacity, dtype=_np.int64)
        self._rtmp = _np.zeros(capacity, dtype=_np.int32)
        self._p_rdst = <uint8_t*>_row0(self._rdst)
        self._p_ridx = <int64_t*>_row0(self._ridx)
        self._p_rtmp = <int32_t*>_row0(self._rtmp)
        self._set_routes_arrays(_np.zeros(0, dtype=_np.int32), _np.zeros((0, ADDR_LEN), dtype=_np.uint8),
                                _np.zeros(0, dtype=_np.uint8))
        self._set_peers_array(_np.zeros((0, ADDR_LEN), dtype=_np.uint8))
        self._fib = None
        self.last_drops = None
        self._buf = None
        self._bkeys = _np.zeros(capacity, dtype=_np.int32)
        self._boff = _np.zeros(capacity, dtype=_np.int64)
        self._blen = _np.zeros(capacity, dtype=_np.uint32)
        self._bidx = _np.zeros(capacity, dtype=_np.int64)
        self._bst = _np.zeros(capacity, dtype=_np.uint8)
        self._p_bkeys = <int32_t*>_row0(self._bkeys)
        self._p_boff = <int64_t*>_row0(self._boff)
        self._p_blen = <uint32_t*>_row0(self._blen)
        self._p_bidx = <int64_t*>_row0(self._bidx)
        self._p_bst = <uint8_t*>_row0(self._bst)
        self._tunnel_on = False
        self._tunnel_hlim = 64
        self._tsrc = _np.zeros((interfaces, ADDR_LEN), dtype=_np.uint8)
        self._tmtu = _np.zeros(interfaces, dtype=_np.uint32)
        self._tcount = _np.zeros(interfaces, dtype=_np.int64)
        self._toffsets = _np.zeros((interfaces, capacity), dtype=_np.int64)
        self._tlengths = _np.zeros((interfaces, capacity), dtype=_np.uint32)
        self._p_tsrc = <uint8_t*>_row0(self._tsrc)
        self._p_tmtu = <uint32_t*>_row0(self._tmtu)
        self._p_tcount = <int64_t*>_row0(self._tcount)
        self._p_toffsets = <int64_t*>_row0(self._toffsets)
        self._p_tlengths = <uint32_t*>_row0(self._tlengths)
        self._set_tunnel_arena(1)
        self._set_tunnel_peers_array(_np.zeros((0, ADDR_LEN), dtype=_np.uint8))
        self._doffsets = _np.zeros(capacity, dtype=_np.int64)
        self._dlengths = _np.zeros(capacity, dtype=_np.uint32)
        self._p_doffsets = <int64_t*>_row0(self._doffsets)
        self._p_dlengths = <uint32_t*>_row0(self._dlengths)
        self._dcount = 0
        self._inner_batch = Batch(capacity)
        _load_profile(_DEFAULT_CODEPOINTS, &self._prof)
        self._iact = _np.zeros(capacity, dtype=_np.uint8)
        self._iaux = _np.full(capacity, -1, dtype=_np.int32)
        self._ient = _np.full(capacity, -1, dtype=_np.int64)
        self._p_iact = <uint8_t*>_row0(self._iact)
        self._p_iaux = <int32_t*>_row0(self._iaux)
        self._p_ient = <int64_t*>_row0(self._ient)
        self._mtu = _np.full(interfaces, _node_ref.TUNNEL_MTU_MAX, dtype=_np.uint32)
        self._p_mtu = <uint32_t*>_row0(self._mtu)
        self._kfd = _np.full(interfaces, -1, dtype=_np.int32)
        self._ring_tx = _np.zeros(interfaces, dtype=_np.int64)
        self._p_kfd = <int32_t*>_row0(self._kfd)
        self._p_ring_tx = <int64_t*>_row0(self._ring_tx)

    def __dealloc__(self):
        PyMem_Free(self._txr)

    cdef _set_tunnel_arena(self, Py_ssize_t size):
        self._tarena = _np.zeros(size, dtype=_np.uint8)
        self._tarena_ro = Node._ro(self._tarena)
        self._p_tarena = <uint8_t*>_row0(self._tarena)
        self._tsize = size

    cdef _set_tunnel_peers_array(self, p):
        self._tpeers = _np.concatenate([p, _np.zeros((1, ADDR_LEN), dtype=_np.uint8)])
        self._p_tpeers = <uint8_t*>_row0(self._tpeers)
        self._ntpeers = p.shape[0]

    cdef _set_routes_arrays(self, ri, rv, rh):
        # one spare row so every column has a first element; _nroutes bounds what a lookup may index
        self._route_if = _np.concatenate([ri, _np.zeros(1, dtype=_np.int32)])
        self._route_via = _np.concatenate([rv, _np.zeros((1, ADDR_LEN), dtype=_np.uint8)])
        self._route_has_via = _np.concatenate([rh, _np.zeros(1, dtype=_np.uint8)])
        self._p_rif = <int32_t*>_row0(self._route_if)
        self._p_rvia = <uint8_t*>_row0(self._route_via)
        self._p_rhas = <uint8_t*>_row0(self._route_has_via)
        self._nroutes = ri.shape[0]

    cdef _set_peers_array(self, p):
        self._peers = _np.concatenate([p, _np.zeros((1, ADDR_LEN), dtype=_np.uint8)])
        self._p_peers = <uint8_t*>_row0(self._peers)
        self._npeers = p.shape[0]

    @staticmethod
    cdef object _ro(object a):
        v = a.view()
        v.flags.writeable = False
        return v

    @property
    def iface_mac(self):
        """uint8 (interfaces, 6), read-only."""
        return Node._ro(self._iface_mac)

    @property
    def action(self):
        """uint8 (capacity,), read-only: the Action of each frame of the last run."""
        return Node._ro(self._action)

    @property
    def aux(self):
        """int32 (capacity,), read-only: buffer key (BUFFER), peer index (TUNNEL), drop reason (DROP), else -1."""
        return Node._ro(self._aux)

    @property
    def entry(self):
        """int64 (capacity,), read-only: the destination's neighbor index or -1."""
        return Node._ro(self._entry)

    @property
    def out_if(self):
        """int32 (capacity,), read-only: output interface (FORWARD, RESOLVE) or -1."""
        return Node._ro(self._out_if)

    @property
    def next_hop(self):
        """uint8 (capacity, 16), read-only: next hop (FORWARD, RESOLVE)."""
        return Node._ro(self._next_hop)

    @property
    def tx_count(self):
        """int64 (interfaces,), read-only: frames in each interface's TX vector."""
        return Node._ro(self._tx_count)

    @property
    def tx_offsets(self):
        """int64 (interfaces, capacity), read-only: ``tx_offsets[k, :tx_count[k]]`` in block order."""
        return Node._ro(self._tx_offsets)

    @property
    def tx_lengths(self):
        """uint32 (interfaces, capacity), read-only."""
        return Node._ro(self._tx_lengths)

    @property
    def stats(self):
        """uint64 (6,), read-only: dropped, reorder_held, csum_completed, frames, buffered, decapped
        (``NODE_STATS``)."""
        return Node._ro(self._stats)

    @property
    def tunnel_arena(self):
        """uint8, read-only: the frames the node encapsulated in the last run (see ``tunnel_offsets``)."""
        return self._tarena_ro

    @property
    def tunnel_count(self):
        """int64 (interfaces,), read-only: tunnel frames in each interface's tunnel TX vector."""
        return Node._ro(self._tcount)

    @property
    def tunnel_offsets(self):
        """int64 (interfaces, capacity), read-only: ``tunnel_offsets[k, :tunnel_count[k]]`` into ``tunnel_arena``."""
        return Node._ro(self._toffsets)

    @property
    def tunnel_lengths(self):
        """uint32 (interfaces, capacity), read-only."""
        return Node._ro(self._tlengths)

    @property
    def decap_count(self):
        """int: inner frames the last run decapsulated in place (see ``decap_offsets``)."""
        return self._dcount

    @property
    def decap_offsets(self):
        """int64 (capacity,), read-only: ``decap_offsets[:decap_count]``, the inner frames in the block's arena."""
        return Node._ro(self._doffsets)

    @property
    def decap_lengths(self):
        """uint32 (capacity,), read-only."""
        return Node._ro(self._dlengths)

    @property
    def tx_queued(self):
        """int64 (interfaces,), read-only: of each interface's TX vector, the first ``tx_queued[k]`` frames
        the last run queued on the interface's TX ring itself (``set_tx_ring``): the caller kicks the ring
        and sends only the rest."""
        return Node._ro(self._txq)

    @property
    def tunnel_queued(self):
        """int64 (interfaces,), read-only: as ``tx_queued``, of the tunnel TX vectors."""
        return Node._ro(self._tq)

    def set_tx_ring(self, iface, ring, frame_size=0, head=None):
        """Fill interface ``iface``'s TX vectors straight into its TPACKET_V3 TX ring at the end of each run
        (``ring`` None: stop).  See the reference."""
        r, fs, h = _node_ref.check_tx_ring(iface, ring, frame_size, head, self.interfaces)
        cdef _node_txring* t = &self._txr[<Py_ssize_t>iface]
        if r is None:
            t.base = NULL
            t.slots = 0
            t.fsize = 0
            t.head = NULL
            self._txr_refs[iface] = None
            return
        cdef uint8_t[::1] rv = r
        cdef int64_t[::1] hv = h
        t.base = &rv[0]
        t.slots = rv.shape[0] // fs
        t.fsize = fs
        t.head = &hv[0]
        self._txr_refs[iface] = (r, h)

    @property
    def inner_action(self):
        """uint8 (capacity,), read-only: for a DECAPPED frame, the Action of its inner packet (FORWARD,
        TUNNELLED, BUFFERED or DROP); other rows are stale."""
        return Node._ro(self._iact)

    @property
    def inner_aux(self):
        """int32 (capacity,), read-only: for a DECAPPED frame, its inner packet's aux (as ``aux``)."""
        return Node._ro(self._iaux)

    @property
    def inner_entry(self):
        """int64 (capacity,), read-only: for a DECAPPED frame, its inner destination's neighbor index
        (-1: none, or the inner packet was dropped)."""
        return Node._ro(self._ient)

    @property
    def ncache(self):
        return self._nc

    def set_codepoints(self, codepoints):
        """The fmipfast codepoints the inner packets are classified with (``finish_inner``; default:
        DEFAULT_CODEPOINTS).  The engine gives the ones it classifies its blocks with."""
        _node_ref.check_codepoints(codepoints)
        _load_profile(codepoints, &self._prof)

    def set_buffer(self, buffer):
        """The PacketBuffer BUFFER frames are pushed into (None: they are punted).  See the reference."""
        if buffer is not None and not isinstance(buffer, PacketBuffer):
            raise TypeError(f"buffer: need a PacketBuffer, got {type(buffer).__name__}")
        self._buf = buffer

    def set_tunnel(self, sources, mtus, *, hop_limit=64):
        """Outer source address and MTU of each output interface, the outer hop limit.  See the reference."""
        src, mtu, hlim = _node_ref.check_tunnel(sources, mtus, hop_limit, self.interfaces)
        self._tsrc[:] = src
        self._tmtu[:] = mtu
        self._tunnel_hlim = hlim
        self._set_tunnel_arena(self.capacity * (ETH_HDR_LEN + int(mtu.max())))
        self._tunnel_on = True

    def set_mtus(self, mtus):
        """Each output interface's MTU, uint32 (interfaces,), 1280..65535: a packet to forward that is larger is
        PACKET_TOO_BIG.  See the reference."""
        self._mtu[:] = _node_ref.check_mtus(mtus, self.interfaces)

    @property
    def mtus(self):
        """uint32 (interfaces,), read-only: the MTUs of ``set_mtus`` (65535 until it is called)."""
        return Node._ro(self._mtu)

    def set_tx_kick(self, iface, fd):
        """The socket of interface ``iface``'s TX ring, which ``run_ring`` kicks (-1: none).  See the reference."""
        _node_ref.check_tx_ring(iface, None, 0, None, self.interfaces)
        if isinstance(fd, bool) or not isinstance(fd, (int, _np.integer)) or not -1 <= fd < (1 << 31):
            raise ValueError(f"fd: need a descriptor or -1, got {fd!r}")
        self._p_kfd[<Py_ssize_t>iface] = <int32_t>fd

    @property
    def ring_tx(self):
        """int64 (interfaces,), read-only: the frames the last ``run_ring`` queued on each interface's TX ring."""
        return Node._ro(self._ring_tx)

    def set_tunnel_peers(self, peers):
        """The NARs tunnels lead to, ``uint8[p, 16]`` (row ``entry_peer[e]``)."""
        self._set_tunnel_peers_array(_node_ref._array(peers, "peers", _np.uint8, (ADDR_LEN,)))

    def set_interfaces(self, macs):
        """The MAC of each output interface, ``uint8[interfaces, 6]``."""
        m = _node_ref._array(macs, "macs", _np.uint8, (MAC48_LEN,))
        if m.shape[0] != self.interfaces:
            raise ValueError(f"macs: need {self.interfaces} rows, got {m.shape[0]}")
        self._iface_mac[:] = m

    def set_routes(self, fib, route_if, route_via, route_has_via):
        """The FIB and its columns (see the reference)."""
        if not isinstance(fib, Fib):
            raise TypeError(f"fib: need fmipfast._core.Fib, got {type(fib).__name__}")
        ri, rv, rh = _node_ref.check_tables(fib, route_if, route_via, route_has_via, self.interfaces)
        self._set_routes_arrays(ri, rv, rh)
        self._fib = fib

    def set_peers(self, peers):
        """The routers whose IPv6-in-IPv6 packets are decapsulated, ``uint8[p, 16]``."""
        self._set_peers_array(_node_ref._array(peers, "peers", _np.uint8, (ADDR_LEN,)))

    def run(self, batch, arena, offsets, lengths, status, iface, *, from_wire=True, inner=False, drops=None,
            now_ns=None, finish_inner=False, counts=None):
        """See the reference: decide and act on one classified block; returns the bit set of actions."""
        return self._run(batch, arena, offsets, lengths, status, iface, from_wire, inner, drops, now_ns,
                         finish_inner, False, counts)

    def run_block(self, batch, arena, offsets, lengths, status, iface, *, from_wire=True, inner=False, drops=None,
                  now_ns=None, finish_inner=False, counts=None):
        """See the reference: classify the block into ``batch`` (the node's codepoints), then ``run`` -- one
        call and one nogil section for the whole block."""
        return self._run(batch, arena, offsets, lengths, status, iface, from_wire, inner, drops, now_ns,
                         finish_inner, True, counts)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run_ring(self, batch, ring, block_size, block_nr, cursor, iface, walk_out, *, drops, counts, now_ns=None,
                 max_blocks=1, hold=False, per_frame=False):
        """See the reference: the ready blocks of a TPACKET_V3 RX ring (``per_frame``: the ready runs of slots of a
        TPACKET_V2 one) through the node, walked, classified,
        run, filled into the TX rings and kicked chunk by chunk in one nogil section, until a chunk needs the
        caller; returns ``(reason, cursor, blocks, frames, csum_not_ready, walked, start, stop, present, errno,
        err_iface)``."""
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        if type(batch) is not Batch:
            raise TypeError(f"batch: need fmipfast._core.Batch, got {type(batch).__name__}")
        cdef bint frames_mode = per_frame
        rv_, bs_, nr_, cur_, outs, rows_ = _node_ref.check_ring(ring, block_size, block_nr, cursor, walk_out,
                                                                  max_blocks, frames_mode)
        _node_ref.check_run(batch, rv_, _EMPTY_I64, _EMPTY_U32, _EMPTY_U32, iface, drops, self.capacity,
                            self.interfaces, block=True)
        if drops is None:
            raise TypeError(f"drops: need a writable uint64 array of at least {_N_REASONS} rows")
        if counts is None:
            raise TypeError("counts: need the engine's counts, a uint64 array")
        _node_ref.check_counts(counts)
        cdef uint8_t[::1] rv = rv_
        cdef int64_t[::1] wo = outs[0]
        cdef uint32_t[::1] wl = outs[1]
        cdef uint32_t[::1] ws = outs[2]
        cdef int64_t[::1] wt = outs[3]
        cdef uint32_t[::1] wv = outs[4]
        cdef uint64_t[::1] dr = drops
        cdef uint64_t[::1] cv = counts
        cdef Batch b = <Batch>batch
        cdef bint fixed = now_ns is not None and self._buf is not None
        cdef int64_t now = _node_ref.check_now(now_ns) if fixed else 0
        cdef Py_ssize_t bs = bs_, nr = nr_, cur = cur_, rows = rows_, mb = max_blocks
        cdef Py_ssize_t ring_size = rv.shape[0], ndr = dr.shape[0]
        cdef Py_ssize_t cap = min(self.capacity, b.capacity)
        cdef int ifc = iface
        cdef bint hold_on = hold
        cdef uint8_t* arp = &rv[0]
        cdef uint64_t* drp = &dr[0]
        cdef uint64_t* cnt = &cv[0]
        cdef int64_t* txq = self._p_txq
        cdef int64_t* tq = self._p_tq
        cdef int64_t* txc = self._p_txc
        cdef int64_t* tcount = self._p_tcount
        cdef int64_t* rtx = self._p_ring_tx
        cdef int32_t* kfd = self._p_kfd
        cdef Py_ssize_t nif = self.interfaces
        cdef Py_ssize_t blk, k, n = 0, start = 0, stop = 0, announced = 0, csum_blk = 0, bad = -1
        cdef Py_ssize_t blocks = 0, frames = 0, csum = 0
        cdef int reason = _NODE_RING_LIMIT, present = 0, err = 0, err_if = -1, walk_error = 0, e
        cdef int64_t q
        cdef uint8_t* block
        cdef bint caller
        with nogil:
            for k in range(nif):
                rtx[k] = 0
            for blk in range(mb):
                block = arp + cur * bs  # cur < nr and nr * bs <= ring_size (check_ring)
                if frames_mode:  # a TPACKET_V2 ring: the run of ready slots from the cursor
                    n = _ring_walk_frames(arp, bs, nr, cur, &wo[0], &wl[0], &ws[0], &wt[0], &wv[0], rows,
                                          &walk_error, &announced, &csum_blk)
                    if announced == 0:
                        reason = _NODE_RING_IDLE
                        break
                else:
                    if not (fmip_ring_load_acquire_at(block + FMIP_RING_BLOCK_STATUS_OFF) & TP_STATUS_USER):
                        reason = _NODE_RING_IDLE
                        break
                    n = _ring_walk(block, bs, cur * bs, &wo[0], &wl[0], &ws[0], &wt[0], &wv[0], rows, &walk_error,
                                   &announced, &csum_blk)
                caller = walk_error != 0 or announced != n
                for k in range(n):
                    if wv[k] != <uint32_t>0xFFFFFFFFu:
                        caller = True
                        break
                if caller:
                    reason = _NODE_RING_BLOCK
                    n = 0
                    break
                blocks += 1
                frames += n
                csum += csum_blk
                start = 0
                while start < n:
                    stop = start + cap if n - start > cap else n
                    present = self._core(b, arp, ring_size, &wo[start], &wl[start], &ws[start], stop - start,
                                         stop - start, drp, ndr, cnt,
                                         now if fixed else fmip_node_monotonic_ns(), ifc, True, False, True,
                                         True, &bad)
                    caller = bad >= 0 or (present & _NODE_PYTHON_FIRST) != 0 or (
                        hold_on and (present & (1 << ACTION_DECAPPED)) != 0)
                    for k in range(nif):
                        if txq[k] != txc[k] or tq[k] != tcount[k]:
                            caller = True
                    if caller:
                        reason = _NODE_RING_CHUNK
                        break
                    for k in range(nif):  # the chunk is done: kick each ring it queued frames on, and book them
                        q = txq[k] + tq[k]
                        if q == 0:
                            continue
                        rtx[k] += q
                        e = fmip_node_kick(kfd[k]) if kfd[k] >= 0 else 0
                        if e != 0:
                            drp[DROP_INTERNAL_ERROR] += <uint64_t>q
                            cnt[ENGCTR_DROPPED] += <uint64_t>q
                            if err == 0:
                                err = e
                                err_if = <int>k
                        else:
                            cnt[ENGCTR_FORWARDED] += <uint64_t>txq[k]
                            cnt[ENGCTR_TUNNELLED] += <uint64_t>tq[k]
                    if err != 0:
                        present = 0
                        reason = _NODE_RING_CHUNK
                        break
                    start = stop
                if reason == _NODE_RING_CHUNK:
                    break
                if frames_mode:
                    _ring_release_frames(arp, bs, nr, cur, n)
                    cur = (cur + n) % nr
                else:
                    fmip_ring_store_release_at(block + FMIP_RING_BLOCK_STATUS_OFF, TP_STATUS_KERNEL)
                    cur = cur + 1 if cur + 1 < nr else 0
        if bad >= 0:  # the walk put every frame inside its block: its storage changed under the node since
            raise ValueError(f"frame {bad}: offset {self._p_poff[bad]} + length {self._p_plen[bad]} runs past the "
                             f"arena ({ring_size} octets)")
        if reason == _NODE_RING_CHUNK:
            return (reason, cur, blocks, frames, csum, n, start, stop, present, err, err_if)
        return (reason, cur, blocks, frames, csum, 0, 0, 0, 0, 0, -1)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef object _run(self, batch, arena, offsets, lengths, status, iface, from_wire, inner, drops, now_ns,
                     finish_inner, bint do_classify, counts, bint retried=False):
        # the arguments as data pointers and lengths; the views below only hold what the slow path took
        cdef uint8_t* arp = NULL
        cdef const int64_t* offp = NULL
        cdef const uint32_t* lnp = NULL
        cdef const uint32_t* stp = NULL
        cdef uint64_t* drp = NULL
        cdef Py_ssize_t size = 0, n = 0, nln = 0, nst = 0, ndr = 0
        cdef uint8_t[::1] ar
        cdef const int64_t[::1] off
        cdef const uint32_t[::1] ln
        cdef const uint32_t[::1] st
        cdef uint64_t[::1] dr
        cdef Batch b
        cdef bint ok = False
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        if drops is None:
            drops = _np.zeros(_N_REASONS, dtype=_np.uint64)
            self.last_drops = drops
        cdef uint64_t* cnt = NULL  # the engine's counters the block's figures go into (None: only stats)
        cdef Py_ssize_t ncnt = 0
        cdef uint64_t[::1] cv
        # fastest path: exact numpy arrays of the kernel's dtypes (what the engine passes), a few loads each
        if (type(batch) is Batch and _np_vec(arena, cnp.NPY_UINT8, True, <char**>&arp, &size)
                and _np_vec(offsets, cnp.NPY_INT64, False, <char**>&offp, &n)
                and _np_vec(lengths, cnp.NPY_UINT32, False, <char**>&lnp, &nln)
                and _np_vec(status, cnp.NPY_UINT32, False, <char**>&stp, &nst)
                and _np_vec(drops, cnp.NPY_UINT64, True, <char**>&drp, &ndr)):
            b = <Batch>batch
        else:
            # any other buffer: typed views; on any doubt the shared checks raise the shared message
            try:
                if isinstance(batch, Batch) and isinstance(drops, _np.ndarray):
                    b = batch
                    ar = arena
                    off = offsets
                    ln = lengths
                    st = status
                    dr = drops
                    size, n, nln, nst, ndr = ar.shape[0], off.shape[0], ln.shape[0], st.shape[0], dr.shape[0]
                    arp = &ar[0] if size else _EMPTY
                    offp = &off[0] if n else NULL
                    lnp = &ln[0] if nln else NULL
                    stp = &st[0] if nst else NULL
                    drp = &dr[0] if ndr else NULL
                    ok = True
            except (TypeError, ValueError, BufferError):
                ok = False
            if not ok:
                b = None
        ok = (b is not None and nln == n and (nst == 0 or nst == n) and n <= self.capacity
              and n <= (b.capacity if do_classify else b.n) and ndr >= _N_REASONS
              and type(iface) is int and 0 <= iface < self.interfaces)
        if not ok:
            if not isinstance(batch, Batch):
                raise TypeError(f"batch: need fmipfast._core.Batch, got {type(batch).__name__}")
            ar_, off_, ln_, st_, _ = _node_ref.check_run(batch, arena, offsets, lengths, status, iface, drops,
                                                         self.capacity, self.interfaces, block=do_classify)
            if do_classify:  # and classify's own checks, as the reference's run_block runs them
                _buffer_arg(arena, "arena", "B", 1)
                _buffer_arg(offsets, "offsets", "bhilqn", 8)
                _buffer_arg(lengths, "lengths", "BHILQN", 4)
            if not retried:  # what the checks accept, in the form they give it (contiguous; iface an int)
                return self._run(batch, ar_, off_, ln_, st_, _index(iface), from_wire, inner, drops, now_ns,
                                 finish_inner, do_classify, counts, True)
            raise SystemError("fmipfast._core.Node.run: argument refused by the fast path only")
        if counts is not None and not (_np_vec(counts, cnp.NPY_UINT64, True, <char**>&cnt, &ncnt)
                                       and ncnt >= _N_COUNTERS):
            _node_ref.check_counts(counts)  # the reference's TypeError, after the other arguments' checks
            cv = counts  # what the check accepts (an ndarray subclass, say): its typed view
            cnt = &cv[0]
        cdef int64_t now = 0
        if self._buf is not None:
            if type(now_ns) is int and 0 <= now_ns < (1 << 63):  # the engine's clock: no call to the checks
                now = now_ns
            else:
                now = _node_ref.check_now(now_ns)
        cdef Py_ssize_t bad = -1
        cdef int present = 0
        cdef int ifc = iface
        cdef bint w = from_wire, inn = inner, fin = finish_inner
        with nogil:
            present = self._core(b, arp, size, offp, lnp, stp, n, nst, drp, ndr, cnt, now, ifc, w, inn, fin,
                                 do_classify, &bad)
        if bad >= 0:
            raise ValueError(f"frame {bad}: offset {self._p_poff[bad]} + length {self._p_plen[bad]} runs past the arena "
                             f"({size} octets)")
        return present

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _core(self, Batch b, uint8_t* arp, Py_ssize_t size, const int64_t* offp, const uint32_t* lnp,
                   const uint32_t* stp, Py_ssize_t n, Py_ssize_t nst, uint64_t* drp, Py_ssize_t ndr, uint64_t* cnt,
                   int64_t now, int ifc, bint from_wire, bint inner, bint finish_inner, bint do_classify,
                   Py_ssize_t* bad_out) noexcept nogil:
        """One block through classify (``do_classify``) and the node, over C pointers the caller checked (the
        shapes; the frames' spans are checked here, on the node's own copy): returns the bit set of actions; a
        frame outside the arena stops it before anything is written, its index in ``bad_out`` (else -1)."""
        cdef Py_ssize_t i
        cdef Py_ssize_t bad = -1
        # the offsets and lengths are read once, into the node's own copy, checked there and used from there
        # only: a thread writing the caller's arrays meanwhile cannot move a checked frame
        cdef int64_t* poff = self._p_poff
        cdef uint32_t* plen = self._p_plen
        cdef uint8_t* act = self._p_act
        cdef int32_t* aux = self._p_aux
        cdef int64_t* ent = self._p_ent
        cdef int32_t* oif = self._p_oif
        cdef uint8_t* nhop = self._p_nhop
        cdef uint64_t* stats = self._p_stats
        cdef int32_t* routes = self._p_routes
        cdef uint8_t* rdst = self._p_rdst
        cdef int64_t* ridx = self._p_ridx
        cdef int32_t* rtmp = self._p_rtmp
        cdef Py_ssize_t nr, k
        cdef const _node_txring* txr = self._txr
        cdef int64_t* txq = self._p_txq
        cdef int64_t* tq = self._p_tq
        cdef const uint8_t* imac = self._p_imac
        cdef const uint8_t* peers = self._p_peers
        cdef bufq_t* bq = NULL if self._buf is None else &self._buf.q
        cdef int32_t* bkeys = self._p_bkeys
        cdef int64_t* boff = self._p_boff
        cdef uint32_t* blen = self._p_blen
        cdef int64_t* bidx = self._p_bidx
        cdef uint8_t* bst = self._p_bst
        cdef uint8_t* iact = self._p_iact
        cdef int32_t* iaux = self._p_iaux
        cdef int64_t* ient = self._p_ient
        cdef Py_ssize_t nb = 0, j
        cdef Py_ssize_t inner_len
        cdef uint8_t rst
        cdef int64_t* doffsets = self._p_doffsets
        cdef uint32_t* dlengths = self._p_dlengths
        cdef Py_ssize_t nd = 0
        cdef _node_run c
        c.t = &self._nc.t
        c.ft = &self._fib.t
        c.entries = c.t.capacity
        c.nroutes = self._nroutes
        c.nif = self.interfaces
        c.cap = self.capacity
        c.ekey_rows = self._ekey_rows
        c.ekey = self._p_ekey
        c.epeer = self._p_epeer
        c.imac = imac
        c.rif = self._p_rif
        c.rvia = self._p_rvia
        c.rhas = self._p_rhas
        c.txc = self._p_txc
        c.txo = self._p_txo
        c.txl = self._p_txl
        c.stats = stats
        c.tunnel_on = self._tunnel_on
        c.thlim = <uint8_t>self._tunnel_hlim
        c.tsrc = self._p_tsrc
        c.tmtu = self._p_tmtu
        c.mtu = self._p_mtu
        c.tpeers = self._p_tpeers
        c.ntpeers = self._ntpeers
        c.tarena = self._p_tarena
        c.tsize = self._tsize
        c.tcount = self._p_tcount
        c.toffsets = self._p_toffsets
        c.tlengths = self._p_tlengths
        c.cursor = 0
        c.last_peer = -1
        c.t_out = -1
        c.t_k = -1
        c.peer = NULL
        c.t_hop = NULL
        cdef nc_table* t = c.t
        cdef classify_out* o = &b._out
        cdef classify_out* io = &self._inner_batch._out
        cdef classify_profile* prof = &self._prof
        cdef Py_ssize_t npeers = self._npeers, nif = self.interfaces
        cdef Py_ssize_t entries = c.entries
        cdef bint wire = from_wire, is_inner = inner, finish = finish_inner
        cdef bint has_status = nst != 0
        cdef int present = 0, a, ia, out, verdict
        cdef int32_t x, ix
        cdef int64_t e, ie, at
        cdef Py_ssize_t l3, l4, length, p
        cdef uint8_t fl, nh
        cdef uint8_t* frame
        cdef const uint8_t* dst
        cdef const uint8_t* hop
        for i in range(n):
            poff[i] = offp[i]
            plen[i] = lnp[i]
            if _span_outside(poff[i], plen[i], <uint64_t>size):
                bad = i
                break
        if bad < 0 and do_classify:  # classify, over the same checked copy
            b._reset_lazy(n, prof.fmip_type)
            _classify_loop(arp, poff, plen, n, prof, &b._out)
        if bad < 0:
            stats[_NODE_STAT_DROPPED] = 0
            stats[_NODE_STAT_HELD] = 0
            stats[_NODE_STAT_CSUM] = 0
            stats[_NODE_STAT_FRAMES] = n
            stats[_NODE_STAT_BUFFERED] = 0
            stats[_NODE_STAT_DECAPPED] = 0
            for i in range(nif):
                c.txc[i] = 0
                c.tcount[i] = 0
            if n:
                nc_lookup_batch(t, o.dst, n, ent)
                # the FIB, in one batch, for the frames whose neighbor entry does not give the next hop (no
                # entry, or one being resolved that is not a tunnel's or a proxy's); the others' routes are
                # looked up only if they turn out to need one (_NODE_ROUTE_LATER)
                nr = 0
                for i in range(n):
                    e = ent[i]
                    routes[i] = _NODE_ROUTE_LATER
                    if (e < 0 or e >= entries or (t.states[e] == NCSTATE_INCOMPLETE
                                                  and not (t.flags[e] & (NCFLAG_TUNNEL | NCFLAG_PROXY)))):
                        memcpy(rdst + nr * ADDR_LEN, o.dst + i * ADDR_LEN, ADDR_LEN)
                        ridx[nr] = i
                        nr += 1
                if nr:
                    fib_lookup_batch(c.ft, rdst, nr, rtmp)
                    for j in range(nr):
                        routes[ridx[j]] = rtmp[j]
            for i in range(n):
                a = ACTION_DROP
                x = -1
                oif[i] = -1
                e = ent[i]
                if e >= entries:  # a table another writer changed under us: treat as no entry
                    e = -1
                    ent[i] = -1
                verdict = o.verdict[i]
                length = plen[i]
                l3 = o.l3_offset[i]
                l4 = o.l4_offset[i]
                nh = o.next_header[i]
                frame = arp + poff[i]
                dst = o.dst + i * ADDR_LEN
                if verdict == VERDICT_DROP:
                    x = o.drop_reason[i]
                elif l3 < ETH_HDR_LEN or l3 + IP6_HDR_LEN > length:
                    x = DROP_IP6_TRUNCATED
                elif wire and not (o.eth_dst[i * MAC48_LEN] & 1) and memcmp(o.eth_dst + i * MAC48_LEN,
                                                                           imac + ifc * MAC48_LEN, MAC48_LEN) != 0:
                    x = DROP_OTHER_HOST
                elif wire and not is_inner and l3 != ETH_HDR_LEN:  # VLAN tags: the links are untagged
                    x = DROP_VLAN_TAGGED
                else:
                    if has_status and (stp[i] & TP_STATUS_CSUMNOTREADY):
                        if _node_complete_checksum(frame, length, l3, l4, nh, o.src + i * ADDR_LEN, dst):
                            stats[_NODE_STAT_CSUM] += 1
                    fl = t.flags[e] if e >= 0 else 0
                    if verdict != VERDICT_FORWARD and verdict != VERDICT_DECAP:
                        a = ACTION_CONTROL
                    elif fl & NCFLAG_LOCAL:
                        if verdict != VERDICT_DECAP:
                            a = ACTION_CONTROL
                        else:
                            a = ACTION_DROP
                            x = DROP_DECAP_NOT_FROM_PEER
                            for p in range(npeers):
                                if memcmp(peers + p * ADDR_LEN, o.src + i * ADDR_LEN, ADDR_LEN) == 0:
                                    a = ACTION_DECAP
                                    x = -1
                                    break
                            if a == ACTION_DECAP:  # in place: the inner frame starts 14 octets before it
                                if l4 < l3 + IP6_HDR_LEN:  # not what classify passed
                                    rst = DROP_IP6_TRUNCATED
                                else:
                                    rst = rw_decap_check(frame, length, l3, l4, &inner_len)
                                if rst != DROP_NONE:
                                    a = ACTION_DROP
                                    x = rst
                                else:
                                    memset(frame + l4 - ETH_HDR_LEN, 0, 2 * MAC48_LEN)
                                    store_be16(frame + l4 - 2, ETYPE_IPV6)
                                    at = poff[i] + l4 - ETH_HDR_LEN
                                    ia = -1
                                    if finish:
                                        ia = _node_inner(&c, prof, io, i, frame + l4 - ETH_HDR_LEN, at,
                                                         ETH_HDR_LEN + inner_len, bq, &ix, &ie)
                                    if ia < 0:  # Python's pass finishes it
                                        doffsets[nd] = at
                                        dlengths[nd] = <uint32_t>(ETH_HDR_LEN + inner_len)
                                        nd += 1
                                    else:
                                        a = ACTION_DECAPPED
                                        stats[_NODE_STAT_DECAPPED] += 1
                                        if ia == ACTION_DROP:
                                            if ix < 0 or ix >= ndr:
                                                ix = DROP_INTERNAL_ERROR
                                            drp[ix] += 1
                                            stats[_NODE_STAT_DROPPED] += 1
                                            ie = -1
                                        elif ia == ACTION_BUFFERED:  # pushed with the block's, in block order
                                            bkeys[nb] = ix
                                            boff[nb] = at
                                            blen[nb] = <uint32_t>(ETH_HDR_LEN + inner_len)
                                            bidx[nb] = -1 - i
                                            nb += 1
                                        iact[i] = <uint8_t>ia
                                        iaux[i] = ix
                                        ient[i] = ie
                                        present |= 1 << ia
                    elif _node_not_forwarded(o.src + i * ADDR_LEN, dst):
                        x = DROP_ADDRESS_NOT_FORWARDED
                    elif wire and not is_inner and (o.eth_dst[i * MAC48_LEN] & 1):
                        x = DROP_LINK_MULTICAST_NOT_FORWARDED  # every router on the link would forward it
                    else:
                        a = _node_transit(&c, frame, poff[i], length, l3, dst, o.hop_limit[i], e, routes[i],
                                          wire and not is_inner and nh != NH_MH, &x, &out, &hop)
                        if a == ACTION_FORWARD or a == ACTION_RESOLVE:
                            oif[i] = out
                            memcpy(nhop + i * ADDR_LEN, hop, ADDR_LEN)
                        elif a == ACTION_BUFFER and bq != NULL:
                            a = _node_buffered(bq, &x)
                            if a == ACTION_BUFFERED:
                                bkeys[nb] = x
                                boff[nb] = poff[i]
                                blen[nb] = <uint32_t>length
                                bidx[nb] = i
                                nb += 1
                if a == ACTION_DROP:
                    if x < 0 or x >= ndr:  # a reason outside DropReason: not classify's output
                        x = DROP_INTERNAL_ERROR
                    drp[x] += 1
                    stats[_NODE_STAT_DROPPED] += 1
                act[i] = <uint8_t>a
                aux[i] = x
                present |= 1 << a
            if nb:
                # one push for the block, in block order; what the buffer refused (or evicted again within
                # this push) is a drop by its status (of the inner packet, for a DECAPPED frame's: bidx < 0)
                bufq_push(bq, bkeys, arp, boff, blen, nb, now, bst)
                present = 0
                for j in range(nb):
                    x = bst[j]
                    if x == DROP_NONE:
                        stats[_NODE_STAT_BUFFERED] += 1
                    else:
                        if x >= ndr:
                            x = DROP_INTERNAL_ERROR
                        if bidx[j] >= 0:
                            act[bidx[j]] = ACTION_DROP
                            aux[bidx[j]] = x
                        else:
                            iact[-1 - bidx[j]] = ACTION_DROP
                            iaux[-1 - bidx[j]] = x
                            ient[-1 - bidx[j]] = -1
                        drp[x] += 1
                        stats[_NODE_STAT_DROPPED] += 1
                for i in range(n):
                    present |= 1 << act[i]
                    if act[i] == ACTION_DECAPPED:
                        present |= 1 << iact[i]
            # the TX vectors straight into the interfaces' TX rings, the tunnel's first (as they are sent),
            # when the block leaves Python nothing to send before them
            for k in range(nif):
                txq[k] = 0
                tq[k] = 0
                if txr[k].base != NULL and not (present & _NODE_PYTHON_FIRST):
                    if c.tcount[k]:
                        tq[k] = _node_fill(&txr[k], c.tarena, c.toffsets + k * c.cap, c.tlengths + k * c.cap,
                                           c.tcount[k])
                    if c.txc[k]:
                        txq[k] = _node_fill(&txr[k], arp, c.txo + k * c.cap, c.txl + k * c.cap, c.txc[k])
        bad_out[0] = bad
        if bad >= 0:
            return 0
        self._dcount = nd
        if cnt != NULL:  # as the reference's book()
            cnt[ENGCTR_RECEIVED] += stats[_NODE_STAT_FRAMES] + stats[_NODE_STAT_DECAPPED]
            cnt[ENGCTR_RECEIVED_INNER] += (stats[_NODE_STAT_FRAMES] if is_inner else 0) + stats[_NODE_STAT_DECAPPED]
            cnt[ENGCTR_DECAPSULATED] += stats[_NODE_STAT_DECAPPED]
            cnt[ENGCTR_DROPPED] += stats[_NODE_STAT_DROPPED]
            cnt[ENGCTR_REORDER_HELD] += stats[_NODE_STAT_HELD]
            cnt[ENGCTR_CSUM_COMPLETED] += stats[_NODE_STAT_CSUM]
            cnt[ENGCTR_BUFFERED] += stats[_NODE_STAT_BUFFERED]
        return present


def _node_stats():
    """Where node.pxi writes each stat (tests/test_node.py checks it against constants.NODE_STATS)."""
    return {"dropped": _NODE_STAT_DROPPED, "reorder_held": _NODE_STAT_HELD, "csum_completed": _NODE_STAT_CSUM,
            "frames": _NODE_STAT_FRAMES, "buffered": _NODE_STAT_BUFFERED, "decapped": _NODE_STAT_DECAPPED,
            "count": _NODE_NSTATS}


__all__ += ["Node"]
