# ncache: the neighbor cache of the batch core (docs/design.md §5, §7), included by _core.pyx.
#
# Ownership and threading (docs/conventions.md §3; Linux net/core/neighbour.c opens the same way): a
# NeighborCache has ONE writer, the engine thread.  insert/update/delete/expire mutate the table and the
# counters without a lock; lookup/get bump counters too, so they also belong to that thread.  Each call
# releases the GIL once, around its whole batch, so other Python threads run meanwhile; they may read the
# exported numpy arrays (read-only views) but must not call a method of the same table concurrently.
# There is no resize (capacity is fixed at construction), so the views never dangle (pandas'
# external_view_exists problem cannot arise, docs/conventions.md §2).
#
# Layout: numpy structure-of-arrays of `capacity` entries (keys, macs, states, flags, ifindex, expiry,
# in_use) plus, private, the keyed hash of each live key.  Index: open addressing with linear probing
# over an int32 slot table of a power-of-two size >= 2 * capacity (load <= 0.5), each slot the index of
# an entry or -1; deletion by backward shift (Knuth vol. 3, 6.4 Algorithm R), so there are no tombstones
# and a probe always ends at the first empty slot.  Entry indices come from a free stack: initially
# ascending (0, 1, 2, ...), freed indices reused last-in first-out, which makes the indices a pure
# function of the operation sequence (fmipfast.reference.ncache allocates identically).
#
# Hash: keyed (RFC 6583: the addresses are the attacker's choice, the key is not).  The hash is the
# multilinear family over the four 32-bit words w0..w3 of the address, (m0 + m1 w0 + m2 w1 + m3 w2 + m4 w3)
# mod 2**64, whose top 32 bits are strongly universal (Lemire & Kaser, "Strongly universal string hashing is
# fast", 2014): for any two addresses chosen without knowing the key, every pair of 32-bit values is equally
# likely.  Those bits then go through the murmur3 32-bit finaliser (a bijection, so still strongly
# universal), which breaks the arithmetic structure of address sets like a run of consecutive prefixes that
# linear probing would otherwise cluster.  Five multiplies where SipHash-2-4 takes ~150 operations.  The five
# 64-bit keys m0..m4 are SipHash-2-4 of (generation, j) under the 128-bit seed (fmip_nc_mix_keys).  Pairwise
# independence bounds the expected probe run for keys picked blind; against an attacker who learns about the
# key by timing, and against bad luck, an insert whose probe run passes _NC_PROBE_LIMIT slots rehashes the
# table under the next generation's keys (at most once per capacity / 4 inserts, so rehashing stays
# amortised O(1) per insert and a flood cannot make the table rehash on every insert).
# An attacker on the link chooses the addresses the NAR must cache (NCoAs, tunnelled PCoAs, solicited
# targets); with an unkeyed hash it could pick a set that lands in one probe run and turn every lookup
# into a scan (hash flooding, Crosby & Wallach 2003; Linux re-keys neigh_hash with a random seed for
# the same reason).  Bounded: a full table refuses new keys and counts them (refused_full); it never
# evicts, so the PROXY entry of a live handover cannot be pushed out (docs/design.md §1 step 5, §5).
#
# Oracle: fmipfast/reference/ncache.py.

import os

import fmipfast.reference.ncache as _ncache_ref

from libc.stdint cimport INT64_MAX

cdef extern from *:
    """
    /* SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012), little-endian
     * words as the paper specifies.  bench/limit_ncache.c carries a copy of the same code. */
    #include <stdint.h>
    #include <string.h>
    static inline uint64_t fmip_nc_rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
    static inline uint64_t fmip_nc_load_le64(const uint8_t *p) {
        uint64_t w;
        memcpy(&w, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
    #endif
        return w;
    }
    #define FMIP_NC_SIPROUND                                                          \\
        do {                                                                          \\
            v0 += v1; v1 = fmip_nc_rotl(v1, 13); v1 ^= v0; v0 = fmip_nc_rotl(v0, 32); \\
            v2 += v3; v3 = fmip_nc_rotl(v3, 16); v3 ^= v2;                            \\
            v0 += v3; v3 = fmip_nc_rotl(v3, 21); v3 ^= v0;                            \\
            v2 += v1; v1 = fmip_nc_rotl(v1, 17); v1 ^= v2; v2 = fmip_nc_rotl(v2, 32); \\
        } while (0)
    /* Any length: the test hook _siphash24 runs the published vectors through this one. */
    static uint64_t fmip_nc_siphash24(const uint8_t *in, size_t n, uint64_t k0, uint64_t k1) {
        uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
        uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
        uint64_t m, b = ((uint64_t)n) << 56;
        size_t i, left = n & 7;
        const uint8_t *end = in + n - left;
        for (; in != end; in += 8) {
            m = fmip_nc_load_le64(in);
            v3 ^= m; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; v0 ^= m;
        }
        for (i = 0; i < left; i++)
            b |= ((uint64_t)in[i]) << (8 * i);
        v3 ^= b; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; v0 ^= b;
        v2 ^= 0xff;
        FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
    }
    /* The same function unrolled for the 16-octet keys of the table (two words, no tail octets). */
    static inline uint64_t fmip_nc_siphash24_16(const uint8_t *in, uint64_t k0, uint64_t k1) {
        uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
        uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
        uint64_t m0 = fmip_nc_load_le64(in), m1 = fmip_nc_load_le64(in + 8), b = ((uint64_t)16) << 56;
        v3 ^= m0; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; v0 ^= m0;
        v3 ^= m1; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; v0 ^= m1;
        v3 ^= b; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; v0 ^= b;
        v2 ^= 0xff;
        FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND; FMIP_NC_SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
    }
    /* The table's hash of a 16-octet key under the five multilinear keys m[0..4] (see the comment above). */
    static inline uint32_t fmip_nc_mix16(const uint8_t *in, const uint64_t *m) {
        uint64_t lo = fmip_nc_load_le64(in), hi = fmip_nc_load_le64(in + 8);
        uint64_t h = m[0] + m[1] * (lo & 0xffffffffULL) + m[2] * (lo >> 32)
                          + m[3] * (hi & 0xffffffffULL) + m[4] * (hi >> 32);
        uint32_t x = (uint32_t)(h >> 32);
        x ^= x >> 16; x *= 0x85ebca6bU; x ^= x >> 13; x *= 0xc2b2ae35U; x ^= x >> 16;
        return x;
    }
    /* m[j] = SipHash-2-4 under the seed (k0, k1) of the 8 octets le32(generation) le32(j), j = 0..4. */
    static void fmip_nc_mix_keys(uint64_t k0, uint64_t k1, uint32_t generation, uint64_t *m) {
        uint8_t msg[8];
        uint32_t j;
        for (j = 0; j < 5; j++) {
            msg[0] = (uint8_t)generation; msg[1] = (uint8_t)(generation >> 8);
            msg[2] = (uint8_t)(generation >> 16); msg[3] = (uint8_t)(generation >> 24);
            msg[4] = (uint8_t)j; msg[5] = 0; msg[6] = 0; msg[7] = 0;
            m[j] = fmip_nc_siphash24(msg, 8, k0, k1);
        }
    }
    static inline int fmip_nc_key_eq(const uint8_t *a, const uint8_t *b) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8); memcpy(&a1, a + 8, 8); memcpy(&b0, b, 8); memcpy(&b1, b + 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    """
    uint64_t fmip_nc_siphash24(const uint8_t* data, size_t n, uint64_t k0, uint64_t k1) noexcept nogil
    uint64_t fmip_nc_siphash24_16(const uint8_t* key16, uint64_t k0, uint64_t k1) noexcept nogil
    uint64_t fmip_nc_load_le64(const uint8_t* p) noexcept nogil
    uint32_t fmip_nc_mix16(const uint8_t* key16, const uint64_t* m) noexcept nogil
    void fmip_nc_mix_keys(uint64_t k0, uint64_t k1, uint32_t generation, uint64_t* m) noexcept nogil
    bint fmip_nc_key_eq(const uint8_t* a, const uint8_t* b) noexcept nogil
    void __builtin_prefetch(const void* addr) noexcept nogil


cdef enum:
    _NC_CHUNK = 32                 # keys hashed and prefetched ahead of their probes in a batch lookup
    _NC_MAX_CAPACITY = 1 << 30     # entry indices and slots stay within int32
    _NC_SEED_LEN = 16              # the seed (SipHash-2-4 key of the hash-key derivation): 128 bits
    _NC_PROBE_LIMIT = 64           # an insert probing more slots than this rehashes under new keys


# ---------------------------------------------------------------------------------------------------
# Kernels: `noexcept nogil` on the raw table; no Python objects, no allocation, never raise.

cdef uint64_t nc_hash(const nc_table* t, const uint8_t* key) noexcept nogil:
    return fmip_nc_mix16(key, t.mk)


cdef void _nc_set_generation(nc_table* t, uint32_t generation) noexcept nogil:
    t.generation = generation
    fmip_nc_mix_keys(t.k0, t.k1, generation, t.mk)


@cython.boundscheck(False)  # SAFETY: e < capacity; every slot position is masked by t.mask
cdef void _nc_rehash(nc_table* t) noexcept nogil:
    """Rebuild the slot table under the next generation's hash keys (entries keep their indices).

    Entries are placed in ascending index order; max_probe restarts from the longest placement."""
    cdef Py_ssize_t e
    cdef uint64_t pos, probes, longest = 0
    cdef uint64_t h
    _nc_set_generation(t, t.generation + 1)
    memset(t.slots, 0xFF, <size_t>(t.mask + 1) * sizeof(int32_t))
    for e in range(t.capacity):
        if not t.in_use[e]:
            continue
        h = nc_hash(t, t.keys + e * ADDR_LEN)
        t.hashes[e] = h
        pos = h & t.mask
        probes = 1
        while t.slots[pos] >= 0:
            pos = (pos + 1) & t.mask
            probes += 1
        t.slots[pos] = <int32_t>e
        if probes > longest:
            longest = probes
    t.max_probe = longest
    t.rehash_mark = t.inserted + <uint64_t>(t.capacity // 4) + 1


@cython.boundscheck(False)  # SAFETY: slot positions are masked by t.mask (nslots - 1); entries < capacity
cdef inline uint64_t _nc_probe(nc_table* t, const uint8_t* key, uint64_t h, bint* found) noexcept nogil:
    """The slot holding ``key``, or the first empty slot of its probe run (``found`` says which).

    Terminates: the load factor is at most 0.5, so the run always reaches an empty slot.
    """
    cdef uint64_t probes
    return _nc_probe_n(t, key, h, found, &probes)


@cython.boundscheck(False)  # SAFETY: slot positions are masked by t.mask (nslots - 1); entries < capacity
cdef inline uint64_t _nc_probe_n(nc_table* t, const uint8_t* key, uint64_t h, bint* found,
                                 uint64_t* probes_out) noexcept nogil:
    """_nc_probe(), also telling how many slots it examined."""
    cdef uint64_t pos = h & t.mask
    cdef uint64_t probes = 1
    cdef int32_t e
    while True:
        e = t.slots[pos]
        if e < 0:
            found[0] = False
            break
        if fmip_nc_key_eq(t.keys + <Py_ssize_t>e * ADDR_LEN, key):
            found[0] = True
            break
        pos = (pos + 1) & t.mask
        probes += 1
    if probes > t.max_probe:
        t.max_probe = probes
    probes_out[0] = probes
    return pos


cdef int64_t nc_find(nc_table* t, const uint8_t* key, uint64_t h) noexcept nogil:
    """Entry index of ``key`` (hash ``h``) or -1; counts nothing but max_probe."""
    cdef bint found
    cdef uint64_t pos = _nc_probe(t, key, h, &found)
    return t.slots[pos] if found else -1


cdef inline void _nc_write(nc_table* t, Py_ssize_t e, const uint8_t* mac, int state, const uint8_t* flags,
                           const uint32_t* ifindex, const int64_t* expiry) noexcept nogil:
    """Write the given fields of entry ``e``; a NULL pointer / negative state leaves that field alone."""
    if mac != NULL:
        memcpy(t.macs + e * MAC48_LEN, mac, MAC48_LEN)
    if state >= 0:
        t.states[e] = <uint8_t>state
    if flags != NULL:
        t.flags[e] = flags[0]
    if ifindex != NULL:
        t.ifindex[e] = ifindex[0]
    if expiry != NULL:
        t.expiry[e] = expiry[0]


cdef int64_t nc_insert_one(nc_table* t, const uint8_t* key, const uint8_t* mac, uint8_t state,
                           const uint8_t* flags, const uint32_t* ifindex, const int64_t* expiry) noexcept nogil:
    """Upsert one entry; its index, or -1 when the table is full (counted in refused_full, nothing evicted)."""
    cdef bint found
    cdef uint64_t h = nc_hash(t, key), probes
    cdef uint64_t pos = _nc_probe_n(t, key, h, &found, &probes)
    cdef int32_t e
    if found:
        e = t.slots[pos]
        _nc_write(t, e, mac, state, flags, ifindex, expiry)
        t.updated += 1
        return e
    if t.nfree == 0:
        t.refused_full += 1  # docs/design.md §5: a full table refuses and counts; it never evicts
        return -1
    t.nfree -= 1
    e = t.free_stack[t.nfree]
    if FMIPFAST_DEBUG:
        FMIPFAST_ASSERT(e >= 0 and e < t.capacity and not t.in_use[e])
    t.slots[pos] = e
    t.hashes[e] = h
    memcpy(t.keys + <Py_ssize_t>e * ADDR_LEN, key, ADDR_LEN)
    # A free entry is all zeros (_nc_free_entry), so fields not given stay 0 (flags none, never expires).
    _nc_write(t, e, mac, state, flags, ifindex, expiry)
    t.in_use[e] = 1
    t.count += 1
    t.inserted += 1
    if probes > _NC_PROBE_LIMIT and t.inserted >= t.rehash_mark:
        _nc_rehash(t)  # a run this long is an attack or rare bad luck: new keys scatter it
    return e


@cython.boundscheck(False)  # SAFETY: every position is masked by t.mask; entries stored in slots are < capacity
cdef inline void _nc_remove_slot(nc_table* t, uint64_t i) noexcept nogil:
    """Empty slot ``i`` by backward shift: later members of the run that may live at ``i`` move up.

    An entry at slot j with home slot k may move to the hole i iff k is not cyclically in (i, j].
    """
    cdef uint64_t j = i, k
    cdef int32_t e
    while True:
        j = (j + 1) & t.mask
        e = t.slots[j]
        if e < 0:
            break
        k = t.hashes[e] & t.mask
        if (i < j and (k <= i or k > j)) or (j < i and k <= i and k > j):
            t.slots[i] = e
            i = j
    t.slots[i] = -1


cdef inline void _nc_free_entry(nc_table* t, Py_ssize_t e) noexcept nogil:
    """Zero entry ``e`` (the reference compares whole arrays) and push its index on the free stack."""
    memset(t.keys + e * ADDR_LEN, 0, ADDR_LEN)
    memset(t.macs + e * MAC48_LEN, 0, MAC48_LEN)
    t.states[e] = 0
    t.flags[e] = 0
    t.ifindex[e] = 0
    t.expiry[e] = 0
    t.hashes[e] = 0
    t.in_use[e] = 0
    t.free_stack[t.nfree] = <int32_t>e
    t.nfree += 1
    t.count -= 1


@cython.boundscheck(False)  # SAFETY: keys holds n rows of ADDR_LEN octets, out n int64; hs is indexed < _NC_CHUNK
cdef void nc_lookup_batch(nc_table* t, const uint8_t* keys, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Look up n keys in chunks of _NC_CHUNK: hash them all and prefetch their home slots, then prefetch
    the key row each home slot points at, then probe, so the cache misses of a chunk overlap.  The table's
    pointers and the counters live in locals for the batch (out may alias nothing of the table's, but the
    compiler cannot know that)."""
    cdef uint64_t hs[_NC_CHUNK]
    cdef Py_ssize_t base, j, m
    cdef int32_t e
    cdef uint64_t pos, probes, longest = t.max_probe, mask = t.mask
    cdef const int32_t* slots = t.slots
    cdef const uint8_t* tkeys = t.keys
    cdef const uint64_t* mk = t.mk
    cdef const uint8_t* key
    cdef uint64_t hits = 0
    base = 0
    while base < n:
        m = n - base if n - base < _NC_CHUNK else _NC_CHUNK
        for j in range(m):
            hs[j] = fmip_nc_mix16(keys + (base + j) * ADDR_LEN, mk)
            __builtin_prefetch(&slots[hs[j] & mask])
        for j in range(m):
            e = slots[hs[j] & mask]
            if e >= 0:
                __builtin_prefetch(tkeys + <Py_ssize_t>e * ADDR_LEN)
        for j in range(m):
            # _nc_probe, inlined: the run ends at the key or at the first empty slot (load <= 0.5).
            key = keys + (base + j) * ADDR_LEN
            pos = hs[j] & mask
            probes = 1
            while True:
                e = slots[pos]
                if e < 0 or fmip_nc_key_eq(tkeys + <Py_ssize_t>e * ADDR_LEN, key):
                    break
                pos = (pos + 1) & mask
                probes += 1
            if probes > longest:
                longest = probes
            out[base + j] = e  # -1 where the run ended empty
            hits += e >= 0
        base += m
    t.max_probe = longest
    t.hits += hits
    t.misses += <uint64_t>n - hits
    t.lookups += <uint64_t>n


cdef bint nc_delete_one(nc_table* t, const uint8_t* key) noexcept nogil:
    cdef bint found
    cdef uint64_t pos = _nc_probe(t, key, nc_hash(t, key), &found)
    cdef int32_t e
    if not found:
        return False
    e = t.slots[pos]
    _nc_remove_slot(t, pos)
    _nc_free_entry(t, e)
    t.deleted += 1
    return True


@cython.boundscheck(False)  # SAFETY: e < capacity; slot positions masked; the entry's slot exists while in use
cdef Py_ssize_t nc_expire(nc_table* t, int64_t now_ns) noexcept nogil:
    """Remove every entry with 0 < expiry <= now_ns that is not STATIC, in ascending index order (so the
    free stack, and the indices later inserts get, match the reference); return how many."""
    cdef Py_ssize_t e, removed = 0
    cdef uint64_t pos
    for e in range(t.capacity):
        if not t.in_use[e] or t.expiry[e] <= 0 or t.expiry[e] > now_ns or (t.flags[e] & NCFLAG_STATIC):
            continue
        pos = t.hashes[e] & t.mask
        while t.slots[pos] != e:
            pos = (pos + 1) & t.mask
        _nc_remove_slot(t, pos)
        _nc_free_entry(t, e)
        removed += 1
    t.expired += <uint64_t>removed
    return removed


# ---------------------------------------------------------------------------------------------------
# Argument checks shared by the methods (word for word those of fmipfast.reference.ncache).

def _column(obj, str name, dtype, Py_ssize_t n):
    """``obj`` as a C-contiguous 1-D array of exactly ``dtype`` with ``n`` elements (TypeError / ValueError
    naming the argument otherwise).  Reference: fmipfast.reference.ncache._column"""
    if obj is None:
        raise TypeError(f"{name}: need a numpy {np.dtype(dtype).name} array, got None")
    arr = np.asarray(obj)
    if arr.dtype != dtype:
        raise TypeError(f"{name}: need dtype {np.dtype(dtype).name}, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: need shape (n,), got {tuple(arr.shape)}")
    _same_rows(arr.shape[0], name, n)
    return np.ascontiguousarray(arr)


cdef object _private(object arr):
    """A private C-contiguous copy of a checked argument array (see _check_fields)."""
    return np.array(arr, order="C", copy=True)


def _check_fields(Py_ssize_t n, macs, states, flags, ifindex, expiry):
    """Validate the optional per-entry columns of insert/update; None stays None.

    The validated columns are private copies (read once from the caller's arrays), so the kernels write
    exactly the values checked even while another thread writes the caller's arrays.
    """
    if macs is not None:
        macs = _rows(macs, "macs", MAC48_LEN)
        _same_rows(macs.shape[0], "macs", n)
    # The range checks run over the private copies in plain loops: a numpy reduction costs microseconds
    # whatever the size, and the control path inserts and updates one entry at a time.
    cdef const uint8_t[::1] u8
    cdef const int64_t[::1] i64
    cdef Py_ssize_t i
    cdef int64_t low
    if states is not None:
        states = _private(_column(states, "states", np.uint8, n))
        u8 = states
        for i in range(n):
            if u8[i] < 1 or u8[i] > NCSTATE_PROBE:
                raise ValueError(f"states: {u8[i]} is not a NeighborState of an entry (1..{NCSTATE_PROBE})")
    if flags is not None:
        flags = _private(_column(flags, "flags", np.uint8, n))
        u8 = flags
        for i in range(n):
            if u8[i] > NCFLAG_ALL:
                raise ValueError(f"flags: {u8[i]:#04x} has bits outside NeighborFlag ({NCFLAG_ALL:#04x})")
    if ifindex is not None:
        ifindex = _private(_column(ifindex, "ifindex", np.uint32, n))
    if expiry is not None:
        expiry = _private(_column(expiry, "expiry", np.int64, n))
        i64 = expiry
        low = 0
        for i in range(n):
            if i64[i] < low:
                low = i64[i]
        if low < 0:
            raise ValueError(f"expiry: {low} is negative (ns; 0 = never expires)")
    return macs, states, flags, ifindex, expiry


_NC_ARRAYS = ("keys", "macs", "states", "flags", "ifindex", "expiry", "in_use")


cdef class NeighborCache:
    """Bounded neighbor cache keyed by 128-bit IPv6 addresses; one writer: the engine thread.

    Ownership and threading (docs/conventions.md §3): only the engine thread calls the methods of a table,
    lookup/get included (they count); other threads may only read the exported arrays.  Each call
    releases the GIL around its whole batch.  docs/design.md §5, §7; RFC 4861 §5.1.

    Parameters
    ----------
    capacity : int, 1..2**30
        Number of entries; fixed (no resize).  A full table refuses new keys (index -1, counted in
        ``counters['refused_full']``) and never evicts.
    seed : bytes-like, 16 octets, optional (keyword only)
        Secret from which the hash keys are derived (SipHash-2-4 of the generation under it); ``None``
        draws one from ``os.urandom``.

    Storage is a numpy structure-of-arrays of ``capacity`` entries, exposed read-only: ``keys`` uint8
    (capacity, 16), ``macs`` uint8 (capacity, 6), ``states`` uint8 (NeighborState), ``flags`` uint8
    (NeighborFlag), ``ifindex`` uint32, ``expiry`` int64 (ns, 0 = never), ``in_use`` bool; index them
    with what :meth:`insert` / :meth:`lookup` return.  Free entries are all zeros.

    Reference: fmipfast.reference.ncache.NeighborCache
    """

    def __cinit__(self, capacity, *, seed=None):
        cap = _index(capacity)
        if not 1 <= cap <= _NC_MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1..{_NC_MAX_CAPACITY}, got {cap}")
        if seed is None:
            seed = os.urandom(_NC_SEED_LEN)
        if seed is None:
            raise TypeError("seed: a bytes-like object is required, not 'NoneType'")
        cdef const uint8_t[::1] seed_v = _octets(seed)
        _need(seed_v.shape[0], "seed", _NC_SEED_LEN)
        cdef Py_ssize_t nslots = 2
        while nslots < 2 * cap:
            nslots *= 2
        arrays = {
            "keys": np.zeros((cap, ADDR_LEN), dtype=np.uint8),
            "macs": np.zeros((cap, MAC48_LEN), dtype=np.uint8),
            "states": np.zeros(cap, dtype=np.uint8),
            "flags": np.zeros(cap, dtype=np.uint8),
            "ifindex": np.zeros(cap, dtype=np.uint32),
            "expiry": np.zeros(cap, dtype=np.int64),
            "in_use": np.zeros(cap, dtype=np.bool_),
        }
        self._arrays = arrays
        views = {}
        for name, arr in arrays.items():
            view = arr.view()
            view.flags.writeable = False
            views[name] = view
        self._views = views
        self._hashes_arr = np.zeros(cap, dtype=np.uint64)
        self._slots_arr = np.full(nslots, -1, dtype=np.int32)
        self._free_arr = np.arange(cap - 1, -1, -1, dtype=np.int32)  # top of the stack = index 0
        cdef uint8_t[:, ::1] keys_v = arrays["keys"]
        cdef uint8_t[:, ::1] macs_v = arrays["macs"]
        cdef uint8_t[::1] states_v = arrays["states"]
        cdef uint8_t[::1] flags_v = arrays["flags"]
        cdef uint32_t[::1] ifindex_v = arrays["ifindex"]
        cdef int64_t[::1] expiry_v = arrays["expiry"]
        cdef uint8_t[::1] in_use_v = arrays["in_use"].view(np.uint8)
        cdef uint64_t[::1] hashes_v = self._hashes_arr
        cdef int32_t[::1] slots_v = self._slots_arr
        cdef int32_t[::1] free_v = self._free_arr
        memset(&self.t, 0, sizeof(nc_table))
        self.t.keys = &keys_v[0, 0]
        self.t.macs = &macs_v[0, 0]
        self.t.states = &states_v[0]
        self.t.flags = &flags_v[0]
        self.t.ifindex = &ifindex_v[0]
        self.t.expiry = &expiry_v[0]
        self.t.in_use = &in_use_v[0]
        self.t.hashes = &hashes_v[0]
        self.t.slots = &slots_v[0]
        self.t.free_stack = &free_v[0]
        self.t.mask = <uint64_t>(nslots - 1)
        self.t.nfree = cap
        self.t.capacity = cap
        self.t.count = 0
        self.t.k0 = fmip_nc_load_le64(&seed_v[0])
        self.t.k1 = fmip_nc_load_le64(&seed_v[8])
        _nc_set_generation(&self.t, 0)

    # -- Sizes, storage and counters -------------------------------------------------------------

    def __len__(self):
        return self.t.count

    @property
    def capacity(self):
        """Number of entries (fixed)."""
        return self.t.capacity

    @property
    def keys(self):
        """uint8 (capacity, 16), read-only: the address of each entry (zeros where free)."""
        return self._views["keys"]

    @property
    def macs(self):
        """uint8 (capacity, 6), read-only: the link-layer address of each entry."""
        return self._views["macs"]

    @property
    def states(self):
        """uint8 (capacity,), read-only: NeighborState of each entry (0 = NONE where free)."""
        return self._views["states"]

    @property
    def flags(self):
        """uint8 (capacity,), read-only: NeighborFlag bits of each entry."""
        return self._views["flags"]

    @property
    def ifindex(self):
        """uint32 (capacity,), read-only: interface index of each entry."""
        return self._views["ifindex"]

    @property
    def expiry(self):
        """int64 (capacity,), read-only: expiry time in ns (0 = never) of each entry."""
        return self._views["expiry"]

    @property
    def in_use(self):
        """bool (capacity,), read-only: True where the entry holds a key."""
        return self._views["in_use"]

    @property
    def counters(self):
        """dict: inserted, updated, refused_full, lookups, hits, misses, deleted, expired, max_probe."""
        return {
            "inserted": self.t.inserted,
            "updated": self.t.updated,
            "refused_full": self.t.refused_full,
            "lookups": self.t.lookups,
            "hits": self.t.hits,
            "misses": self.t.misses,
            "deleted": self.t.deleted,
            "expired": self.t.expired,
            "max_probe": self.t.max_probe,
        }

    # -- Batch operations ------------------------------------------------------------------------

    def insert(self, keys, macs, states, *, flags=None, ifindex=None, expiry=None):
        """Insert or update (upsert) one entry per key; return int64 entry indices, -1 where refused.

        Rows are processed in order.  A key already in the table (or earlier in the same batch) is
        updated in place: same index, ``updated`` counted, the last write wins.  A new key takes the
        next free index (initially ascending, freed indices reused last-in first-out) and counts
        ``inserted``; when every entry is in use it is refused: index -1, ``refused_full`` counted,
        nothing evicted.  ``flags`` / ``ifindex`` / ``expiry`` left as None keep an updated entry's
        values and give a new entry 0 (no flags, ifindex 0, never expires).

        Parameters
        ----------
        keys : numpy uint8 (n, 16)
        macs : numpy uint8 (n, 6)
        states : numpy uint8 (n,), NeighborState 1..5
        flags : numpy uint8 (n,), NeighborFlag bits, optional
        ifindex : numpy uint32 (n,), optional
        expiry : numpy int64 (n,), ns, 0 = never, >= 0, optional

        Returns
        -------
        numpy.ndarray
            int64 (n,).

        Raises
        ------
        TypeError
            An argument is not an array of its dtype (the message names it).
        ValueError
            A wrong shape, a row count other than n, or a value outside its range (all checked before
            anything is written).

        Reference: fmipfast.reference.ncache.NeighborCache.insert
        """
        keys_arr = _private(_rows(keys, "keys", ADDR_LEN))  # hashed, compared and stored: read once
        cdef Py_ssize_t n = keys_arr.shape[0]
        macs_arr = _rows(macs, "macs", MAC48_LEN)
        _same_rows(macs_arr.shape[0], "macs", n)
        if states is None:
            raise TypeError("states: need a numpy uint8 array, got None")
        _, states_arr, flags_arr, ifindex_arr, expiry_arr = _check_fields(n, None, states, flags, ifindex, expiry)
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out
        cdef const uint8_t* kp = _u8p(keys_arr)
        cdef const uint8_t* mp = _u8p(macs_arr)
        cdef const uint8_t* sp = _u8p(states_arr)
        cdef const uint8_t* fp = _u8p(flags_arr)
        cdef const uint32_t* ip = NULL
        cdef const int64_t* ep = NULL
        cdef const uint32_t[::1] if_v
        cdef const int64_t[::1] ex_v
        if ifindex_arr is not None:
            if_v = ifindex_arr
            ip = &if_v[0]
        if expiry_arr is not None:
            ex_v = expiry_arr
            ep = &ex_v[0]
        cdef int64_t[::1] out_v = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(n):
                out_v[i] = nc_insert_one(&self.t, kp + i * ADDR_LEN, mp + i * MAC48_LEN, sp[i],
                                         fp + i if fp != NULL else NULL,
                                         ip + i if ip != NULL else NULL,
                                         ep + i if ep != NULL else NULL)
        return out

    def insert_one(self, key, mac, state, *, flags=0, ifindex=0, expiry=0):
        """Upsert one entry from scalars: ``insert`` of one row with every field given (an update overwrites
        flags, ifindex and expiry too); its index, or -1 when refused.  For the control path, which changes one
        entry at a time: no array is made or checked.  See the reference.

        Reference: fmipfast.reference.ncache.NeighborCache.insert_one
        """
        cdef long long v_state = 0, v_flags = 0, v_ifindex = 0, v_expiry = 0
        if (type(key) is bytes and len(<bytes>key) == ADDR_LEN and type(mac) is bytes
                and len(<bytes>mac) == MAC48_LEN and _int_in(state, 1, NCSTATE_PROBE, &v_state)
                and _int_in(flags, 0, NCFLAG_ALL, &v_flags) and _int_in(ifindex, 0, 0xFFFFFFFF, &v_ifindex)
                and _int_in(expiry, 0, INT64_MAX, &v_expiry)):
            # the common call (ints, or the IntEnum/IntFlag members the engine's tables use): nothing to convert
            k, m, st, fl, ifx, ex = key, mac, v_state, v_flags, v_ifindex, v_expiry
        else:
            k, m, st, fl, ifx, ex = _ncache_ref.check_one(key, mac, state, flags, ifindex, expiry)
        cdef const uint8_t* kp = k  # bytes: immutable, the values checked are the values written
        cdef const uint8_t* mp = m
        cdef uint8_t c_state = st, c_flags = fl
        cdef uint32_t c_ifindex = ifx
        cdef int64_t c_expiry = ex
        cdef int64_t e
        with nogil:
            e = nc_insert_one(&self.t, kp, mp, c_state, &c_flags, &c_ifindex, &c_expiry)
        return e

    def lookup(self, keys):
        """Entry index of each key, -1 where absent; counts lookups, hits and misses.

        Parameters
        ----------
        keys : numpy uint8 (n, 16)

        Returns
        -------
        numpy.ndarray
            int64 (n,).

        Raises
        ------
        TypeError, ValueError
            ``keys`` is not a uint8 (n, 16) array.

        Reference: fmipfast.reference.ncache.NeighborCache.lookup
        """
        keys_arr = _rows(keys, "keys", ADDR_LEN)
        cdef Py_ssize_t n = keys_arr.shape[0]
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out
        cdef const uint8_t* kp = _u8p(keys_arr)
        cdef int64_t[::1] out_v = out
        with nogil:
            nc_lookup_batch(&self.t, kp, n, &out_v[0])
        return out

    def get(self, key):
        """Entry index of one key (scalar lookup, counted like lookup); KeyError when absent.

        Parameters
        ----------
        key : bytes-like, 16 octets

        Raises
        ------
        KeyError
            ``key`` is not in the table (the argument is the key as bytes).
        ValueError
            ``key`` is not 16 octets.

        Reference: fmipfast.reference.ncache.NeighborCache.get
        """
        if key is None:
            raise TypeError("key: a bytes-like object is required, not 'NoneType'")
        cdef const uint8_t[::1] k = _octets(key)
        _need(k.shape[0], "key", ADDR_LEN)
        cdef uint8_t kc[ADDR_LEN]
        cdef int64_t e
        with nogil:
            memcpy(kc, &k[0], ADDR_LEN)  # read once: the key hashed is the key compared
            e = nc_find(&self.t, kc, nc_hash(&self.t, kc))
            self.t.lookups += 1
            if e >= 0:
                self.t.hits += 1
            else:
                self.t.misses += 1
        if e < 0:
            raise KeyError(bytes(k))
        return e

    def update(self, indices, *, macs=None, states=None, flags=None, ifindex=None, expiry=None):
        """Overwrite the given fields of the entries at ``indices`` (as returned by insert/lookup).

        Rows are applied in order (a repeated index: the last write wins); ``updated`` counts every row.
        Fields left as None are not touched.

        Parameters
        ----------
        indices : numpy int64 (n,), each an entry in use
        macs, states, flags, ifindex, expiry : as for :meth:`insert`, n rows each, optional

        Raises
        ------
        TypeError
            An argument is not an array of its dtype.
        ValueError
            A wrong shape, an index out of range or not in use, or a value outside its range (all
            checked before anything is written).

        Reference: fmipfast.reference.ncache.NeighborCache.update
        """
        # A private copy: the indices checked below are the ones the nogil loop writes through.
        idx = _private(_column(indices, "indices", np.int64, -1 if indices is None else np.asarray(indices).size))
        cdef Py_ssize_t n = idx.shape[0]
        if n:
            bad = idx[(idx < 0) | (idx >= self.t.capacity)]
            if bad.size:
                raise ValueError(f"indices: {bad[0]} is out of range 0..{self.t.capacity - 1}")
            unused = idx[~self._arrays["in_use"][idx]]
            if unused.size:
                raise ValueError(f"indices: entry {unused[0]} is not in use")
        macs_arr, states_arr, flags_arr, ifindex_arr, expiry_arr = _check_fields(
            n, macs, states, flags, ifindex, expiry)
        if n == 0:
            return None
        cdef const int64_t[::1] idx_v = idx
        cdef const uint8_t* mp = _u8p(macs_arr)
        cdef const uint8_t* sp = _u8p(states_arr)
        cdef const uint8_t* fp = _u8p(flags_arr)
        cdef const uint32_t* ip = NULL
        cdef const int64_t* ep = NULL
        cdef const uint32_t[::1] if_v
        cdef const int64_t[::1] ex_v
        if ifindex_arr is not None:
            if_v = ifindex_arr
            ip = &if_v[0]
        if expiry_arr is not None:
            ex_v = expiry_arr
            ep = &ex_v[0]
        cdef Py_ssize_t i
        with nogil:
            for i in range(n):
                _nc_write(&self.t, <Py_ssize_t>idx_v[i],
                          mp + i * MAC48_LEN if mp != NULL else NULL,
                          sp[i] if sp != NULL else -1,
                          fp + i if fp != NULL else NULL,
                          ip + i if ip != NULL else NULL,
                          ep + i if ep != NULL else NULL)
            self.t.updated += <uint64_t>n
        return None

    def delete(self, keys):
        """Remove each key; bool (n,), True where an entry was removed (a repeated key: only its first).

        Freed indices are reused last-in first-out; ``deleted`` counts the removals.

        Reference: fmipfast.reference.ncache.NeighborCache.delete
        """
        keys_arr = _rows(keys, "keys", ADDR_LEN)
        cdef Py_ssize_t n = keys_arr.shape[0]
        out = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return out
        cdef const uint8_t* kp = _u8p(keys_arr)
        cdef uint8_t[::1] out_v = out.view(np.uint8)
        cdef Py_ssize_t i
        with nogil:
            for i in range(n):
                out_v[i] = nc_delete_one(&self.t, kp + i * ADDR_LEN)
        return out

    def expire(self, now_ns):
        """Remove the entries with ``0 < expiry <= now_ns`` that are not STATIC; return how many.

        Entries are removed in ascending index order (their indices are reused last-in first-out).  A
        PROXY entry whose expiry lies in the future survives (docs/design.md §1: a handover's proxy entry
        lives until its lifetime ends).  Kernels never read a clock: the caller passes ``now_ns``
        (docs/conventions.md §2).

        Raises
        ------
        TypeError
            ``now_ns`` is not an integer.
        ValueError
            ``now_ns`` outside 0..2**63-1.

        Reference: fmipfast.reference.ncache.NeighborCache.expire
        """
        now = _index(now_ns)
        if not 0 <= now <= INT64_MAX:
            raise ValueError(f"now_ns must be in 0..{INT64_MAX}, got {now}")
        cdef int64_t now_c = now
        cdef Py_ssize_t removed
        with nogil:
            removed = nc_expire(&self.t, now_c)
        return removed

    # -- Test hooks (compiled core only; tests/test_ncache.py) -----------------------------------

    @property
    def _nslots(self):
        """Size of the slot table (a power of two >= 2 * capacity)."""
        return self.t.mask + 1

    @property
    def _generation(self):
        """How many times the table rehashed under new keys (the hash is _nc_hash(key, seed, generation))."""
        return self.t.generation

    def _home_slot(self, key):
        """Slot the key hashes to (before probing): _nc_hash(key, seed, generation) & (nslots - 1)."""
        cdef const uint8_t[::1] k = key
        _need(k.shape[0], "key", ADDR_LEN)
        return nc_hash(&self.t, &k[0]) & self.t.mask

    def _slot_of(self, key):
        """Slot holding the key, or -1; touches no counter."""
        cdef const uint8_t[::1] k = key
        _need(k.shape[0], "key", ADDR_LEN)
        cdef uint64_t saved = self.t.max_probe
        cdef bint found
        cdef uint64_t pos = _nc_probe(&self.t, &k[0], nc_hash(&self.t, &k[0]), &found)
        self.t.max_probe = saved
        return <int64_t>pos if found else -1

    def _probe_lengths(self):
        """int64 (capacity,): slots a successful lookup of each entry examines (0 where free)."""
        out = np.zeros(self.t.capacity, dtype=np.int64)
        slots = self._slots_arr
        hashes = self._hashes_arr
        nslots = self.t.mask + 1
        for pos in np.flatnonzero(slots >= 0):
            e = slots[pos]
            home = int(hashes[e]) & (nslots - 1)
            out[e] = (pos - home) % nslots + 1
        return out

    def _check_invariants(self):
        """Raise AssertionError unless slots, free stack and arrays agree (tests only)."""
        slots = self._slots_arr
        live = slots[slots >= 0]
        in_use = self._arrays["in_use"]
        assert len(live) == self.t.count == int(in_use.sum())
        assert sorted(live.tolist()) == np.flatnonzero(in_use).tolist()
        free = self._free_arr[: self.t.nfree]
        assert self.t.nfree + self.t.count == self.t.capacity
        assert not in_use[free].any()
        for e in live.tolist():
            assert self._slot_of(self._arrays["keys"][e]) >= 0
        return True


def _siphash24(data, seed):
    """SipHash-2-4 of ``data`` (any length) under the 16-octet ``seed``, as the table computes it.

    Reference: fmipfast.reference.ncache._siphash24
    """
    cdef const uint8_t[::1] d = data
    cdef const uint8_t[::1] s = seed
    _need(s.shape[0], "seed", _NC_SEED_LEN)
    return fmip_nc_siphash24(_data(d), <size_t>d.shape[0], fmip_nc_load_le64(&s[0]), fmip_nc_load_le64(&s[8]))


def _nc_hash(key, seed, generation=0):
    """The table's hash of a 16-octet ``key`` under ``seed`` at ``generation`` (see the module comment).

    Reference: fmipfast.reference.ncache._nc_hash
    """
    cdef const uint8_t[::1] k = _octets(key)
    cdef const uint8_t[::1] s = _octets(seed)
    _need(k.shape[0], "key", ADDR_LEN)
    _need(s.shape[0], "seed", _NC_SEED_LEN)
    gen = _index(generation)
    if not 0 <= gen <= 0xFFFFFFFF:
        raise ValueError(f"generation must be in 0..{0xFFFFFFFF}, got {gen}")
    cdef uint64_t m[5]
    fmip_nc_mix_keys(fmip_nc_load_le64(&s[0]), fmip_nc_load_le64(&s[8]), <uint32_t>gen, m)
    return fmip_nc_mix16(&k[0], m)


def _ncache_consts():
    """The compiled table's probe limit (tests compare it with the reference's)."""
    return {"PROBE_LIMIT": _NC_PROBE_LIMIT}


__all__ += ["NeighborCache"]
