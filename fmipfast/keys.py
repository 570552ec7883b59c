"""The handover buffer's key space: a bounded pool of keys shared by the NAR's protocol machine and the engine.

The engine's :class:`PacketBuffer` holds the frames of each MN mid-handover under a small integer key in
``0 .. capacity - 1``.  The contract between the two sides that share it:

* **who allocates** — the NAR machine (``fmipfast.ar.AccessRouter``) takes a key with :meth:`KeyPool.acquire`
  when it admits a handover, before it emits the ``ProxyAdd`` that names it;
* **who frees** — the driver that carries out ``ProxyAdd`` owns the key from then on: the engine returns it
  with :meth:`KeyPool.release` once nothing refers to the buffer any more (the proxy entries are removed or
  expired, the buffer was flushed after the Attach, the route-switch hold ended).  A ``ProxyAdd`` that could
  not install an entry returns its key at once;
* **what exhaustion returns** — :meth:`acquire` returns ``None``; the machine answers the HI with a Handover
  Error "insufficient resources" and counts it (``refused_no_buffer_key``).  Nothing raises.

Releasing a key that is not in use is counted (``double_release``) and otherwise ignored, so a late
``BufferDrop`` after a removal cannot free a key that someone else has taken meanwhile.

Ownership: one thread (the engine's) acquires and releases; no locking.
"""

from __future__ import annotations

from collections import deque

__all__ = ["KeyPool"]


class KeyPool:
    """Keys ``0 .. capacity - 1``, handed out least recently released first: a key just returned is the last
    to be reused, so a stale reference to it (a late ``BufferDrop``) meets a free key, not a new owner's."""

    __slots__ = ("capacity", "_free", "_used", "acquired", "released", "exhausted", "double_release")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 1 << 24:
            raise ValueError(f"capacity: need an integer in 1..{1 << 24}, got {capacity!r}")
        self.capacity = capacity
        self._free = deque(range(capacity))
        self._used: set[int] = set()
        self.acquired = 0
        self.released = 0
        self.exhausted = 0
        self.double_release = 0

    def acquire(self) -> int | None:
        """A free key, or None when all ``capacity`` keys are in use (counted ``exhausted``)."""
        if not self._free:
            self.exhausted += 1
            return None
        key = self._free.popleft()
        self._used.add(key)
        self.acquired += 1
        return key

    def release(self, key: int) -> bool:
        """Return ``key`` to the pool; False (counted) if it was not in use."""
        if key not in self._used:
            self.double_release += 1
            return False
        self._used.remove(key)
        self._free.append(key)
        self.released += 1
        return True

    def claim(self, key: int) -> bool:
        """Mark a key chosen by the caller as in use (True if it was free).  For drivers that pick keys
        themselves; a claimed key is released like an acquired one."""
        if not 0 <= key < self.capacity or key in self._used:
            return False
        self._free.remove(key)
        self._used.add(key)
        self.acquired += 1
        return True

    def in_use(self, key: int) -> bool:
        return key in self._used

    def __len__(self) -> int:
        """Keys in use."""
        return len(self._used)

    def counters(self) -> dict[str, int]:
        return {"keys_capacity": self.capacity, "keys_in_use": len(self._used), "keys_acquired": self.acquired,
                "keys_released": self.released, "keys_exhausted": self.exhausted,
                "keys_double_release": self.double_release}
