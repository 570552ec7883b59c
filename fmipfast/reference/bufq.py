"""PacketBuffer: bounded per-key FIFO queues of frames, the readable oracle of ``_kernels/bufq.pxi``.

docs/design.md §1 step 5 and §5 "Buffers": the NAR buffers packets for a mobile node mid-handover (tunnelled ones
and ones sent to the NCoA) in one bounded queue per MN, and flushes them in order when the MN attaches
(step 6).  Bounds and drop policy, each counted:

* a frame longer than ``slot_size`` (or than ``per_key_bytes``: it could never be queued) is refused with
  ``DropReason.FRAME_TOO_BIG`` (``dropped_too_big``);
* a key at its packet cap (``per_key_packets``) or byte cap (``per_key_bytes``) drops its OLDEST frames
  until the new one fits, and queues the new one: RFC 4861 §7.2.2 ("the oldest packet SHOULD be
  discarded"), Linux ``__neigh_event_send`` on ``arp_queue`` (``dropped_oldest``, reason BUFFER_FULL);
* no free slot (the global cap ``slots``): the oldest frame of the SAME key is dropped if it has one
  (``dropped_oldest``), otherwise the new frame is refused with BUFFER_FULL (``refused_global``): one MN's
  burst never evicts another MN's packets;
* frames older than ``lifetime_ns`` (``now_ns - arrival > lifetime_ns``) are dropped at ``flush`` and
  ``expire`` (BUFFER_EXPIRED, ``dropped_expired``); ``drop(key)`` discards a queue (``dropped_by_drop``).

Conservation: ``pushed == queued + flushed + dropped_oldest + refused_global + dropped_too_big +
dropped_expired + dropped_by_drop`` at every moment (``queued`` is the number of frames held now).

``push`` returns one status per frame: 0 if the frame is held when ``push`` returns, else its DropReason
(a frame queued and then evicted as the oldest by a later frame of the same call reports BUFFER_FULL).

Ownership/threading: single writer (docs/conventions.md §3).  Only the engine thread calls the mutators; nothing
here locks.  Time comes in as ``now_ns`` (non-negative int64); nothing reads a clock (docs/conventions.md §2).
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Any

import numpy as np

from fmipfast.constants import DropReason

__all__ = ["PacketBuffer"]

_I64_MAX = 2**63 - 1
_I32_MAX = 2**31 - 1
_U32_MAX = 2**32 - 1

COUNTERS = (
    "pushed",
    "queued",
    "queued_bytes",
    "flushed",
    "dropped_oldest",
    "refused_global",
    "dropped_too_big",
    "dropped_expired",
    "dropped_by_drop",
)


# ---- Argument checks shared with reference/rewrite.py; word for word those of the compiled core. ---------


def as_array(obj: Any, name: str, dtype: Any, ndim: int | None = 1, *, writable: bool = False) -> np.ndarray:
    """``obj`` as a C-contiguous numpy array of exactly ``dtype`` and ``ndim`` dimensions.

    A non-numpy bytes-like object is viewed as uint8.  Wrong dtype or a non-array -> TypeError; wrong number
    of dimensions -> ValueError; ``writable`` and read-only -> TypeError; ``writable`` and not C-contiguous
    -> ValueError (a copy would lose the in-place write).  Read-only inputs are copied to contiguous form.
    """
    want = np.dtype(dtype)
    if obj is None:
        raise TypeError(f"{name}: need a numpy {want} array, got None")
    if isinstance(obj, np.ndarray):
        arr = obj
    elif want == np.uint8:
        try:
            arr = np.frombuffer(obj, dtype=np.uint8)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}: need a bytes-like object or a numpy uint8 array, got {type(obj).__name__}"
            ) from None
    else:
        arr = np.asarray(obj)
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
    return np.ascontiguousarray(arr)


def check_count(arr: np.ndarray, name: str, n: int, other: str) -> None:
    """``arr`` has ``n`` entries (as many as ``other``)."""
    if arr.shape[0] != n:
        raise ValueError(f"{name}: {arr.shape[0]} entries, {other} has {n}")


def check_frames(arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
    """Every frame ``arena[offsets[i]:offsets[i] + lengths[i]]`` lies inside the arena (counts already equal)."""
    size = arena.shape[0]
    for i in range(offsets.shape[0]):
        off, length = int(offsets[i]), int(lengths[i])
        if off < 0 or off + length > size:
            raise ValueError(f"frame {i}: offset {off} + length {length} runs past the {size}-octet arena")


def check_batch(arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
    """Validate a batch up front (docs/conventions.md §2): equal counts, every frame inside the arena."""
    n = offsets.shape[0]
    check_count(lengths, "lengths", n, "offsets")
    check_frames(arena, offsets, lengths)
    return n


def int_arg(value: Any, name: str, low: int, high: int) -> int:
    """``value`` as an int in ``low..high``: TypeError for non-integers, ValueError when out of range."""
    value = operator.index(value)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} outside {low}..{high}")
    return value


class _Frame:
    __slots__ = ("data", "ts", "seq")

    def __init__(self, data: bytes, ts: int, seq: int) -> None:
        self.data = data
        self.ts = ts
        self.seq = seq


class PacketBuffer:
    """Bounded per-key FIFO queues of frames in one preallocated arena (docs/design.md §5 "Buffers").

    Parameters (keyword only)
    -------------------------
    slots : int, default 4096
        Frames held at most, over all keys (the global cap).
    slot_size : int, default 2048
        Longest frame held, in octets; the arena is ``slots * slot_size`` octets.
    max_keys : int, default 1024
        Keys are ``0 .. max_keys - 1`` (one per MN mid-handover; the engine maps MNs to keys).
    per_key_packets, per_key_bytes : int, default 64 and 65536
        Per-key caps; reaching one drops that key's oldest frame (RFC 4861 §7.2.2).
    lifetime_ns : int, default 3_000_000_000
        A frame older than this at ``flush`` / ``expire`` is dropped as BUFFER_EXPIRED.

    Reference implementation of ``fmipfast._core.PacketBuffer``.
    """

    def __init__(
        self,
        *,
        slots: int = 4096,
        slot_size: int = 2048,
        max_keys: int = 1024,
        per_key_packets: int = 64,
        per_key_bytes: int = 65536,
        lifetime_ns: int = 3_000_000_000,
    ) -> None:
        self._slots = int_arg(slots, "slots", 1, _I32_MAX)
        self._slot_size = int_arg(slot_size, "slot_size", 1, _U32_MAX)
        self._max_keys = int_arg(max_keys, "max_keys", 1, _I32_MAX)
        self._per_key_packets = int_arg(per_key_packets, "per_key_packets", 1, _I32_MAX)
        self._per_key_bytes = int_arg(per_key_bytes, "per_key_bytes", 1, _I64_MAX)
        self._lifetime_ns = int_arg(lifetime_ns, "lifetime_ns", 0, _I64_MAX)
        self._queues: list[deque[_Frame]] = [deque() for _ in range(self.max_keys)]
        self._bytes = [0] * self.max_keys
        self._held = 0
        self._held_bytes = 0
        self._seq = 0
        self._c = dict.fromkeys(COUNTERS, 0)

    # ---- queries (the bounds are read-only: the arena is sized once, docs/conventions.md §2) ---------------

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def slot_size(self) -> int:
        return self._slot_size

    @property
    def max_keys(self) -> int:
        return self._max_keys

    @property
    def per_key_packets(self) -> int:
        return self._per_key_packets

    @property
    def per_key_bytes(self) -> int:
        return self._per_key_bytes

    @property
    def lifetime_ns(self) -> int:
        return self._lifetime_ns

    def _key(self, key: Any) -> int:
        key = operator.index(key)
        if not 0 <= key < self.max_keys:
            raise ValueError(f"key {key} outside 0..{self.max_keys - 1}")
        return key

    def queued(self, key: Any) -> int:
        """Frames held for ``key``."""
        return len(self._queues[self._key(key)])

    def queued_bytes(self, key: Any) -> int:
        """Octets held for ``key``."""
        return self._bytes[self._key(key)]

    def __len__(self) -> int:
        return self._held

    @property
    def counters(self) -> dict[str, int]:
        """Counters since creation (``queued``, ``queued_bytes``: held now).  See the module docstring."""
        out = dict(self._c)
        out["queued"] = self._held
        out["queued_bytes"] = self._held_bytes
        return out

    # ---- mutators ---------------------------------------------------------------------------------------

    def _evict_oldest(self, key: int, status: np.ndarray | None, seq0: int) -> None:
        frame = self._queues[key].popleft()
        self._bytes[key] -= len(frame.data)
        self._held -= 1
        self._held_bytes -= len(frame.data)
        self._c["dropped_oldest"] += 1
        if status is not None and frame.seq >= seq0:
            status[frame.seq - seq0] = DropReason.BUFFER_FULL  # queued earlier in this very call

    def push(self, keys: Any, arena: Any, offsets: Any, lengths: Any, now_ns: Any) -> np.ndarray:
        """Queue frame ``i`` (``arena[offsets[i]:offsets[i] + lengths[i]]``) under ``keys[i]``, in order.

        Returns uint8[n]: 0 if the frame is held when push returns, else its DropReason (FRAME_TOO_BIG,
        BUFFER_FULL).  ValueError (nothing queued) for a key outside 0..max_keys-1 or a frame outside the
        arena; TypeError/ValueError naming the argument for a wrong dtype or shape.
        """
        keys_a = as_array(keys, "keys", np.int32)
        arena_a = as_array(arena, "arena", np.uint8)
        offsets_a = as_array(offsets, "offsets", np.int64)
        lengths_a = as_array(lengths, "lengths", np.uint32)
        n = offsets_a.shape[0]
        check_count(lengths_a, "lengths", n, "offsets")
        check_count(keys_a, "keys", n, "offsets")
        now = int_arg(now_ns, "now_ns", 0, _I64_MAX)
        check_frames(arena_a, offsets_a, lengths_a)
        for i in range(n):
            if not 0 <= keys_a[i] < self.max_keys:
                raise ValueError(f"keys[{i}]: key {int(keys_a[i])} outside 0..{self.max_keys - 1}")
        status = np.zeros(n, dtype=np.uint8)
        seq0 = self._seq
        self._seq += n
        for i in range(n):
            key, off, length = int(keys_a[i]), int(offsets_a[i]), int(lengths_a[i])
            self._c["pushed"] += 1
            if length > self.slot_size or length > self.per_key_bytes:
                status[i] = DropReason.FRAME_TOO_BIG
                self._c["dropped_too_big"] += 1
                continue
            queue = self._queues[key]
            # Per-key caps: drop the oldest of this key until the new frame fits (RFC 4861 §7.2.2).
            while queue and (len(queue) >= self.per_key_packets or self._bytes[key] + length > self.per_key_bytes):
                self._evict_oldest(key, status, seq0)
            # Global cap: take this key's own oldest slot, never another key's.
            if self._held >= self.slots:
                if queue:
                    self._evict_oldest(key, status, seq0)
                else:
                    status[i] = DropReason.BUFFER_FULL
                    self._c["refused_global"] += 1
                    continue
            queue.append(_Frame(arena_a[off : off + length].tobytes(), now, seq0 + i))
            self._bytes[key] += length
            self._held += 1
            self._held_bytes += length
        return status

    def flush(self, key: Any, now_ns: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Empty ``key``'s queue: its unexpired frames as a packed batch in arrival order.

        Returns ``(arena uint8[m], offsets int64[k], lengths uint32[k])``; frames older than lifetime_ns
        are dropped (BUFFER_EXPIRED) instead.
        """
        key = self._key(key)
        now = int_arg(now_ns, "now_ns", 0, _I64_MAX)
        out: list[bytes] = []
        for frame in self._queues[key]:
            if now - frame.ts > self.lifetime_ns:
                self._c["dropped_expired"] += 1
            else:
                out.append(frame.data)
                self._c["flushed"] += 1
        self._held -= len(self._queues[key])
        self._held_bytes -= self._bytes[key]
        self._queues[key].clear()
        self._bytes[key] = 0
        lengths = np.array([len(d) for d in out], dtype=np.uint32)
        offsets = np.zeros(len(out), dtype=np.int64)
        if out:
            offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
        arena = np.frombuffer(b"".join(out), dtype=np.uint8).copy()
        return arena, offsets, lengths

    def drop(self, key: Any) -> int:
        """Discard ``key``'s queue (handover failed or ended); returns the frames dropped (``dropped_by_drop``)."""
        key = self._key(key)
        n = len(self._queues[key])
        self._held -= n
        self._held_bytes -= self._bytes[key]
        self._queues[key].clear()
        self._bytes[key] = 0
        self._c["dropped_by_drop"] += n
        return n

    def expire(self, now_ns: Any) -> int:
        """Drop every frame, of every key, older than lifetime_ns at ``now_ns``; returns how many."""
        now = int_arg(now_ns, "now_ns", 0, _I64_MAX)
        total = 0
        for key, queue in enumerate(self._queues):
            keep = deque(f for f in queue if now - f.ts <= self.lifetime_ns)
            gone = len(queue) - len(keep)
            if gone:
                gone_bytes = self._bytes[key] - sum(len(f.data) for f in keep)
                self._queues[key] = keep
                self._bytes[key] -= gone_bytes
                self._held -= gone
                self._held_bytes -= gone_bytes
                total += gone
        self._c["dropped_expired"] += total
        return total

    def __repr__(self) -> str:
        return (
            f"PacketBuffer(slots={self.slots}, slot_size={self.slot_size}, max_keys={self.max_keys}, "
            f"per_key_packets={self.per_key_packets}, per_key_bytes={self.per_key_bytes}, "
            f"lifetime_ns={self.lifetime_ns}; held={self._held})"
        )
