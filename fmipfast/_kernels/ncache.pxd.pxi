# ncache: cdef declarations included by _core.pxd, for embedders that cimport NeighborCache.
#
# Ownership: a NeighborCache is written by one thread only, the engine thread (docs/conventions.md §3); other
# threads and processes may read its arrays but must not call its mutators.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

# The whole table as the nogil kernels see it: raw pointers into the numpy arrays the NeighborCache
# owns (fixed capacity, never reallocated), the slot table, the free-index stack and the counters.
cdef struct nc_table:
    # Entry storage, structure of arrays, `capacity` rows each.
    uint8_t* keys          # [capacity, 16] IPv6 addresses
    uint8_t* macs          # [capacity, 6]
    uint8_t* states        # [capacity] NeighborState
    uint8_t* flags         # [capacity] NeighborFlag
    uint32_t* ifindex      # [capacity]
    int64_t* expiry        # [capacity] ns, 0 = never
    uint8_t* in_use        # [capacity] numpy bool
    uint64_t* hashes       # [capacity] keyed hash of each live key (backward shift, expire)
    # Open addressing: nslots = pow2 >= 2 * capacity, each the index of an entry or -1 (empty).
    int32_t* slots
    uint64_t mask          # nslots - 1
    # Free entry indices as a stack: free_stack[0:nfree]; pop from the top, push freed on top.
    int32_t* free_stack
    Py_ssize_t nfree
    Py_ssize_t capacity
    Py_ssize_t count
    # The seed (two little-endian 64-bit words): SipHash-2-4 key of the hash-key derivation.
    uint64_t k0
    uint64_t k1
    # The multilinear hash keys of the current generation (fmip_nc_mix_keys(k0, k1, generation)).
    uint64_t mk[5]
    uint32_t generation
    uint64_t rehash_mark   # no rehash before `inserted` reaches this (amortisation)
    # Counters (NeighborCache.counters).
    uint64_t inserted
    uint64_t updated
    uint64_t refused_full
    uint64_t lookups
    uint64_t hits
    uint64_t misses
    uint64_t deleted
    uint64_t expired
    uint64_t max_probe


cdef class NeighborCache:
    cdef nc_table t
    cdef object _arrays      # name -> the writable numpy array behind it
    cdef object _views       # name -> its read-only view (what the properties return)
    cdef object _hashes_arr, _slots_arr, _free_arr


# Kernels (_kernels/ncache.pxi)
cdef uint64_t nc_hash(const nc_table* t, const uint8_t* key) noexcept nogil
cdef int64_t nc_find(nc_table* t, const uint8_t* key, uint64_t h) noexcept nogil
cdef int64_t nc_insert_one(nc_table* t, const uint8_t* key, const uint8_t* mac, uint8_t state,
                           const uint8_t* flags, const uint32_t* ifindex, const int64_t* expiry) noexcept nogil
cdef void nc_lookup_batch(nc_table* t, const uint8_t* keys, Py_ssize_t n, int64_t* out) noexcept nogil
cdef bint nc_delete_one(nc_table* t, const uint8_t* key) noexcept nogil
cdef Py_ssize_t nc_expire(nc_table* t, int64_t now_ns) noexcept nogil
