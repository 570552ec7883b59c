"""Longest-prefix-match FIB: the table build shared by both implementations, and the readable oracle of
``_kernels/fib.pxi``.

The compiled lookup is binary search on prefix lengths with markers (Waldvogel, Varghese, Turner and
Plattner, "Scalable High Speed IP Routing Lookups", SIGCOMM 1997, §3):

  * ``lengths`` is the sorted array of the k distinct prefix lengths; a lookup binary-searches it with
    ``mid = (lo + hi) // 2``, so at most ceil(log2(k + 1)) <= 8 probes whatever the number of prefixes;
  * one open-addressing hash table (linear probing, load <= 0.5) holds every prefix and every *marker*,
    keyed by (the address masked to the length, the length).  A prefix of length ``lengths[t]`` leaves a
    marker (itself masked to ``lengths[m]``) at each node m of the binary-search path to t where the search
    must go right (towards longer lengths), so a hit means "a longer match may exist";
  * each entry carries its best matching prefix (``bmp``): the value of the longest prefix of length <= the
    entry's that covers it (its own value for a prefix; -1 when none).  A probe that hits records the bmp
    and goes right, a miss goes left; the last bmp recorded is the answer (Waldvogel §3.3, so no
    backtracking).

:func:`build` computes that table with numpy (shared: ``fmipfast._core.Fib`` copies its arrays into memory
it owns and runs the search in C).  The hash is a keyed multiply-xorshift mix (the finaliser of
MurmurHash3, applied twice) of the masked 128-bit key and the length; the 128-bit key is random unless the
caller gives ``seed``, so the destinations that meet the longest probe runs of a table cannot be computed
offline.  The build records the longest probe run (``max_probe``); the C loop never probes more slots
than that, and the table is never more than half full, so every loop is bounded.

The reference :class:`Fib` looks up differently, on purpose: one ``dict`` per length, longest first (a
linear walk over the lengths), so the two implementations check each other; tests add a third, naive
oracle (``ipaddress`` and a scan of every prefix).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

import numpy as np

from fmipfast.constants import ADDR_LEN

__all__ = ["Fib"]

_ADDR_LEN = ADDR_LEN
_MAX_LEN = 128
_SEED_LEN = 16
_MAX_PREFIXES = 1 << 24  # entries (prefixes + markers) and slots stay within int32
_EMPTY = 0xFF  # length octet of an empty slot (lengths are 0..128)
_MIN_SLOTS = 8
#: Bytes per slot of the compiled table (hi, lo: uint64; bmp: int32; length: uint8; 3 octets padding).
SLOT_BYTES = 24

_U64 = np.uint64
_M64 = (1 << 64) - 1
_FMIX_C1 = _U64(0xFF51AFD7ED558CCD)
_FMIX_C2 = _U64(0xC4CEB9FE1A85EC53)
_LEN_MUL = _U64(0x9E3779B97F4A7C15)


def _mask_words(length: int) -> tuple[int, int]:
    """(high, low) 64-bit halves of the netmask of ``length`` bits."""
    mask = (_M64 << 64 | _M64) ^ ((1 << (_MAX_LEN - length)) - 1)
    return mask >> 64, mask & _M64


_MASK_HI = np.array([_mask_words(n)[0] for n in range(_MAX_LEN + 1)], dtype=np.uint64)
_MASK_LO = np.array([_mask_words(n)[1] for n in range(_MAX_LEN + 1)], dtype=np.uint64)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (Appleby), on uint64 arrays (wrapping multiplication)."""
    h = h ^ (h >> _U64(33))
    h = h * _FMIX_C1
    h = h ^ (h >> _U64(33))
    h = h * _FMIX_C2
    return h ^ (h >> _U64(33))


def _hash(hi: np.ndarray, lo: np.ndarray, length: np.ndarray, k0: int, k1: int) -> np.ndarray:
    """fmix64(hi ^ k0 ^ fmix64(lo ^ k1 ^ length * 0x9E3779B97F4A7C15)); the C kernel computes the same."""
    inner = _fmix64(lo ^ _U64(k1) ^ (length.astype(np.uint64) * _LEN_MUL))
    return _fmix64(hi ^ _U64(k0) ^ inner)


def _hash_one(hi: int, lo: int, length: int, k0: int, k1: int) -> int:
    """:func:`_hash` of one key, with Python integers (tests compare it with the compiled one)."""
    with np.errstate(over="ignore"):
        out = _hash(np.array([hi], np.uint64), np.array([lo], np.uint64), np.array([length]), k0, k1)
    return int(out[0])


# ---------------------------------------------------------------------------------------------------
# Argument checks (fmipfast._core.Fib calls these too, so the messages are the same by construction)


def _array(obj: Any, name: str, dtype: Any, ndim: int, spec: str) -> np.ndarray:
    """``obj`` as an array of exactly ``dtype`` and ``ndim`` dimensions, or TypeError / ValueError naming it."""
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name}: need {spec}, got {type(obj).__name__}")
    if obj.dtype != dtype:
        raise TypeError(f"{name}: need {spec}, got dtype {obj.dtype}")
    if obj.ndim != ndim:
        raise ValueError(f"{name}: need {spec}, got shape {tuple(obj.shape)}")
    return obj


def check_table(prefixes: Any, lengths: Any, values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the constructor's arrays; return C-contiguous copies (the caller may change its own)."""
    p = _array(prefixes, "prefixes", np.uint8, 2, "uint8 [n,16]")
    if p.shape[1] != _ADDR_LEN:
        raise ValueError(f"prefixes: need uint8 [n,16], got shape {tuple(p.shape)}")
    n = p.shape[0]
    if n > _MAX_PREFIXES:
        raise ValueError(f"prefixes: at most {_MAX_PREFIXES} rows, got {n}")
    ln = _array(lengths, "lengths", np.uint8, 1, "uint8 [n]")
    va = _array(values, "values", np.int32, 1, "int32 [n]")
    for arr, name in ((ln, "lengths"), (va, "values")):
        if arr.shape[0] != n:
            raise ValueError(f"{name}: need {n} rows (one per prefix), got {arr.shape[0]}")
    if n:
        bad = np.flatnonzero(ln > _MAX_LEN)
        if bad.size:
            raise ValueError(f"lengths: {ln[bad[0]]} at index {bad[0]} is outside 0..{_MAX_LEN}")
        bad = np.flatnonzero(va < 0)
        if bad.size:
            raise ValueError(f"values: {va[bad[0]]} at index {bad[0]} is negative")
    return np.array(p, order="C"), np.array(ln, order="C"), np.array(va, order="C")


def check_dst(dst: Any, out: Any) -> np.ndarray:
    """Validate lookup's arguments; return ``out`` (a fresh int32 array when None)."""
    spec = "uint8 [m,16] C-contiguous"
    _array(dst, "dst", np.uint8, 2, spec)
    if dst.shape[1] != _ADDR_LEN:
        raise ValueError(f"dst: need {spec}, got shape {tuple(dst.shape)}")
    if not dst.flags.c_contiguous:
        raise ValueError(f"dst: need {spec}, got a non-contiguous array")
    m = dst.shape[0]
    if out is None:
        return np.empty(m, dtype=np.int32)
    spec = f"writable int32 [{m}] C-contiguous"
    _array(out, "out", np.int32, 1, spec)
    if out.shape[0] != m:
        raise ValueError(f"out: need {spec}, got shape {tuple(out.shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out: need {spec}, got a non-contiguous array")
    if not out.flags.writeable:
        raise ValueError(f"out: need {spec}, got a read-only array")
    if m and np.may_share_memory(out, dst):
        raise ValueError("out: must not overlap dst")
    return out


def check_seed(seed: Any) -> tuple[int, int]:
    """The two little-endian 64-bit words of the 16-octet ``seed`` (random when None)."""
    if seed is None:
        seed = os.urandom(_SEED_LEN)
    try:
        raw = memoryview(seed).cast("B")
    except TypeError:
        raise TypeError(f"seed: a bytes-like object is required, not '{type(seed).__name__}'") from None
    if raw.nbytes != _SEED_LEN:
        raise ValueError(f"seed: need {_SEED_LEN} octets, got {raw.nbytes}")
    key = raw.tobytes()
    return int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")


# ---------------------------------------------------------------------------------------------------
# The build


def _words(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) big-endian 64-bit halves of uint8 [n,16] rows, as native uint64."""
    be = rows.view(">u8").reshape(rows.shape[0], 2)
    return be[:, 0].astype(np.uint64), be[:, 1].astype(np.uint64)


def search_path(k: int, target: int) -> list[int]:
    """Indices the binary search over k sorted lengths visits, in order, until it reaches ``target``."""
    lo, hi, path = 0, k - 1, []
    while lo <= hi:
        mid = (lo + hi) // 2
        path.append(mid)
        if mid == target:
            return path
        if mid < target:
            lo = mid + 1
        else:
            hi = mid - 1
    raise AssertionError("target outside the search range")  # pragma: no cover


@dataclass
class Table:
    """The compiled table as numpy arrays (what ``fmipfast._core.Fib`` copies)."""

    lengths: np.ndarray  # uint8 [k], sorted distinct prefix lengths
    slot_hi: np.ndarray  # uint64 [nslots], masked key, high half (native)
    slot_lo: np.ndarray  # uint64 [nslots]
    slot_bmp: np.ndarray  # int32 [nslots]
    slot_len: np.ndarray  # uint8 [nslots], _EMPTY where free
    max_probe: int  # longest probe run of a present key (slots examined), >= 1
    k0: int
    k1: int
    prefixes: int  # n
    markers: int  # entries that are markers only

    @property
    def entries(self) -> int:
        return self.prefixes + self.markers

    @property
    def memory_bytes(self) -> int:
        return self.slot_len.shape[0] * SLOT_BYTES + self.lengths.shape[0]


def _duplicate_check(hi: np.ndarray, lo: np.ndarray, lengths: np.ndarray) -> None:
    n = hi.shape[0]
    if n < 2:
        return
    order = np.lexsort((lo, hi, lengths))  # stable: equal keys keep ascending row order
    same = (lengths[order[1:]] == lengths[order[:-1]]) & (hi[order[1:]] == hi[order[:-1]])
    same &= lo[order[1:]] == lo[order[:-1]]
    if same.any():
        pos = np.flatnonzero(same)
        later, earlier = order[pos + 1], order[pos]
        j = int(np.argmin(later))
        row, first = int(later[j]), int(earlier[j])
        addr = IPv6Address((int(hi[row]) << 64) | int(lo[row]))
        raise ValueError(f"prefixes: row {row} duplicates row {first} ({addr}/{int(lengths[row])})")


def _find(table_entry: np.ndarray, ent_hi: np.ndarray, ent_lo: np.ndarray, ent_len: np.ndarray, mask: int,
          max_probe: int, k0: int, k1: int, qh: np.ndarray, ql: np.ndarray, qlen: np.ndarray) -> np.ndarray:
    """Vectorised probe of the table under construction: entry index of each query key, -1 if absent."""
    res = np.full(qh.shape[0], -1, dtype=np.int64)
    active = np.arange(qh.shape[0])
    pos = (_hash(qh, ql, qlen, k0, k1) & _U64(mask)).astype(np.int64)
    for _ in range(max_probe):
        if not active.size:
            break
        e = table_entry[pos]
        live = e >= 0
        ec = np.where(live, e, 0)
        match = live & (ent_len[ec] == qlen[active]) & (ent_hi[ec] == qh[active]) & (ent_lo[ec] == ql[active])
        res[active[match]] = e[match]
        cont = live & ~match
        active, pos = active[cont], (pos[cont] + 1) & mask
    return res


def build(prefixes: np.ndarray, lengths: np.ndarray, values: np.ndarray, k0: int, k1: int) -> Table:
    """The Waldvogel table of already checked arrays (see the module docstring); ValueError on a duplicate."""
    with np.errstate(over="ignore"):
        return _build(prefixes, lengths, values, k0, k1)


def _build(prefixes: np.ndarray, lengths: np.ndarray, values: np.ndarray, k0: int, k1: int) -> Table:
    n = prefixes.shape[0]
    hi, lo = _words(prefixes)
    hi &= _MASK_HI[lengths]
    lo &= _MASK_LO[lengths]
    _duplicate_check(hi, lo, lengths)
    dist = np.unique(lengths).astype(np.uint8)
    k = dist.shape[0]
    rank = np.zeros(_MAX_LEN + 1, dtype=np.int64)
    rank[dist] = np.arange(k)

    # Markers: for the prefixes of each length, their keys masked to every length where the binary search
    # towards theirs goes right.
    parts_hi, parts_lo, parts_len = [hi], [lo], [lengths.astype(np.uint8)]
    by_rank = rank[lengths]
    for t in range(k):
        marks = [m for m in search_path(k, t)[:-1] if m < t]
        if not marks:
            continue
        rows = np.flatnonzero(by_rank == t)
        for m in marks:
            ml = int(dist[m])
            parts_hi.append(hi[rows] & _MASK_HI[ml])
            parts_lo.append(lo[rows] & _MASK_LO[ml])
            parts_len.append(np.full(rows.shape[0], ml, dtype=np.uint8))
    all_hi, all_lo, all_len = np.concatenate(parts_hi), np.concatenate(parts_lo), np.concatenate(parts_len)
    is_marker = np.arange(all_hi.shape[0]) >= n
    # One entry per distinct (length, key); a prefix wins over a marker of the same key (sorted first).
    order = np.lexsort((is_marker, all_lo, all_hi, all_len))
    s_hi, s_lo, s_len = all_hi[order], all_lo[order], all_len[order]
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1]) | (s_len[1:] != s_len[:-1])
    keep = order[first]
    ent_hi, ent_lo, ent_len = all_hi[keep], all_lo[keep], all_len[keep]
    ent_bmp = np.full(keep.shape[0], -1, dtype=np.int32)
    real = keep < n
    ent_bmp[real] = values[keep[real]]
    entries = keep.shape[0]

    # Open addressing, filled in rounds: every unplaced entry tries its current slot; the lowest entry
    # index wins a free slot, the rest move one slot on (a valid linear-probing table: each entry's run
    # from its home slot to its slot is occupied).
    nslots = _MIN_SLOTS
    while nslots < 2 * entries:
        nslots *= 2
    mask = nslots - 1
    table_entry = np.full(nslots, -1, dtype=np.int64)
    home = (_hash(ent_hi, ent_lo, ent_len, k0, k1) & _U64(mask)).astype(np.int64)
    pending, pos = np.arange(entries), home.copy()
    while pending.size:
        free = table_entry[pos] < 0
        cand_pos = pos[free]
        won_pos, first_idx = np.unique(cand_pos, return_index=True)
        winners = pending[free][first_idx]
        table_entry[won_pos] = winners
        placed = np.zeros(pending.shape[0], dtype=bool)
        placed[np.flatnonzero(free)[first_idx]] = True
        pending, pos = pending[~placed], (pos[~placed] + 1) & mask
    slot_of = np.empty(entries, dtype=np.int64)
    occupied = np.flatnonzero(table_entry >= 0)
    slot_of[table_entry[occupied]] = occupied
    max_probe = int((((slot_of - home) & mask) + 1).max()) if entries else 1

    # The bmp of a marker: the longest prefix, of length < its own, that covers it.  Search as a lookup
    # of the marker's key would, but treating every length >= the marker's as a miss; lengths in ascending
    # order, so every entry a search hits already has its final bmp.
    ent_rank = rank[ent_len]
    for t in range(1, k):
        sel = np.flatnonzero(~real & (ent_rank == t))
        if not sel.size:
            continue
        qh, ql = ent_hi[sel], ent_lo[sel]
        best = np.full(sel.shape[0], -1, dtype=np.int32)
        lo_i = np.zeros(sel.shape[0], dtype=np.int64)
        hi_i = np.full(sel.shape[0], k - 1, dtype=np.int64)
        while True:
            act = np.flatnonzero(lo_i <= hi_i)
            if not act.size:
                break
            mid = (lo_i[act] + hi_i[act]) // 2
            longer = mid >= t  # the full search's path, with lengths >= the marker's as misses
            hi_i[act[longer]] = mid[longer] - 1
            act, mid = act[~longer], mid[~longer]
            if not act.size:
                continue
            ml = dist[mid]
            e = _find(table_entry, ent_hi, ent_lo, ent_len, mask, max_probe, k0, k1,
                      qh[act] & _MASK_HI[ml], ql[act] & _MASK_LO[ml], ml)
            hit = e >= 0
            best[act[hit]] = ent_bmp[e[hit]]
            lo_i[act[hit]] = mid[hit] + 1
            hi_i[act[~hit]] = mid[~hit] - 1
        ent_bmp[sel] = best

    slot_len = np.full(nslots, _EMPTY, dtype=np.uint8)
    slot_hi = np.zeros(nslots, dtype=np.uint64)
    slot_lo = np.zeros(nslots, dtype=np.uint64)
    slot_bmp = np.full(nslots, -1, dtype=np.int32)
    e = table_entry[occupied]
    slot_len[occupied], slot_hi[occupied], slot_lo[occupied], slot_bmp[occupied] = (
        ent_len[e], ent_hi[e], ent_lo[e], ent_bmp[e])
    return Table(dist, slot_hi, slot_lo, slot_bmp, slot_len, max_probe, k0, k1, n, entries - int(real.sum()))


# ---------------------------------------------------------------------------------------------------
# The reference


class Fib:
    """Longest-prefix-match table of IPv6 prefixes, immutable once built.

    ``Fib(prefixes, lengths, values)``: ``prefixes`` uint8 [n,16], ``lengths`` uint8 [n] in 0..128,
    ``values`` int32 [n] >= 0.  Host bits beyond each length are ignored.  A duplicate (same masked prefix
    and length) is a ValueError naming both rows.  ``lookup(dst)`` gives, for each destination, the value
    of the longest matching prefix, -1 where none matches.  See ``fmipfast._core.Fib``; this class is its
    oracle: it builds the same table (same checks, same ``memory_bytes``) but looks up in one dict per
    length, longest length first.
    """

    def __init__(self, prefixes: Any, lengths: Any, values: Any, *, seed: Any = None) -> None:
        k0, k1 = check_seed(seed)
        p, ln, va = check_table(prefixes, lengths, values)
        self._table = build(p, ln, va, k0, k1)
        hi, lo = _words(p)
        hi &= _MASK_HI[ln]
        lo &= _MASK_LO[ln]
        self._by_len: list[tuple[int, int, int, dict[tuple[int, int], int]]] = []
        for length in sorted(set(ln.tolist()), reverse=True):
            rows = np.flatnonzero(ln == length)
            d = dict(zip(zip(hi[rows].tolist(), lo[rows].tolist()), va[rows].tolist()))
            mh, ml = _mask_words(length)
            self._by_len.append((length, mh, ml, d))

    @property
    def size(self) -> int:
        """Number of prefixes."""
        return self._table.prefixes

    @property
    def memory_bytes(self) -> int:
        """Bytes of the compiled lookup table (slots and the length array), the same in both implementations."""
        return self._table.memory_bytes

    def lookup(self, dst: Any, out: Any = None) -> np.ndarray:
        """int32 [m]: the value of the longest prefix matching each row of ``dst`` (uint8 [m,16]
        C-contiguous), -1 where none does; written into ``out`` (int32 [m]) when given."""
        res = check_dst(dst, out)
        hi, lo = _words(dst)
        his, los = hi.tolist(), lo.tolist()
        for i in range(dst.shape[0]):
            found = -1
            for _length, mh, ml, d in self._by_len:
                v = d.get((his[i] & mh, los[i] & ml))
                if v is not None:
                    found = v
                    break
            res[i] = found
        return res

    def __repr__(self) -> str:
        return f"Fib(size={self.size}, lengths={self._table.lengths.shape[0]}, memory_bytes={self.memory_bytes})"
