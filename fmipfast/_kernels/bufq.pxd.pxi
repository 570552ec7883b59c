# bufq: cdef declarations included by _core.pxd, for Cython daemons that cimport the buffer.
#
# PacketBuffer state is one bufq_t: raw pointers into numpy arrays the owning cdef class keeps alive
# (allocated once in __init__, never resized: docs/conventions.md §2), the bounds, and the counters.
# Single writer (docs/conventions.md §3): only the engine thread calls the kernels; nothing locks.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t

cdef enum:
    BQ_NIL = -1  # end of a slot chain (a key's queue or the free list)

ctypedef struct bufq_t:
    uint8_t* arena          # slots * slot_size octets; slot s at arena + s * slot_size
    uint32_t* slot_len      # [slots] octets held in the slot
    int64_t* slot_ts        # [slots] now_ns at push
    int64_t* slot_seq       # [slots] push sequence number (frame i of a call = seq at call start + i)
    int32_t* slot_next      # [slots] next slot of the same key's queue, or of the free list; BQ_NIL ends
    int32_t* key_head       # [max_keys] oldest slot of the key, BQ_NIL when empty
    int32_t* key_tail       # [max_keys] newest slot of the key
    int32_t* key_count      # [max_keys] frames held for the key
    int64_t* key_bytes      # [max_keys] octets held for the key
    int32_t free_head       # first free slot, BQ_NIL when every slot is in use
    int64_t slots
    int64_t slot_size
    int64_t max_keys
    int64_t per_key_packets
    int64_t per_key_bytes
    int64_t lifetime_ns
    int64_t seq             # next push sequence number
    int64_t held            # frames held now (counters["queued"])
    int64_t held_bytes      # octets held now (counters["queued_bytes"])
    int64_t pushed
    int64_t flushed
    int64_t dropped_oldest
    int64_t refused_global
    int64_t dropped_too_big
    int64_t dropped_expired
    int64_t dropped_by_drop

# Kernels.  Keys must be in 0..max_keys-1, frames inside `arena`, now_ns >= 0 (the wrappers check).
# bufq_push writes status[0:n] (0 or a constants.DropReason value); bufq_flush needs room for key_bytes[key] octets and
# key_count[key] entries and returns the number of frames written; drop/expire return frames dropped.
cdef int bufq_push(bufq_t* q, const int32_t* keys, const uint8_t* arena, const int64_t* offsets,
                   const uint32_t* lengths, Py_ssize_t n, int64_t now_ns, uint8_t* status) noexcept nogil
cdef Py_ssize_t bufq_flush(bufq_t* q, int32_t key, int64_t now_ns, uint8_t* out, int64_t* out_offsets,
                           uint32_t* out_lengths) noexcept nogil
cdef Py_ssize_t bufq_drop(bufq_t* q, int32_t key) noexcept nogil
cdef Py_ssize_t bufq_expire(bufq_t* q, int64_t now_ns) noexcept nogil

cdef class PacketBuffer:
    cdef bufq_t q
    cdef object _arrays  # (arena, slot_len, slot_ts, slot_seq, slot_next, key_head, key_tail,
                          #  key_count, key_bytes): the numpy arrays behind q's pointers
    cdef int32_t _key(self, object key) except? -1
