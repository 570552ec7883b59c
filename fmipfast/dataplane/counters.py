"""The engine's books: what it counts, in int64 arrays, and how it reports what went wrong.

A :class:`Ledger` holds one int64 row per :class:`~fmipfast.constants.EngineCounter` (received, the
dispositions, the control-path work) and one per :class:`~fmipfast.constants.DropReason`.  The forwarding
node adds its drops into the ledger's drop row in place (a uint64 view of the same memory: the node's form);
Python adds what it decides per block with one scalar add per counter through a memoryview (a numpy call
costs ten times a scalar add at these sizes, so vector adds are kept for per-frame vectors: a kernel's
statuses go in with one ``bincount``).  :class:`Books` holds the two ledgers — the main one, whose terms
satisfy the conservation equation (docs/design.md §5), and the second pass of frames leaving a queue — and
which one frames are booked in now.  ``Engine.counters`` is a :class:`CounterView`: a live ``dict`` face of
the main ledger's counts.

:class:`Faults` counts and logs, rate-limited, what the engine catches instead of letting it out of a loop
(docs/conventions.md §8).

Ownership: the engine's thread writes the ledgers; other threads may read the arrays (single writer,
docs/conventions.md §3).

May import: constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from fmipfast.constants import DropReason, EngineCounter

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

__all__ = ["COUNTERS", "ERROR_LOG_INTERVAL_NS", "Books", "CounterView", "Faults", "Ledger", "RateLimitedLog",
           "log"]

log = logging.getLogger("fmipfast.engine")

#: The counters' names, in row order (``Engine.counters``'s keys).
COUNTERS = tuple(c.name.lower() for c in EngineCounter)
#: At most one log line per this interval for each kind of unexpected error (the rest are counted).
ERROR_LOG_INTERVAL_NS = 1_000_000_000

# The rows as plain ints for the per-batch path (an IntEnum attribute costs more than the add it feeds).
(RECEIVED, FORWARDED, TUNNELLED, DECAPSULATED, BUFFERED, QUEUED_RESOLVE, DELIVERED, DROPPED, ORIGINATED, FLUSHED,
 RESOLVED_SENT, CSUM_COMPLETED, ICMP_ERRORS_SENT, ICMP_ERRORS_LIMITED, NS_SENT, NA_SENT, RA_SENT, ECHO_REPLIES,
 CONTROL_UNHANDLED, RECEIVED_INNER, REORDER_HELD, REORDER_RELEASED, ORIGINATED_QUEUED, ORIGINATED_DROPPED,
 ORIGINATED_UNRESOLVED, CONTROL_ERRORS, INTERNAL_ERRORS, RA_LIMITED, ND_LEARN_LIMITED) = (int(c) for c in EngineCounter)
_REASONS = len(DropReason)
_INTERNAL_ERROR = int(DropReason.INTERNAL_ERROR)
_REASON_NAMES = tuple(r.name.lower() for r in DropReason)

_T = TypeVar("_T")


class CounterView(dict[str, int]):
    """A live ``dict`` over an int64 array of counts, one name per row: reads and writes go to the array, so a
    reference kept across batches sees the current values, and ``json.dumps``, ``dict()``, ``{**view}``,
    ``dataclasses.asdict``, ``==`` and ``repr`` see exactly what :meth:`items` says.  The dict's own storage
    maps each name to its row (``in``, ``len`` and the key order come from it).  Names are fixed: an unknown
    one is a ``KeyError``, and nothing can be removed.  ``copy()``, pickling and ``copy.copy`` give a plain
    ``dict`` of the values at that moment.

    ``CounterView(pairs)`` (what ``dataclasses.asdict`` calls) makes a view over an array of its own."""

    __slots__ = ("_counts", "_rows")

    def __init__(self, items: Mapping[str, int] | Iterable[tuple[str, int]] = (), *,
                 names: Sequence[str] | None = None, counts: np.ndarray | None = None) -> None:
        if counts is None:
            values = dict(items)
            names = list(values)
            counts = np.array([int(v) for v in values.values()], dtype=np.int64)
        if names is None or counts.dtype != np.int64 or counts.shape != (len(names),):
            raise ValueError("CounterView: need one int64 row per name")
        super().__init__((name, row) for row, name in enumerate(names))
        self._counts = counts
        self._rows = counts.data  # a memoryview: Python ints in and out

    def __getitem__(self, name: str) -> int:
        return self._rows[dict.__getitem__(self, name)]  # type: ignore[no-any-return]

    def __setitem__(self, name: str, value: int) -> None:
        self._rows[dict.__getitem__(self, name)] = int(value)

    def __delitem__(self, name: str) -> None:
        raise TypeError("the engine's counters cannot be removed")

    def __iter__(self) -> Iterator[str]:
        # defined here, not inherited: dict's own copy path (dict(), {**view}, update) then reads __getitem__
        return dict.__iter__(self)

    def __repr__(self) -> str:
        return repr(self.copy())

    def __eq__(self, other: object) -> bool:
        return self.copy() == other if isinstance(other, Mapping) else NotImplemented

    def __ne__(self, other: object) -> bool:
        return self.copy() != other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (self.copy(),)

    def __or__(self, other: Any) -> Any:
        return self.copy() | other

    def __ror__(self, other: Any) -> Any:
        return other | self.copy()

    def __ior__(self, other: Any) -> CounterView:  # type: ignore[override,misc]
        self.update(other)
        return self

    def copy(self) -> dict[str, int]:
        return dict(zip(dict.keys(self), self._rows.tolist()))

    @overload
    def get(self, name: str, default: None = None, /) -> int | None: ...
    @overload
    def get(self, name: str, default: int, /) -> int: ...
    @overload
    def get(self, name: str, default: _T, /) -> int | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        row = dict.get(self, name)
        return default if row is None else self._rows[row]

    def items(self) -> dict_items[str, int]:
        return self.copy().items()

    def values(self) -> dict_values[str, int]:
        return self.copy().values()

    def update(self, *args: Any, **kwargs: int) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def setdefault(self, name: str, default: int = 0, /) -> int:
        return self[name]

    def pop(self, *args: Any) -> Any:
        raise TypeError("the engine's counters cannot be removed")

    def popitem(self) -> tuple[str, int]:
        raise TypeError("the engine's counters cannot be removed")

    def clear(self) -> None:
        raise TypeError("the engine's counters cannot be removed")


class Ledger:
    """One set of books: ``counts`` (int64, a row per EngineCounter) and ``drops`` (int64, a row per DropReason).
    ``c`` and ``d`` are memoryviews of the two (scalar adds with Python ints); ``node_drops`` and
    ``node_counts`` are ``drops`` and ``counts`` as the uint64 arrays the forwarding node adds into (its drops
    by reason; each block's received, dropped, held, completed, buffered, decapsulated); ``view`` the live
    dict of the counts."""

    __slots__ = ("counts", "drops", "c", "d", "node_drops", "node_counts", "view")

    def __init__(self) -> None:
        self.counts = np.zeros(len(EngineCounter), dtype=np.int64)
        self.drops = np.zeros(_REASONS, dtype=np.int64)
        self.c = self.counts.data
        self.d = self.drops.data
        self.node_drops = self.drops.view(np.uint64)  # the same memory: counts stay far below 2**63
        self.node_counts = self.counts.view(np.uint64)  # the node books each block's figures here
        self.view = CounterView(names=COUNTERS, counts=self.counts)

    def drop(self, reason: int, n: int = 1) -> None:
        """``n`` frames dropped for ``reason``."""
        if n:
            self.d[reason] += n
            self.c[DROPPED] += n

    def drop_statuses(self, statuses: np.ndarray) -> None:
        """Count frames a kernel refused, by its status (a DropReason value: the kernels' statuses are)."""
        if statuses.size:
            counts = np.bincount(statuses, minlength=_REASONS)
            if counts.shape[0] > _REASONS:  # not a DropReason: a kernel out of step with this engine
                counts[_INTERNAL_ERROR] += counts[_REASONS:].sum()
            self.drops += counts[:_REASONS]
            self.c[DROPPED] += int(statuses.size)

    def dispositions(self) -> int:
        """The sum of the dispositions: forwarded .. delivered, and dropped."""
        return sum(self.c[FORWARDED:DROPPED + 1])

    def conservation(self) -> dict[str, int]:
        """The terms of the conservation equation, and whether it holds."""
        c = self.c
        dropped = int(self.drops.sum())
        dispositions = sum(c[FORWARDED:DELIVERED + 1]) + dropped
        return {"received": c[RECEIVED], "dispositions": dispositions, "holds": c[RECEIVED] == dispositions,
                "dropped": dropped}

    def drop_counts(self) -> dict[str, int]:
        """The drops by reason (lower-case names), the reasons that never fired left out."""
        d = self.d
        return {_REASON_NAMES[r]: d[r] for r in np.flatnonzero(self.drops).tolist()}


class Books:
    """The engine's two ledgers: ``main`` (every frame received gets its one disposition there) and
    ``requeue`` (frames leaving a queue, a flushed handover buffer or a resolved next hop's: they had their
    disposition when they were queued, so their second pass is booked apart and the main equation stays
    exact).  ``now`` is the ledger frames are booked in at this moment; :meth:`switch` changes it."""

    __slots__ = ("main", "requeue", "now")

    def __init__(self) -> None:
        self.main = Ledger()
        self.requeue = Ledger()
        self.now = self.main

    def switch(self, ledger: Ledger) -> Ledger:
        """Book in ``ledger`` from now on; returns the ledger booked in before (to switch back to)."""
        before = self.now
        self.now = ledger
        return before


class RateLimitedLog:
    """One ``log.error`` per kind per interval; what it held back is said in the next line of that kind."""

    def __init__(self, interval_ns: int = ERROR_LOG_INTERVAL_NS) -> None:
        self.interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def __call__(self, kind: str, now_ns: int, exc: BaseException, **fields: object) -> None:
        last = self._last.get(kind)
        if last is not None and now_ns - last < self.interval_ns:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now_ns
        held = self._held.pop(kind, 0)
        log.error("%s: %s: %s%s%s", kind, type(exc).__name__, exc,
                  "".join(f" {k}={v}" for k, v in fields.items()),
                  f" ({held} more since the last report)" if held else "",
                  exc_info=exc if last is None else None)


class Faults:
    """What the engine does with an exception it catches instead of letting it out of a loop: an internal
    error is counted (``internal_errors``, in the ledger booked in now) and logged, rate-limited per kind."""

    def __init__(self, books: Books, clock: Callable[[], int]) -> None:
        self.books = books
        self.clock = clock
        self.log = RateLimitedLog()

    def internal(self, kind: str, exc: BaseException, **fields: object) -> None:
        self.books.now.c[INTERNAL_ERRORS] += 1
        self.log(kind, self.clock(), exc, **fields)
