# PacketBuffer: bounded per-key FIFO queues of frames in one preallocated arena (included by _core.pyx).
#
# docs/design.md §1 step 5 / §5 "Buffers"; drop policy RFC 4861 §7.2.2 (queue while resolving, drop the oldest),
# the shape of Linux __neigh_event_send on arp_queue: bounded per entry, every drop counted.
# Oracle: fmipfast/reference/bufq.py (the module docstring there states the policy in full).
#
# Ownership/threading: single writer (docs/conventions.md §3).  A PacketBuffer belongs to the engine thread;
# every method runs its kernel under one `with nogil:` so other threads (other workers' kernels) run
# meanwhile, but two threads must never call one PacketBuffer at the same time.  No clock is read: time
# comes in as now_ns (docs/conventions.md §2).
#
# Layout (numpy structure-of-arrays, allocated once, never resized): slot s holds slot_len[s] octets at
# arena + s * slot_size; slot_next chains each key's queue (key_head -> ... -> key_tail) and the free list.
# Also here: the batch-argument helpers _bq_* that rewrite.pxi shares (worded as reference/bufq.py).

from libc.stdint cimport INT32_MAX, INT64_MAX, int32_t, int64_t, uint64_t
from fmipfast.includes.wire cimport ETH_HDR_LEN, IP6_HDR_LEN

import numpy as _np


_BQ_COUNTERS = ("pushed", "queued", "queued_bytes", "flushed", "dropped_oldest", "refused_global",
                "dropped_too_big", "dropped_expired", "dropped_by_drop")


# ---- kernels ---------------------------------------------------------------------------------------------

cdef inline void _bq_free_slot(bufq_t* q, int32_t s) noexcept nogil:
    q.slot_next[s] = q.free_head
    q.free_head = s


cdef inline void _bq_evict_oldest(bufq_t* q, int32_t k, uint8_t* status, int64_t seq0) noexcept nogil:
    """Drop key k's oldest frame (RFC 4861 §7.2.2); a frame of this call reports BUFFER_FULL."""
    cdef int32_t s = q.key_head[k]
    if FMIPFAST_DEBUG:
        FMIPFAST_ASSERT(s >= 0)
    q.key_head[k] = q.slot_next[s]
    if q.key_head[k] == BQ_NIL:
        q.key_tail[k] = BQ_NIL
    q.key_count[k] -= 1
    q.key_bytes[k] -= q.slot_len[s]
    q.held -= 1
    q.held_bytes -= q.slot_len[s]
    q.dropped_oldest += 1
    if status != NULL and q.slot_seq[s] >= seq0:
        status[q.slot_seq[s] - seq0] = DROP_BUFFER_FULL
    _bq_free_slot(q, s)


cdef int bufq_push(bufq_t* q, const int32_t* keys, const uint8_t* arena, const int64_t* offsets,
                   const uint32_t* lengths, Py_ssize_t n, int64_t now_ns, uint8_t* status) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t k, s
    cdef int64_t length
    cdef int64_t seq0 = q.seq
    q.seq += n
    for i in range(n):
        status[i] = DROP_NONE
    for i in range(n):
        k = keys[i]
        length = lengths[i]
        if FMIPFAST_DEBUG:
            FMIPFAST_ASSERT(0 <= k and k < q.max_keys)
        q.pushed += 1
        if length > q.slot_size or length > q.per_key_bytes:
            status[i] = DROP_FRAME_TOO_BIG  # could never be queued
            q.dropped_too_big += 1
            continue
        # Per-key caps: drop this key's oldest until the new frame fits (RFC 4861 §7.2.2).
        while q.key_count[k] > 0 and (q.key_count[k] >= q.per_key_packets
                                      or q.key_bytes[k] + length > q.per_key_bytes):
            _bq_evict_oldest(q, k, status, seq0)
        # Global cap: take this key's own oldest slot, never another key's.
        if q.free_head == BQ_NIL:
            if q.key_count[k] > 0:
                _bq_evict_oldest(q, k, status, seq0)
            else:
                status[i] = DROP_BUFFER_FULL
                q.refused_global += 1
                continue
        s = q.free_head
        q.free_head = q.slot_next[s]
        memcpy(q.arena + s * q.slot_size, arena + offsets[i], <size_t>length)
        q.slot_len[s] = <uint32_t>length
        q.slot_ts[s] = now_ns
        q.slot_seq[s] = seq0 + i
        q.slot_next[s] = BQ_NIL
        if q.key_tail[k] == BQ_NIL:
            q.key_head[k] = s
        else:
            q.slot_next[q.key_tail[k]] = s
        q.key_tail[k] = s
        q.key_count[k] += 1
        q.key_bytes[k] += length
        q.held += 1
        q.held_bytes += length
    return ST_OK


cdef Py_ssize_t bufq_flush(bufq_t* q, int32_t key, int64_t now_ns, uint8_t* out, int64_t* out_offsets,
                           uint32_t* out_lengths) noexcept nogil:
    cdef int32_t s = q.key_head[key], nxt
    cdef Py_ssize_t k = 0
    cdef int64_t used = 0
    while s != BQ_NIL:
        nxt = q.slot_next[s]
        if now_ns - q.slot_ts[s] > q.lifetime_ns:
            q.dropped_expired += 1
        else:
            memcpy(out + used, q.arena + s * q.slot_size, q.slot_len[s])
            out_offsets[k] = used
            out_lengths[k] = q.slot_len[s]
            used += q.slot_len[s]
            k += 1
            q.flushed += 1
        _bq_free_slot(q, s)
        s = nxt
    q.held -= q.key_count[key]
    q.held_bytes -= q.key_bytes[key]
    q.key_head[key] = BQ_NIL
    q.key_tail[key] = BQ_NIL
    q.key_count[key] = 0
    q.key_bytes[key] = 0
    return k


cdef Py_ssize_t bufq_drop(bufq_t* q, int32_t key) noexcept nogil:
    cdef int32_t s = q.key_head[key], nxt
    cdef Py_ssize_t n = q.key_count[key]
    while s != BQ_NIL:
        nxt = q.slot_next[s]
        _bq_free_slot(q, s)
        s = nxt
    q.held -= n
    q.held_bytes -= q.key_bytes[key]
    q.dropped_by_drop += n
    q.key_head[key] = BQ_NIL
    q.key_tail[key] = BQ_NIL
    q.key_count[key] = 0
    q.key_bytes[key] = 0
    return n


cdef Py_ssize_t bufq_expire(bufq_t* q, int64_t now_ns) noexcept nogil:
    cdef int32_t k, s, nxt, prev
    cdef Py_ssize_t total = 0
    for k in range(<int32_t>q.max_keys):
        s = q.key_head[k]
        prev = BQ_NIL
        while s != BQ_NIL:
            nxt = q.slot_next[s]
            if now_ns - q.slot_ts[s] > q.lifetime_ns:
                # Unlink s (any position: push times need not be monotonic across calls).
                if prev == BQ_NIL:
                    q.key_head[k] = nxt
                else:
                    q.slot_next[prev] = nxt
                if q.key_tail[k] == s:
                    q.key_tail[k] = prev
                q.key_count[k] -= 1
                q.key_bytes[k] -= q.slot_len[s]
                q.held -= 1
                q.held_bytes -= q.slot_len[s]
                total += 1
                _bq_free_slot(q, s)
            else:
                prev = s
            s = nxt
    q.dropped_expired += total
    return total


# ---- argument helpers (shared with rewrite.pxi; messages word for word those of reference/bufq.py) ----

cdef object _bq_array(object obj, str name, object dtype, object ndim=1, bint writable=False, bint copy=False):
    """``obj`` as a numpy array of exactly ``dtype`` / ``ndim`` (reference.bufq.as_array).

    ``copy``: return a private C-contiguous copy (taken once) instead of a view of the caller's memory.  Every
    index-like argument a kernel validates (offsets, lengths, l3/l4 offsets, sel, keys) is taken this way, so
    the values checked are the values used even while another thread writes the caller's array.
    """
    want = _np.dtype(dtype)
    if obj is None:
        raise TypeError(f"{name}: need a numpy {want} array, got None")
    if isinstance(obj, _np.ndarray):
        arr = obj
    elif want == _np.uint8:
        try:
            arr = _np.frombuffer(obj, dtype=_np.uint8)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}: need a bytes-like object or a numpy uint8 array, got {type(obj).__name__}"
            ) from None
    else:
        arr = _np.asarray(obj)
    if arr.dtype != want:
        raise TypeError(f"{name}: need dtype {want}, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: need a {ndim}-D array, got shape {arr.shape}")
    if writable:
        if not arr.flags.writeable:
            raise TypeError(f"{name}: read-only array; this kernel writes in place")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{name}: must be C-contiguous; this kernel writes in place")
        return arr
    if copy:
        return _np.array(arr, order="C", copy=True)
    return _np.ascontiguousarray(arr)


cdef inline int _bq_count(object arr, str name, Py_ssize_t n, str other) except -1:
    if arr.shape[0] != n:
        raise ValueError(f"{name}: {arr.shape[0]} entries, {other} has {n}")
    return 0


cdef int64_t _bq_int(object value, str name, int64_t low, int64_t high) except? -1:
    value = _index(value)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} outside {low}..{high}")
    return value


cdef Py_ssize_t _bq_bad_frame(Py_ssize_t size, const int64_t* offsets, const uint32_t* lengths,
                              Py_ssize_t n) noexcept nogil:
    """Index of the first of the n frames that is not inside an arena of ``size`` octets, or -1.

    Overflow-proof (_span_outside: negative offsets first, no addition).  ``offsets`` and ``lengths`` must be
    the wrapper's private copies: the kernel then uses exactly the values checked here.
    """
    cdef Py_ssize_t i
    for i in range(n):
        if _span_outside(offsets[i], lengths[i], <uint64_t>size):
            return i
    return -1


cdef int _bq_raise_bad_frame(Py_ssize_t i, Py_ssize_t size, const int64_t[::1] offsets,
                             const uint32_t[::1] lengths) except -1:
    raise ValueError(f"frame {i}: offset {offsets[i]} + length {lengths[i]} runs past the {size}-octet arena")


# ---- the cdef class ---------------------------------------------------------------------------------------

@cython.embedsignature(False)  # the docstring carries the CPython text signature itself (inspect.signature)
cdef class PacketBuffer:
    """PacketBuffer(*, slots=4096, slot_size=2048, max_keys=1024, per_key_packets=64, per_key_bytes=65536, lifetime_ns=3000000000)
--

    Bounded per-key FIFO queues of frames in one preallocated arena (docs/design.md §5 "Buffers").

    Keys are ``0 .. max_keys - 1`` (one per MN mid-handover); all parameters are keyword-only.

    Bounds, each counted: a frame longer than ``slot_size`` (or ``per_key_bytes``) is refused
    (FRAME_TOO_BIG, ``dropped_too_big``); a key at its packet or byte cap drops its OLDEST frame and queues
    the new one (RFC 4861 §7.2.2; ``dropped_oldest``, reason BUFFER_FULL); with no free slot the key's own
    oldest frame makes room, or, if the key holds none, the new frame is refused (BUFFER_FULL,
    ``refused_global``); frames older than ``lifetime_ns`` are dropped at ``flush``/``expire``
    (BUFFER_EXPIRED, ``dropped_expired``); ``drop(key)`` counts ``dropped_by_drop``.  Conservation:
    ``pushed == queued + flushed + dropped_oldest + refused_global + dropped_too_big + dropped_expired +
    dropped_by_drop``.

    Single writer: one thread per PacketBuffer.  Each call runs its kernel without the GIL.

    Reference: fmipfast.reference.bufq.PacketBuffer
    """

    def __init__(self, *, slots=4096, slot_size=2048, max_keys=1024, per_key_packets=64, per_key_bytes=65536,
                 lifetime_ns=3_000_000_000):
        cdef int64_t n_slots = _bq_int(slots, "slots", 1, INT32_MAX)
        cdef int64_t size = _bq_int(slot_size, "slot_size", 1, UINT32_MAX)
        cdef int64_t n_keys = _bq_int(max_keys, "max_keys", 1, INT32_MAX)
        cdef int64_t kp = _bq_int(per_key_packets, "per_key_packets", 1, INT32_MAX)
        cdef int64_t kb = _bq_int(per_key_bytes, "per_key_bytes", 1, INT64_MAX)
        cdef int64_t life = _bq_int(lifetime_ns, "lifetime_ns", 0, INT64_MAX)
        arena = _np.zeros(n_slots * size, dtype=_np.uint8)  # MemoryError if it cannot be had
        slot_len = _np.zeros(n_slots, dtype=_np.uint32)
        slot_ts = _np.zeros(n_slots, dtype=_np.int64)
        slot_seq = _np.zeros(n_slots, dtype=_np.int64)
        slot_next = _np.arange(1, n_slots + 1, dtype=_np.int32)  # free list 0 -> 1 -> ... -> slots-1
        slot_next[n_slots - 1] = BQ_NIL
        key_head = _np.full(n_keys, BQ_NIL, dtype=_np.int32)
        key_tail = _np.full(n_keys, BQ_NIL, dtype=_np.int32)
        key_count = _np.zeros(n_keys, dtype=_np.int32)
        key_bytes = _np.zeros(n_keys, dtype=_np.int64)
        self._arrays = (arena, slot_len, slot_ts, slot_seq, slot_next, key_head, key_tail, key_count, key_bytes)
        cdef uint8_t[::1] a = arena
        cdef uint32_t[::1] sl = slot_len
        cdef int64_t[::1] st = slot_ts
        cdef int64_t[::1] sq = slot_seq
        cdef int32_t[::1] sn = slot_next
        cdef int32_t[::1] kh = key_head
        cdef int32_t[::1] kt = key_tail
        cdef int32_t[::1] kc = key_count
        cdef int64_t[::1] kby = key_bytes
        memset(&self.q, 0, sizeof(bufq_t))
        self.q.arena = &a[0]
        self.q.slot_len = &sl[0]
        self.q.slot_ts = &st[0]
        self.q.slot_seq = &sq[0]
        self.q.slot_next = &sn[0]
        self.q.key_head = &kh[0]
        self.q.key_tail = &kt[0]
        self.q.key_count = &kc[0]
        self.q.key_bytes = &kby[0]
        self.q.free_head = 0
        self.q.slots = n_slots
        self.q.slot_size = size
        self.q.max_keys = n_keys
        self.q.per_key_packets = kp
        self.q.per_key_bytes = kb
        self.q.lifetime_ns = life

    @property
    def slots(self):
        return self.q.slots

    @property
    def slot_size(self):
        return self.q.slot_size

    @property
    def max_keys(self):
        return self.q.max_keys

    @property
    def per_key_packets(self):
        return self.q.per_key_packets

    @property
    def per_key_bytes(self):
        return self.q.per_key_bytes

    @property
    def lifetime_ns(self):
        return self.q.lifetime_ns

    cdef int32_t _key(self, object key) except? -1:
        key = _index(key)
        if not 0 <= key < self.q.max_keys:
            raise ValueError(f"key {key} outside 0..{self.q.max_keys - 1}")
        return key

    def queued(self, key):
        """Frames held for ``key``."""
        return self.q.key_count[self._key(key)]

    def queued_bytes(self, key):
        """Octets held for ``key``."""
        return self.q.key_bytes[self._key(key)]

    def __len__(self):
        return self.q.held

    @property
    def counters(self):
        """Counters since creation (``queued``, ``queued_bytes``: held now); see the class docstring."""
        return {
            "pushed": self.q.pushed,
            "queued": self.q.held,
            "queued_bytes": self.q.held_bytes,
            "flushed": self.q.flushed,
            "dropped_oldest": self.q.dropped_oldest,
            "refused_global": self.q.refused_global,
            "dropped_too_big": self.q.dropped_too_big,
            "dropped_expired": self.q.dropped_expired,
            "dropped_by_drop": self.q.dropped_by_drop,
        }

    def push(self, keys, arena, offsets, lengths, now_ns):
        """Queue frame ``i`` (``arena[offsets[i]:offsets[i] + lengths[i]]``) under ``keys[i]``, in order.

        Parameters
        ----------
        keys : int32[n], each in 0..max_keys-1
        arena : uint8 (any bytes-like), offsets : int64[n], lengths : uint32[n]
        now_ns : int >= 0, the arrival time stamped on the queued frames

        Returns
        -------
        uint8[n]
            0 if the frame is held when push returns, else its DropReason: FRAME_TOO_BIG, or BUFFER_FULL
            (refused for want of a slot, or queued and then evicted by a later frame of this call).

        Raises
        ------
        TypeError, ValueError
            Wrong dtype / shape (naming the argument), a frame outside the arena or a key out of range
            (naming the index); nothing is queued then.

        Reference: fmipfast.reference.bufq.PacketBuffer.push
        """
        # Private copies of keys, offsets and lengths: checked, then used, without reading the caller's
        # arrays again (another thread may be writing them).
        keys_a = _bq_array(keys, "keys", _np.int32, 1, False, True)
        arena_a = _bq_array(arena, "arena", _np.uint8)
        offsets_a = _bq_array(offsets, "offsets", _np.int64, 1, False, True)
        lengths_a = _bq_array(lengths, "lengths", _np.uint32, 1, False, True)
        cdef Py_ssize_t n = offsets_a.shape[0]
        _bq_count(lengths_a, "lengths", n, "offsets")
        _bq_count(keys_a, "keys", n, "offsets")
        cdef int64_t now = _bq_int(now_ns, "now_ns", 0, INT64_MAX)
        cdef const uint8_t[::1] ar = arena_a
        cdef const int64_t[::1] off = offsets_a
        cdef const uint32_t[::1] ln = lengths_a
        cdef const int32_t[::1] ks = keys_a
        cdef Py_ssize_t size = ar.shape[0]
        cdef const uint8_t* ap = _data(ar)
        status = _np.zeros(n, dtype=_np.uint8)
        if n == 0:
            return status
        cdef uint8_t[::1] st = status
        cdef Py_ssize_t bad = -1, badkey = -1
        with nogil:
            bad = _bq_bad_frame(size, &off[0], &ln[0], n)
            if bad < 0:
                badkey = _bq_bad_key(&ks[0], n, self.q.max_keys)
            if bad < 0 and badkey < 0:
                bufq_push(&self.q, &ks[0], ap, &off[0], &ln[0], n, now, &st[0])
        if bad >= 0:
            _bq_raise_bad_frame(bad, size, off, ln)
        if badkey >= 0:
            raise ValueError(f"keys[{badkey}]: key {ks[badkey]} outside 0..{self.q.max_keys - 1}")
        return status

    def flush(self, key, now_ns):
        """Empty ``key``'s queue: its unexpired frames as a packed batch in arrival order.

        Returns
        -------
        (arena uint8[m], offsets int64[k], lengths uint32[k])
            A copy; frames older than lifetime_ns are dropped (BUFFER_EXPIRED) instead of returned.

        Reference: fmipfast.reference.bufq.PacketBuffer.flush
        """
        cdef int32_t k = self._key(key)
        cdef int64_t now = _bq_int(now_ns, "now_ns", 0, INT64_MAX)
        cdef Py_ssize_t count = self.q.key_count[k]
        out = _np.empty(self.q.key_bytes[k], dtype=_np.uint8)
        out_offsets = _np.empty(count, dtype=_np.int64)
        out_lengths = _np.empty(count, dtype=_np.uint32)
        if count == 0:
            return out, out_offsets, out_lengths
        cdef uint8_t[::1] o = out
        cdef int64_t[::1] oo = out_offsets
        cdef uint32_t[::1] ol = out_lengths
        cdef uint8_t* op = <uint8_t*>_data(o)
        cdef Py_ssize_t got
        with nogil:
            got = bufq_flush(&self.q, k, now, op, &oo[0], &ol[0])
        if got == count:
            return out, out_offsets, out_lengths
        used = oo[got - 1] + ol[got - 1] if got else 0
        return out[:used], out_offsets[:got], out_lengths[:got]

    def drop(self, key):
        """Discard ``key``'s queue (handover failed or ended); returns the frames dropped (``dropped_by_drop``).

        Reference: fmipfast.reference.bufq.PacketBuffer.drop
        """
        cdef int32_t k = self._key(key)
        cdef Py_ssize_t n
        with nogil:
            n = bufq_drop(&self.q, k)
        return n

    def expire(self, now_ns):
        """Drop every frame, of every key, older than lifetime_ns at ``now_ns``; returns how many.

        Reference: fmipfast.reference.bufq.PacketBuffer.expire
        """
        cdef int64_t now = _bq_int(now_ns, "now_ns", 0, INT64_MAX)
        cdef Py_ssize_t n
        with nogil:
            n = bufq_expire(&self.q, now)
        return n

    def __repr__(self):
        return (
            f"PacketBuffer(slots={self.q.slots}, slot_size={self.q.slot_size}, max_keys={self.q.max_keys}, "
            f"per_key_packets={self.q.per_key_packets}, per_key_bytes={self.q.per_key_bytes}, "
            f"lifetime_ns={self.q.lifetime_ns}; held={self.q.held})"
        )


@cython.boundscheck(False)  # SAFETY: reads keys[0:n] only; the wrapper passes n = len(keys)
cdef Py_ssize_t _bq_bad_key(const int32_t* keys, Py_ssize_t n, int64_t max_keys) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if keys[i] < 0 or keys[i] >= max_keys:
            return i
    return -1


__all__ += ["PacketBuffer"]
