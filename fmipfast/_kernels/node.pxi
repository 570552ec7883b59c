# node: the forwarding node.  One nogil call per block takes the frames classify judged through the neighbor
# cache, the FIB and the handover columns to their action, rewrites what is forwarded in place and fills one
# TX vector per output interface; Python sees only the frames punted to it (control, resolution, ICMPv6
# errors) and the handover classes it hands to their kernels (buffer, tunnel, decapsulation).
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
#     nested pass.

from libc.string cimport memcmp

import fmipfast.reference.node as _node_ref

cdef enum:
    _NODE_STAT_DROPPED = 0
    _NODE_STAT_HELD = 1
    _NODE_STAT_CSUM = 2
    _NODE_STAT_FRAMES = 3
    _NODE_NSTATS = 4
    _NODE_CSUMNOTREADY = 1 << 3      # TP_STATUS_CSUMNOTREADY (linux/if_packet.h)


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


cdef class Node:
    """The forwarding node: see fmipfast/reference/node.py, whose ``Node`` this is, output for output.

    Reference: fmipfast.reference.node.Node
    """

    cdef NeighborCache _nc
    cdef Fib _fib
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t interfaces
    cdef readonly object entry_key, entry_peer, iface_mac
    cdef readonly object action, aux, entry, out_if, next_hop, tx_count, tx_offsets, tx_lengths, stats
    cdef object _route_if, _route_via, _route_has_via, _peers, _routes_scratch
    cdef public object last_drops
    cdef Py_ssize_t _nroutes, _npeers

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
        self.iface_mac = _np.zeros((interfaces, MAC48_LEN), dtype=_np.uint8)
        self.action = _np.zeros(capacity, dtype=_np.uint8)
        self.aux = _np.full(capacity, -1, dtype=_np.int32)
        self.entry = _np.full(capacity, -1, dtype=_np.int64)
        self.out_if = _np.full(capacity, -1, dtype=_np.int32)
        self.next_hop = _np.zeros((capacity, ADDR_LEN), dtype=_np.uint8)
        self.tx_count = _np.zeros(interfaces, dtype=_np.int64)
        self.tx_offsets = _np.zeros((interfaces, capacity), dtype=_np.int64)
        self.tx_lengths = _np.zeros((interfaces, capacity), dtype=_np.uint32)
        self.stats = _np.zeros(_NODE_NSTATS, dtype=_np.uint64)
        self._routes_scratch = _np.zeros(capacity, dtype=_np.int32)
        self._route_if = _np.zeros(1, dtype=_np.int32)
        self._route_via = _np.zeros((1, ADDR_LEN), dtype=_np.uint8)
        self._route_has_via = _np.zeros(1, dtype=_np.uint8)
        self._peers = _np.zeros((1, ADDR_LEN), dtype=_np.uint8)
        self._nroutes = 0
        self._npeers = 0
        self._fib = None
        self.last_drops = None

    @property
    def ncache(self):
        return self._nc

    def set_interfaces(self, macs):
        """The MAC of each output interface, ``uint8[interfaces, 6]``."""
        m = _node_ref._array(macs, "macs", _np.uint8, (MAC48_LEN,))
        if m.shape[0] != self.interfaces:
            raise ValueError(f"macs: need {self.interfaces} rows, got {m.shape[0]}")
        self.iface_mac[:] = m

    def set_routes(self, fib, route_if, route_via, route_has_via):
        """The FIB and its columns (see the reference)."""
        if not isinstance(fib, Fib):
            raise TypeError(f"fib: need fmipfast._core.Fib, got {type(fib).__name__}")
        ri, rv, rh = _node_ref.check_tables(fib, route_if, route_via, route_has_via, self.interfaces)
        n = ri.shape[0]
        # one spare row so every column has a first element; _nroutes bounds what a lookup may index
        self._route_if = _np.concatenate([ri, _np.zeros(1, dtype=_np.int32)])
        self._route_via = _np.concatenate([rv, _np.zeros((1, ADDR_LEN), dtype=_np.uint8)])
        self._route_has_via = _np.concatenate([rh, _np.zeros(1, dtype=_np.uint8)])
        self._nroutes = n
        self._fib = fib

    def set_peers(self, peers):
        """The routers whose IPv6-in-IPv6 packets are decapsulated, ``uint8[p, 16]``."""
        p = _node_ref._array(peers, "peers", _np.uint8, (ADDR_LEN,))
        self._peers = _np.concatenate([p, _np.zeros((1, ADDR_LEN), dtype=_np.uint8)])
        self._npeers = p.shape[0]

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, batch, arena, offsets, lengths, status, iface, *, from_wire=True, inner=False, drops=None):
        """See the reference: decide and act on one classified block; returns the bit set of actions."""
        cdef uint8_t[::1] ar
        cdef const int64_t[::1] off
        cdef const uint32_t[::1] ln
        cdef const uint32_t[::1] st
        cdef uint64_t[::1] dr
        cdef Batch b
        cdef bint ok = False
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        # fast path: take the buffers as they are; on any doubt the shared checks raise the shared message
        try:
            if isinstance(batch, Batch) and (drops is None or isinstance(drops, _np.ndarray)):
                b = batch
                ar = arena
                off = offsets
                ln = lengths
                st = status
                if drops is not None:
                    dr = drops
                ok = (ln.shape[0] == off.shape[0] and (st.shape[0] == 0 or st.shape[0] == off.shape[0])
                      and off.shape[0] <= self.capacity and off.shape[0] <= b.n
                      and (drops is None or dr.shape[0] >= _N_REASONS)
                      and not isinstance(iface, bool) and 0 <= iface < self.interfaces)
        except (TypeError, ValueError, BufferError):
            ok = False
        if not ok:
            if not isinstance(batch, Batch):
                raise TypeError(f"batch: need fmipfast._core.Batch, got {type(batch).__name__}")
            _node_ref.check_run(batch, arena, offsets, lengths, status, iface, drops, self.capacity,
                                self.interfaces)
            raise SystemError("fmipfast._core.Node.run: argument refused by the fast path only")
        if drops is None:
            drops = _np.zeros(_N_REASONS, dtype=_np.uint64)
            dr = drops
            self.last_drops = drops
        cdef Py_ssize_t n = off.shape[0], size = ar.shape[0], i
        cdef int ifc = iface
        cdef Py_ssize_t bad = -1
        with nogil:
            for i in range(n):
                if _span_outside(off[i], ln[i], <uint64_t>size):
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"frame {bad}: offset {off[bad]} + length {ln[bad]} runs past the arena ({size} octets)")
        cdef uint8_t[::1] act = self.action
        cdef int32_t[::1] aux = self.aux
        cdef int64_t[::1] ent = self.entry
        cdef int32_t[::1] oif = self.out_if
        cdef uint8_t[:, ::1] nhop = self.next_hop
        cdef int64_t[::1] txc = self.tx_count
        cdef int64_t[:, ::1] txo = self.tx_offsets
        cdef uint32_t[:, ::1] txl = self.tx_lengths
        cdef uint64_t[::1] stats = self.stats
        cdef int32_t[::1] routes = self._routes_scratch
        cdef const int32_t[::1] ekey = self.entry_key
        cdef const int32_t[::1] epeer = self.entry_peer
        cdef const uint8_t[:, ::1] imac = self.iface_mac
        cdef const int32_t[::1] rif = self._route_if
        cdef const uint8_t[:, ::1] rvia = self._route_via
        cdef const uint8_t[::1] rhas = self._route_has_via
        cdef const uint8_t[:, ::1] peers = self._peers
        cdef nc_table* t = &self._nc.t
        cdef const fib_table* ft = &self._fib.t
        cdef classify_out* o = &b._out
        cdef Py_ssize_t nroutes = self._nroutes, npeers = self._npeers, nif = self.interfaces
        cdef Py_ssize_t entries = t.capacity, cap = self.capacity
        cdef Py_ssize_t ekey_rows = ekey.shape[0], ndr = dr.shape[0]
        cdef bint wire = from_wire, is_inner = inner
        cdef bint has_status = st.shape[0] != 0
        cdef int present = 0, a, out, verdict
        cdef int32_t x, r
        cdef int64_t e, k, c
        cdef Py_ssize_t l3, l4, length, p
        cdef uint8_t fl, nh
        cdef uint8_t* frame
        cdef const uint8_t* dst
        cdef const uint8_t* hop
        with nogil:
            stats[_NODE_STAT_DROPPED] = 0
            stats[_NODE_STAT_HELD] = 0
            stats[_NODE_STAT_CSUM] = 0
            stats[_NODE_STAT_FRAMES] = n
            for i in range(nif):
                txc[i] = 0
            if n:
                nc_lookup_batch(t, o.dst, n, &ent[0])
                fib_lookup_batch(ft, o.dst, n, &routes[0])
            for i in range(n):
                a = ACTION_DROP
                x = -1
                oif[i] = -1
                e = ent[i]
                if e >= entries:  # a table another writer changed under us: treat as no entry
                    e = -1
                    ent[i] = -1
                verdict = o.verdict[i]
                length = ln[i]
                l3 = o.l3_offset[i]
                l4 = o.l4_offset[i]
                nh = o.next_header[i]
                frame = &ar[0] + off[i]
                dst = o.dst + i * ADDR_LEN
                if verdict == VERDICT_DROP:
                    x = o.drop_reason[i]
                elif l3 < ETH_HDR_LEN or l3 + IP6_HDR_LEN > length:
                    x = DROP_IP6_TRUNCATED
                elif wire and not (o.eth_dst[i * MAC48_LEN] & 1) and memcmp(o.eth_dst + i * MAC48_LEN,
                                                                           &imac[ifc, 0], MAC48_LEN) != 0:
                    x = DROP_OTHER_HOST
                else:
                    if has_status and (st[i] & _NODE_CSUMNOTREADY):
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
                                if memcmp(&peers[p, 0], o.src + i * ADDR_LEN, ADDR_LEN) == 0:
                                    a = ACTION_DECAP
                                    x = -1
                                    break
                    elif fl & NCFLAG_TUNNEL:
                        a = ACTION_TUNNEL
                        x = epeer[e] if e < ekey_rows else -1
                    elif fl & NCFLAG_PROXY:
                        a = ACTION_BUFFER
                        x = ekey[e] if e < ekey_rows else -1
                    elif (fl & NCFLAG_HOLD) and wire and not is_inner and nh != NH_MH:
                        a = ACTION_BUFFER
                        x = ekey[e] if e < ekey_rows else -1
                        stats[_NODE_STAT_HELD] += 1
                    else:
                        r = routes[i]
                        out = -1
                        hop = dst
                        if e >= 0 and t.states[e] != NCSTATE_INCOMPLETE:
                            out = <int>t.ifindex[e] if t.ifindex[e] < <uint32_t>nif else -1
                        elif 0 <= r < nroutes:
                            out = rif[r]
                            if rhas[r]:
                                hop = &rvia[r, 0]
                        if out < 0 or out >= nif:
                            a = ACTION_NO_ROUTE
                        elif o.hop_limit[i] <= 1:
                            a = ACTION_TIME_EXCEEDED
                        else:
                            oif[i] = out
                            memcpy(&nhop[i, 0], hop, ADDR_LEN)
                            if hop == dst and e >= 0:  # on-link: the destination's own entry
                                k = e
                            else:
                                nc_lookup_batch(t, hop, 1, &k)
                                if k >= entries:
                                    k = -1
                            if k < 0 or t.states[k] == NCSTATE_INCOMPLETE:
                                a = ACTION_RESOLVE
                            else:
                                a = ACTION_FORWARD
                                memcpy(frame, t.macs + k * MAC48_LEN, MAC48_LEN)
                                memcpy(frame + MAC48_LEN, &imac[out, 0], MAC48_LEN)
                                frame[l3 + 7] -= 1
                                c = txc[out]
                                txo[out, c] = off[i]
                                txl[out, c] = <uint32_t>length
                                txc[out] = c + 1
                if a == ACTION_DROP:
                    if x < 0 or x >= ndr:  # a reason outside DropReason: not classify's output
                        x = DROP_INTERNAL_ERROR
                    dr[x] += 1
                    stats[_NODE_STAT_DROPPED] += 1
                act[i] = <uint8_t>a
                aux[i] = x
                present |= 1 << a
        return present


def _node_consts():
    """The enum constants node.pxi compiles against (tests/test_core_consts.py checks them)."""
    return {
        "ACTION_DROP": ACTION_DROP, "ACTION_FORWARD": ACTION_FORWARD, "ACTION_TUNNEL": ACTION_TUNNEL,
        "ACTION_DECAP": ACTION_DECAP, "ACTION_BUFFER": ACTION_BUFFER, "ACTION_CONTROL": ACTION_CONTROL,
        "ACTION_RESOLVE": ACTION_RESOLVE, "ACTION_NO_ROUTE": ACTION_NO_ROUTE,
        "ACTION_TIME_EXCEEDED": ACTION_TIME_EXCEEDED,
        "NCFLAG_ROUTER": NCFLAG_ROUTER, "NCFLAG_PROXY": NCFLAG_PROXY, "NCFLAG_LOCAL": NCFLAG_LOCAL,
        "NCFLAG_TUNNEL": NCFLAG_TUNNEL, "NCFLAG_STATIC": NCFLAG_STATIC, "NCFLAG_HOLD": NCFLAG_HOLD,
        "NCSTATE_NONE": NCSTATE_NONE, "NCSTATE_INCOMPLETE": NCSTATE_INCOMPLETE,
        "NCSTATE_REACHABLE": NCSTATE_REACHABLE, "NCSTATE_STALE": NCSTATE_STALE, "NCSTATE_DELAY": NCSTATE_DELAY,
        "NCSTATE_PROBE": NCSTATE_PROBE,
    }


__all__ += ["Node"]
