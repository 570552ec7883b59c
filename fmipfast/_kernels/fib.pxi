# fib: longest-prefix match whose cost does not grow with the route count, included by _core.pyx.
#
# Algorithm: binary search on prefix lengths with markers (Waldvogel, Varghese, Turner and Plattner,
# "Scalable High Speed IP Routing Lookups", SIGCOMM 1997, §3).  The k sorted distinct lengths are searched
# with mid = (lo + hi) / 2; each probe looks up (destination masked to lengths[mid], lengths[mid]) in ONE
# open-addressing table holding the prefixes and the markers, each entry with its precomputed best
# matching prefix.  Hit: remember its bmp, go to longer lengths; miss: go to shorter ones.  At most
# ceil(log2(k + 1)) <= 8 probes per destination, whatever the number of prefixes.
#
# The table is built by fmipfast/reference/fib.py (numpy, shared by both implementations: the same checks,
# the same layout); Fib copies it into memory it allocates and owns, so no caller can write to it, and it
# never changes afterwards.  Threading: lookup only reads the table, so any number of threads may call it
# at once; it releases the GIL around its whole batch.
#
# Safety, whatever `dst` holds: each destination row is read once into locals (a thread rewriting `dst`
# meanwhile changes answers, never indices); every slot index is masked by t.mask; `mid` stays inside
# 0..nlen-1; each probe run examines at most t.max_probe slots (the longest run a present key needs, so
# absent keys stop there at the latest; the table is at most half full, so an empty slot usually stops
# them earlier).
#
# Batches: CHUNK destinations move through the search in lockstep, one level at a time: hash all and
# prefetch their slots, then probe all, so the cache misses of a chunk overlap (as in ncache.pxi).
#
# Oracle: fmipfast/reference/fib.py (a dict per length, longest first).
#
# Included after ncache.pxi, whose extern block declares __builtin_prefetch.

from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.stdint cimport INT32_MAX

import fmipfast.reference.fib as _fib_ref

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* MurmurHash3's 64-bit finaliser (Appleby); fmipfast/reference/fib.py computes the same. */
    static inline uint64_t fmip_fib_fmix(uint64_t h) {
        h ^= h >> 33; h *= 0xFF51AFD7ED558CCDULL; h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53ULL; h ^= h >> 33;
        return h;
    }
    static inline uint64_t fmip_fib_inner(uint64_t lo, uint64_t len, uint64_t k1) {
        return fmip_fib_fmix(lo ^ k1 ^ (len * 0x9E3779B97F4A7C15ULL));
    }
    static inline uint64_t fmip_fib_hash(uint64_t hi, uint64_t lo, uint64_t len, uint64_t k0, uint64_t k1) {
        return fmip_fib_fmix(hi ^ k0 ^ fmip_fib_inner(lo, len, k1));
    }
    /* The same hash with the inner mix of a zero low half (every key of length <= 64, and any other whose
     * low half is zero) precomputed per length: `inner0` = fmip_fib_inner(0, len, k1). */
    static inline uint64_t fmip_fib_hash_pre(uint64_t hi, uint64_t lo, uint64_t len, uint64_t k0, uint64_t k1,
                                             uint64_t inner0) {
        return fmip_fib_fmix(hi ^ k0 ^ (lo ? fmip_fib_inner(lo, len, k1) : inner0));
    }
    static inline uint64_t fmip_fib_load_be64(const uint8_t *p) {
        uint64_t w;
        memcpy(&w, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        w = __builtin_bswap64(w);
    #endif
        return w;
    }
    """
    uint64_t fmip_fib_inner(uint64_t lo, uint64_t length, uint64_t k1) noexcept nogil
    uint64_t fmip_fib_hash(uint64_t hi, uint64_t lo, uint64_t length, uint64_t k0, uint64_t k1) noexcept nogil
    uint64_t fmip_fib_hash_pre(uint64_t hi, uint64_t lo, uint64_t length, uint64_t k0, uint64_t k1,
                               uint64_t inner0) noexcept nogil
    uint64_t fmip_fib_load_be64(const uint8_t* p) noexcept nogil


cdef enum:
    _FIB_CHUNK = 16          # destinations searched in lockstep (hash + prefetch, then probe)
    _FIB_EMPTY = 0xFF        # slot length of a free slot (lengths are 0..128)
    _FIB_MAX_LENGTHS = 129


# ---------------------------------------------------------------------------------------------------
# Kernels: `noexcept nogil` on the raw table; no Python objects, no allocation, never raise.

cdef uint64_t fib_hash(uint64_t hi, uint64_t lo, uint64_t length, uint64_t k0, uint64_t k1) noexcept nogil:
    return fmip_fib_hash(hi, lo, length, k0, k1)


@cython.boundscheck(False)  # SAFETY: j < _FIB_CHUNK; mid in 0..nlen-1 (lo >= 0, hi <= nlen - 1); slots masked
cdef void fib_lookup_batch(const fib_table* t, const uint8_t* dst, Py_ssize_t m, int32_t* out) noexcept nogil:
    """out[i] = bmp of the longest prefix matching dst row i (16 octets each), -1 if none."""
    cdef uint64_t qh[_FIB_CHUNK]
    cdef uint64_t ql[_FIB_CHUNK]
    cdef uint64_t kh[_FIB_CHUNK]
    cdef uint64_t kl[_FIB_CHUNK]
    cdef uint64_t pos[_FIB_CHUNK]
    cdef int lo_i[_FIB_CHUNK]
    cdef int hi_i[_FIB_CHUNK]
    cdef int mid[_FIB_CHUNK]
    cdef int32_t best[_FIB_CHUNK]
    cdef Py_ssize_t base = 0, j, c
    cdef uint64_t p, probe
    cdef const fib_slot* s
    cdef uint8_t length
    cdef bint active, found
    while base < m:
        c = m - base if m - base < _FIB_CHUNK else _FIB_CHUNK
        for j in range(c):
            qh[j] = fmip_fib_load_be64(dst + (base + j) * ADDR_LEN)
            ql[j] = fmip_fib_load_be64(dst + (base + j) * ADDR_LEN + 8)
            lo_i[j] = 0
            hi_i[j] = t.nlen - 1
            best[j] = -1
        active = t.nlen > 0
        while active:
            for j in range(c):
                if lo_i[j] > hi_i[j]:
                    continue
                mid[j] = (lo_i[j] + hi_i[j]) >> 1
                kh[j] = qh[j] & t.mask_hi[mid[j]]
                kl[j] = ql[j] & t.mask_lo[mid[j]]
                pos[j] = fmip_fib_hash_pre(kh[j], kl[j], t.lengths[mid[j]], t.k0, t.k1, t.inner0[mid[j]]) & t.mask
                __builtin_prefetch(&t.slots[pos[j]])
            active = False
            for j in range(c):
                if lo_i[j] > hi_i[j]:
                    continue
                length = t.lengths[mid[j]]
                p = pos[j]
                found = False
                for probe in range(t.max_probe):
                    s = &t.slots[p]
                    if s.len == length and s.hi == kh[j] and s.lo == kl[j]:
                        found = True
                        best[j] = s.bmp
                        break
                    if s.len == _FIB_EMPTY:
                        break
                    p = (p + 1) & t.mask
                lo_i[j] = mid[j] + 1 if found else lo_i[j]
                hi_i[j] = hi_i[j] if found else mid[j] - 1
                if lo_i[j] <= hi_i[j]:
                    active = True
        for j in range(c):
            out[base + j] = best[j]
        base += c


@cython.boundscheck(False)  # SAFETY: [0] is only taken on non-empty views
cdef bint _fib_overlap(const uint8_t[:, ::1] d, int32_t[::1] o) noexcept:
    """True iff the memory of the C-contiguous ``d`` and ``o`` overlaps (np.may_share_memory's answer)."""
    if d.shape[0] == 0 or o.shape[0] == 0:
        return False
    cdef const char* d0 = <const char*>&d[0, 0]
    cdef const char* o0 = <const char*>&o[0]
    return o0 < d0 + d.shape[0] * ADDR_LEN and d0 < o0 + o.shape[0] * <Py_ssize_t>sizeof(int32_t)


# ---------------------------------------------------------------------------------------------------
# The class

cdef class Fib:
    """Longest-prefix-match table of IPv6 prefixes, immutable once built; lookups cost the same for 10 or
    1 000 000 prefixes.

    Parameters
    ----------
    prefixes : numpy uint8 [n,16]
    lengths : numpy uint8 [n], each 0..128
        Host bits of a prefix beyond its length are ignored.
    values : numpy int32 [n], each >= 0
        What a lookup returns for a destination that prefix matches longest (e.g. a route index).
    seed : bytes-like, 16 octets, optional (keyword only)
        Key of the table's hash; ``None`` draws one from ``os.urandom``.

    ``n`` may be 0 (every lookup gives -1) up to 2**24.  Binary search on prefix lengths with markers
    (Waldvogel et al., SIGCOMM 1997): at most ceil(log2(k + 1)) hash probes per destination for k distinct
    lengths (8 for all 129), in a table the Fib owns (``memory_bytes``).

    Raises
    ------
    TypeError
        An argument is not a numpy array of its dtype (the message names it).
    ValueError
        A wrong shape or row count, a length above 128, a negative value, or a duplicate prefix (same
        masked prefix and length: the message names both rows).

    Reference: fmipfast.reference.fib.Fib
    """

    def __cinit__(self, prefixes, lengths, values, *, seed=None):
        k0, k1 = _fib_ref.check_seed(seed)
        p, ln, va = _fib_ref.check_table(prefixes, lengths, values)
        tab = _fib_ref.build(p, ln, va, k0, k1)
        cdef Py_ssize_t nslots = tab.slot_len.shape[0]
        cdef Py_ssize_t nlen = tab.lengths.shape[0]
        if nslots < 2 or nslots & (nslots - 1) or nslots > INT32_MAX or not 0 <= nlen <= _FIB_MAX_LENGTHS:
            raise SystemError("fmipfast._core.Fib: malformed table from the builder")  # a bug, not bad input
        if not 1 <= tab.max_probe <= nslots or tab.entries * 2 > nslots:
            raise SystemError("fmipfast._core.Fib: malformed table from the builder")
        cdef const uint64_t[::1] s_hi = tab.slot_hi
        cdef const uint64_t[::1] s_lo = tab.slot_lo
        cdef const int32_t[::1] s_bmp = tab.slot_bmp
        cdef const uint8_t[::1] s_len = tab.slot_len
        cdef const uint8_t[::1] lens = tab.lengths
        cdef const uint64_t[::1] mhi = _fib_ref._MASK_HI
        cdef const uint64_t[::1] mlo = _fib_ref._MASK_LO
        cdef fib_slot* slots = <fib_slot*>PyMem_RawMalloc(<size_t>nslots * sizeof(fib_slot))
        if slots == NULL:
            raise MemoryError(f"Fib: {nslots * sizeof(fib_slot)} octets for {nslots} slots")
        cdef Py_ssize_t i
        memset(slots, 0, <size_t>nslots * sizeof(fib_slot))
        for i in range(nslots):
            slots[i].hi = s_hi[i]
            slots[i].lo = s_lo[i]
            slots[i].bmp = s_bmp[i]
            slots[i].len = s_len[i]
        self.t.slots = slots
        self.t.nslots = nslots
        self.t.mask = <uint64_t>(nslots - 1)
        self.t.max_probe = tab.max_probe
        self.t.k0 = k0
        self.t.k1 = k1
        self.t.prefixes = tab.prefixes
        self.t.entries = tab.entries
        self.t.nlen = <int>nlen
        for i in range(nlen):
            self.t.lengths[i] = lens[i]
            self.t.mask_hi[i] = mhi[lens[i]]
            self.t.mask_lo[i] = mlo[lens[i]]
            self.t.inner0[i] = fmip_fib_inner(0, lens[i], self.t.k1)

    def __dealloc__(self):
        PyMem_RawFree(self.t.slots)  # raw: plain malloc, so ASan guards the table of any size
        self.t.slots = NULL

    @property
    def size(self):
        """Number of prefixes."""
        return self.t.prefixes

    @property
    def memory_bytes(self):
        """Bytes of the lookup table the Fib owns (slots and the length array)."""
        return self.t.nslots * <Py_ssize_t>sizeof(fib_slot) + self.t.nlen

    def lookup(self, dst, out=None):
        """The value of the longest prefix matching each destination, -1 where none matches.

        Parameters
        ----------
        dst : numpy uint8 [m,16], C-contiguous
        out : numpy int32 [m], C-contiguous and writable, optional
            Where to write the result (not overlapping ``dst``); a new array when None.

        Returns
        -------
        numpy.ndarray
            int32 [m] (``out`` when given).

        Raises
        ------
        TypeError, ValueError
            ``dst`` or ``out`` is not as described (the message names it).

        Reference: fmipfast.reference.fib.Fib.lookup
        """
        # Fast path: take the buffers directly (~1 us less per call than the shared checks, which matters
        # for batches of a few hundred); on any doubt, the shared checks raise the shared message.
        cdef const uint8_t[:, ::1] d
        cdef int32_t[::1] o
        cdef bint ok
        try:
            ok = isinstance(dst, np.ndarray) and (out is None or isinstance(out, np.ndarray))
            if ok:
                d = dst
                ok = d.shape[1] == ADDR_LEN
                if ok and out is not None:
                    o = out
                    ok = o.shape[0] == d.shape[0] and not _fib_overlap(d, o)
        except (TypeError, ValueError, BufferError):
            ok = False
        if not ok:
            _fib_ref.check_dst(dst, out)  # raises: the fast path refuses nothing the checks accept
            raise SystemError("fmipfast._core.Fib.lookup: argument refused by the fast path only")
        cdef Py_ssize_t m = d.shape[0]
        res = out
        if out is None:
            res = np.empty(m, dtype=np.int32)
            o = res
        if m == 0:
            return res
        with nogil:
            fib_lookup_batch(&self.t, &d[0, 0], m, &o[0])
        return res

    def __repr__(self):
        return f"Fib(size={self.size}, lengths={self.t.nlen}, memory_bytes={self.memory_bytes})"

    # -- Test hooks (compiled core only; tests/test_fib.py) --------------------------------------

    @property
    def _nslots(self):
        return self.t.nslots

    @property
    def _max_probe(self):
        return self.t.max_probe

    @property
    def _entries(self):
        return self.t.entries

    def _hash(self, hi, lo, length):
        """The slot hash of one masked key under this table's seed (compare with the reference's)."""
        return fib_hash(hi, lo, length, self.t.k0, self.t.k1)


def _fib_consts():
    """sizeof(fib_slot) and the free-slot marker, as compiled (tests compare them with the reference)."""
    return {"SLOT_BYTES": sizeof(fib_slot), "EMPTY": _FIB_EMPTY}


__all__ += ["Fib"]
