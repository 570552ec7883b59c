"""Neighbor cache: the readable oracle of ``_kernels/ncache.pxi`` (docs/design.md §5, §7).

Ownership and threading (docs/conventions.md §3): a NeighborCache has one writer, the engine thread;
nothing here locks.  Other threads may read the exported arrays (read-only views), never call the methods.

The same API and the same observable behaviour as ``fmipfast._core.NeighborCache``, with a ``dict``
keyed by the 16-octet address as ``bytes`` in place of the compiled open-addressing table:

  * storage is a numpy structure-of-arrays of ``capacity`` entries, free entries all zeros;
  * entry indices come from a free stack, initially ascending and reusing freed indices last-in first-out,
    so both implementations hand out identical indices for the same operation sequence;
  * the table is bounded: a full table refuses a new key (index -1, ``refused_full``) and never evicts;
  * batches are processed row by row in order (a key repeated in one insert batch: the last write wins;
    in one delete batch: only its first occurrence removes);
  * ``expire`` removes entries in ascending index order.

One difference, by nature: ``counters['max_probe']`` is a statistic of the compiled table's probe runs;
the dict has none and reports 0.  The compiled table's hash, ``_nc_hash`` below, is written out here too so
the tests can hold the two to the same function; the dict itself does not need it.

RFC 4861 §5.1 (the neighbor cache), §7.3.2 (its states); the PROXY flag is the NAR's proxy entry for an
NCoA (draft-koodli-mobileip-fastv6-02 §3, docs/design.md §1 step 5).
"""

from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np

from fmipfast.constants import ADDR_LEN, MAC48_LEN, NeighborFlag, NeighborState
from fmipfast.reference.cksum import _need, _octets
from fmipfast.reference.derive import _rows, _same_rows

__all__ = ["NeighborCache"]

_ADDR_LEN = ADDR_LEN
_MAC48_LEN = MAC48_LEN
_SEED_LEN = 16  # the seed: SipHash-2-4 key of the hash-key derivation, 128 bits
_MAX_CAPACITY = 1 << 30  # entry indices stay within int32 in the compiled table
_MAX_STATE = int(NeighborState.PROBE)  # 0 = NONE is not storable
_FLAG_STATIC = int(NeighborFlag.STATIC)  # never expires
_FLAG_ALL = int(sum(NeighborFlag))  # every NeighborFlag bit
_INT64_MAX = (1 << 63) - 1
_MASK64 = (1 << 64) - 1

_COUNTERS = ("inserted", "updated", "refused_full", "lookups", "hits", "misses", "deleted", "expired", "max_probe")


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def _siphash24(data: Any, seed: Any) -> int:
    """SipHash-2-4 (Aumasson & Bernstein 2012) of ``data`` under the 16-octet ``seed``: the hash the
    compiled table keys its slots with.  Words are little-endian, as the paper specifies."""
    msg = bytes(_octets(data))
    key_view = _octets(seed)
    _need(key_view, "seed", _SEED_LEN)
    key = bytes(key_view)
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround() -> None:
        v[0] = (v[0] + v[1]) & _MASK64
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & _MASK64
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & _MASK64
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & _MASK64
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    whole = len(msg) - len(msg) % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(msg[i : i + 8], "little")
        v[3] ^= m
        sipround()
        sipround()
        v[0] ^= m
    b = ((len(msg) & 0xFF) << 56) | int.from_bytes(msg[whole:], "little")
    v[3] ^= b
    sipround()
    sipround()
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _nc_mix_keys(seed: Any, generation: int) -> list[int]:
    """The five 64-bit keys of the table's hash at ``generation``: SipHash-2-4 under ``seed`` of the eight
    octets le32(generation) le32(j), j = 0..4."""
    return [_siphash24(generation.to_bytes(4, "little") + j.to_bytes(4, "little"), seed) for j in range(5)]


def _nc_hash(key: Any, seed: Any, generation: Any = 0) -> int:
    """The compiled table's keyed hash of a 16-octet address (32 bits; slot = hash & (nslots - 1)).

    The multilinear family (Lemire & Kaser 2014) over the address's four little-endian 32-bit words w0..w3:
    h = (m0 + m1 w0 + m2 w1 + m3 w2 + m4 w3) mod 2**64, whose top 32 bits are strongly universal, then the
    murmur3 32-bit finaliser (a bijection) over those bits.  An insert that probes more than
    ``PROBE_LIMIT`` slots makes the compiled table rehash under ``generation + 1``; entry indices, the only
    thing the API shows, do not change.
    """
    view = _octets(key)
    _need(view, "key", _ADDR_LEN)
    _need(_octets(seed), "seed", _SEED_LEN)
    gen = operator.index(generation)
    if not 0 <= gen <= 0xFFFFFFFF:
        raise ValueError(f"generation must be in 0..{0xFFFFFFFF}, got {gen}")
    m = _nc_mix_keys(seed, gen)
    k = bytes(view)
    w = [int.from_bytes(k[i : i + 4], "little") for i in range(0, 16, 4)]
    h = (m[0] + m[1] * w[0] + m[2] * w[1] + m[3] * w[2] + m[4] * w[3]) & _MASK64
    x = h >> 32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def _column(obj: Any, name: str, dtype: Any, n: int) -> np.ndarray:
    """``obj`` as a C-contiguous 1-D array of exactly ``dtype`` with ``n`` elements (TypeError / ValueError
    naming the argument otherwise)."""
    if obj is None:
        raise TypeError(f"{name}: need a numpy {np.dtype(dtype).name} array, got None")
    arr = np.asarray(obj)
    if arr.dtype != dtype:
        raise TypeError(f"{name}: need dtype {np.dtype(dtype).name}, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: need shape (n,), got {tuple(arr.shape)}")
    _same_rows(arr.shape[0], name, n)
    return np.ascontiguousarray(arr)


def _check_fields(n: int, macs: Any, states: Any, flags: Any, ifindex: Any,
                  expiry: Any) -> tuple[np.ndarray | None, ...]:
    """Validate the optional per-entry columns of insert/update; None stays None."""
    if macs is not None:
        macs = _rows(macs, "macs", _MAC48_LEN)
        _same_rows(macs.shape[0], "macs", n)
    if states is not None:
        states = _column(states, "states", np.uint8, n)
        if n and (states.min() < 1 or states.max() > _MAX_STATE):
            bad = states[(states < 1) | (states > _MAX_STATE)][0]
            raise ValueError(f"states: {bad} is not a NeighborState of an entry (1..{_MAX_STATE})")
    if flags is not None:
        flags = _column(flags, "flags", np.uint8, n)
        if n and flags.max() > _FLAG_ALL:
            bad = flags[flags > _FLAG_ALL][0]
            raise ValueError(f"flags: {bad:#04x} has bits outside NeighborFlag ({_FLAG_ALL:#04x})")
    if ifindex is not None:
        ifindex = _column(ifindex, "ifindex", np.uint32, n)
    if expiry is not None:
        expiry = _column(expiry, "expiry", np.int64, n)
        if n and expiry.min() < 0:
            raise ValueError(f"expiry: {expiry.min()} is negative (ns; 0 = never expires)")
    return macs, states, flags, ifindex, expiry


def _int_arg(value: Any, name: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: need an integer, got {type(value).__name__}")
    v = int(value)
    if not low <= v <= high:
        raise ValueError(f"{name}: {v} is not {what}")
    return v


def check_one(key: Any, mac: Any, state: Any, flags: Any, ifindex: Any,
              expiry: Any) -> tuple[bytes, bytes, int, int, int, int]:
    """``NeighborCache.insert_one``'s arguments as (bytes, bytes, int, int, int, int), private copies, or the
    ``TypeError`` / ``ValueError`` naming the first wrong one (both implementations raise these)."""
    kv, mv = _octets(key), _octets(mac)
    _need(kv, "key", _ADDR_LEN)
    _need(mv, "mac", _MAC48_LEN)
    k, m = bytes(kv), bytes(mv)
    st = _int_arg(state, "state", 1, _MAX_STATE, f"a NeighborState of an entry (1..{_MAX_STATE})")
    fl = _int_arg(flags, "flags", 0, _FLAG_ALL, f"made of NeighborFlag bits ({_FLAG_ALL:#04x})")
    ifx = _int_arg(ifindex, "ifindex", 0, (1 << 32) - 1, "a uint32")
    ex = _int_arg(expiry, "expiry", 0, _INT64_MAX, "a time in ns (0 = never expires, below 2**63)")
    return k, m, st, fl, ifx, ex


class NeighborCache:
    """Bounded neighbor cache keyed by 128-bit IPv6 addresses; one writer: the engine thread.

    Ownership and threading (docs/conventions.md §3): only the engine thread calls the methods, lookup/get
    included (they count); other threads may only read the exported arrays.  docs/design.md §5, §7; RFC 4861
    §5.1.  See ``fmipfast._core.NeighborCache`` for the full contract; this class is its oracle.
    """

    def __init__(self, capacity: Any, *, seed: Any = None) -> None:
        cap = operator.index(capacity)
        if not 1 <= cap <= _MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1..{_MAX_CAPACITY}, got {cap}")
        if seed is None:
            seed = os.urandom(_SEED_LEN)
        _need(_octets(seed), "seed", _SEED_LEN)  # unused by the dict, checked alike
        self._capacity = cap
        self._arrays: dict[str, np.ndarray] = {
            "keys": np.zeros((cap, _ADDR_LEN), dtype=np.uint8),
            "macs": np.zeros((cap, _MAC48_LEN), dtype=np.uint8),
            "states": np.zeros(cap, dtype=np.uint8),
            "flags": np.zeros(cap, dtype=np.uint8),
            "ifindex": np.zeros(cap, dtype=np.uint32),
            "expiry": np.zeros(cap, dtype=np.int64),
            "in_use": np.zeros(cap, dtype=np.bool_),
        }
        self._views: dict[str, np.ndarray] = {}
        for name, arr in self._arrays.items():
            view = arr.view()
            view.flags.writeable = False
            self._views[name] = view
        self._index: dict[bytes, int] = {}
        self._free = list(range(cap - 1, -1, -1))  # a stack: pop() gives 0, 1, 2, ...; freed pushed on top
        self._counters = dict.fromkeys(_COUNTERS, 0)

    # -- Sizes, storage and counters -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def keys(self) -> np.ndarray:
        return self._views["keys"]

    @property
    def macs(self) -> np.ndarray:
        return self._views["macs"]

    @property
    def states(self) -> np.ndarray:
        return self._views["states"]

    @property
    def flags(self) -> np.ndarray:
        return self._views["flags"]

    @property
    def ifindex(self) -> np.ndarray:
        return self._views["ifindex"]

    @property
    def expiry(self) -> np.ndarray:
        return self._views["expiry"]

    @property
    def in_use(self) -> np.ndarray:
        return self._views["in_use"]

    @property
    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    # -- Helpers -----------------------------------------------------------------------------------

    def _write(self, e: int, i: int, macs: np.ndarray | None, states: np.ndarray | None, flags: np.ndarray | None,
               ifindex: np.ndarray | None, expiry: np.ndarray | None) -> None:
        a = self._arrays
        if macs is not None:
            a["macs"][e] = macs[i]
        if states is not None:
            a["states"][e] = states[i]
        if flags is not None:
            a["flags"][e] = flags[i]
        if ifindex is not None:
            a["ifindex"][e] = ifindex[i]
        if expiry is not None:
            a["expiry"][e] = expiry[i]

    def _free_entry(self, key: bytes) -> None:
        e = self._index.pop(key)
        for arr in self._arrays.values():
            arr[e] = 0
        self._free.append(e)

    # -- Batch operations ------------------------------------------------------------------------

    def insert(self, keys: Any, macs: Any, states: Any, *, flags: Any = None, ifindex: Any = None,
               expiry: Any = None) -> np.ndarray:
        """Upsert one entry per key in order; int64 indices, -1 where refused because the table is full."""
        keys_arr = _rows(keys, "keys", _ADDR_LEN)
        n = keys_arr.shape[0]
        macs_arr = _rows(macs, "macs", _MAC48_LEN)
        _same_rows(macs_arr.shape[0], "macs", n)
        if states is None:
            raise TypeError("states: need a numpy uint8 array, got None")
        _, states_arr, flags_arr, ifindex_arr, expiry_arr = _check_fields(n, None, states, flags, ifindex, expiry)
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            key = keys_arr[i].tobytes()
            e = self._index.get(key)
            if e is not None:
                self._write(e, i, macs_arr, states_arr, flags_arr, ifindex_arr, expiry_arr)
                self._counters["updated"] += 1
            elif not self._free:
                e = -1
                self._counters["refused_full"] += 1  # docs/design.md §5: refuse and count, never evict
            else:
                e = self._free.pop()
                self._index[key] = e
                self._arrays["keys"][e] = keys_arr[i]
                self._arrays["in_use"][e] = True
                self._write(e, i, macs_arr, states_arr, flags_arr, ifindex_arr, expiry_arr)
                self._counters["inserted"] += 1
            out[i] = e
        return out

    def insert_one(self, key: Any, mac: Any, state: Any, *, flags: Any = 0, ifindex: Any = 0,
                   expiry: Any = 0) -> int:
        """Upsert one entry from scalars: ``key`` (16 octets), ``mac`` (6 octets), ``state`` (NeighborState
        1..5), ``flags`` (NeighborFlag bits), ``ifindex`` (uint32), ``expiry`` (ns, 0 = never); every field is
        written, an update's flags, ifindex and expiry too.  Its index, or -1 when the table is full: what
        ``insert`` of that one row returns, counted the same.  For the control path, which changes one entry at a
        time (no array is made or checked)."""
        k, m, st, fl, ifx, ex = check_one(key, mac, state, flags, ifindex, expiry)
        return int(self.insert(np.frombuffer(k, np.uint8).reshape(1, _ADDR_LEN),
                               np.frombuffer(m, np.uint8).reshape(1, _MAC48_LEN), np.array([st], np.uint8),
                               flags=np.array([fl], np.uint8), ifindex=np.array([ifx], np.uint32),
                               expiry=np.array([ex], np.int64))[0])

    def lookup(self, keys: Any) -> np.ndarray:
        """Entry index of each key, -1 where absent; counts lookups, hits and misses."""
        keys_arr = _rows(keys, "keys", _ADDR_LEN)
        out = np.empty(keys_arr.shape[0], dtype=np.int64)
        for i in range(keys_arr.shape[0]):
            out[i] = self._index.get(keys_arr[i].tobytes(), -1)
        hits = int((out >= 0).sum())
        self._counters["lookups"] += len(out)
        self._counters["hits"] += hits
        self._counters["misses"] += len(out) - hits
        return out

    def get(self, key: Any) -> int:
        """Entry index of one key, counted like lookup; KeyError (with the key as bytes) when absent."""
        view = _octets(key)
        _need(view, "key", _ADDR_LEN)
        k = bytes(view)
        self._counters["lookups"] += 1
        e = self._index.get(k)
        if e is None:
            self._counters["misses"] += 1
            raise KeyError(k)
        self._counters["hits"] += 1
        return e

    def update(self, indices: Any, *, macs: Any = None, states: Any = None, flags: Any = None, ifindex: Any = None,
               expiry: Any = None) -> None:
        """Overwrite the given fields of the entries at ``indices``, in order; ``updated`` counts every row."""
        idx = _column(indices, "indices", np.int64, -1 if indices is None else np.asarray(indices).size)
        n = idx.shape[0]
        if n:
            bad = idx[(idx < 0) | (idx >= self._capacity)]
            if bad.size:
                raise ValueError(f"indices: {bad[0]} is out of range 0..{self._capacity - 1}")
            unused = idx[~self._arrays["in_use"][idx]]
            if unused.size:
                raise ValueError(f"indices: entry {unused[0]} is not in use")
        fields = _check_fields(n, macs, states, flags, ifindex, expiry)
        for i in range(n):
            self._write(int(idx[i]), i, *fields)
        self._counters["updated"] += n

    def delete(self, keys: Any) -> np.ndarray:
        """Remove each key; bool (n,), True where an entry was removed."""
        keys_arr = _rows(keys, "keys", _ADDR_LEN)
        out = np.zeros(keys_arr.shape[0], dtype=np.bool_)
        for i in range(keys_arr.shape[0]):
            key = keys_arr[i].tobytes()
            if key in self._index:
                self._free_entry(key)
                out[i] = True
                self._counters["deleted"] += 1
        return out

    def expire(self, now_ns: Any) -> int:
        """Remove the entries with ``0 < expiry <= now_ns`` that are not STATIC, ascending; return how many."""
        now = operator.index(now_ns)
        if not 0 <= now <= _INT64_MAX:
            raise ValueError(f"now_ns must be in 0..{_INT64_MAX}, got {now}")
        a = self._arrays
        due = a["in_use"] & (a["expiry"] > 0) & (a["expiry"] <= now) & ((a["flags"] & _FLAG_STATIC) == 0)
        removed = 0
        for e in np.flatnonzero(due):
            self._free_entry(a["keys"][e].tobytes())
            removed += 1
        self._counters["expired"] += removed
        return removed
