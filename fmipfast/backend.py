"""Picks the implementation of the per-packet kernels: the compiled ``fmipfast._core`` or the pure-Python
``fmipfast.reference`` (docs/conventions.md §1, the msgpack pattern).

* ``FMIPFAST_PUREPYTHON=1`` forces the reference even when the extension is built.
* ``FMIPFAST_REQUIRE_EXTENSIONS=1`` turns a missing or broken extension into an ImportError instead of a
  silent fallback (CI runs the compiled suite with it, so a broken build cannot pass as pure Python).

Both implementations export exactly the names in :data:`KERNELS` (functions: same signatures, same
errors) and :data:`CLASSES`; tests check that.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fmipfast import reference as _reference

__all__ = ["IMPLEMENTATION", "KERNELS", "CLASSES", "load", "impl"]

#: The public kernel functions every implementation exports, and its classes (apart: the tests compare function
#: signatures and stub docstrings, which a cdef class does not have in the same form).  One home: the oracle's
#: ``__all__`` (the compiled module's and the stub's are checked against it, tests/test_public_typing.py).
KERNELS = tuple(name for name in _reference.__all__ if not name[0].isupper())
CLASSES = tuple(name for name in _reference.__all__ if name[0].isupper())


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def load() -> tuple[Any, str]:
    """Return ``(module, name)`` of the implementation the environment selects."""
    if _flag("FMIPFAST_PUREPYTHON"):
        return _reference, "reference"
    try:
        from fmipfast import _core
    except ImportError as exc:
        if _flag("FMIPFAST_REQUIRE_EXTENSIONS"):
            raise ImportError(
                "FMIPFAST_REQUIRE_EXTENSIONS=1 but fmipfast._core cannot be imported "
                f"({exc}); build it with `pip install -e .` or unset the variable"
            ) from exc
        return _reference, "reference"
    return _core, "core"


impl, IMPLEMENTATION = load()

if TYPE_CHECKING:
    # Type checkers see the compiled signatures: fmipfast/_core.pyi is the one home of every signature (the
    # reference implements the same ones; tests compare them), so users' mypy/pyright check their calls.
    from fmipfast._core import (  # `X as X`: an explicit re-export for strict type checkers
        RING_WALK_ERRORS as RING_WALK_ERRORS,
    )
    from fmipfast._core import (
        Batch as Batch,
    )
    from fmipfast._core import (
        Fib as Fib,
    )
    from fmipfast._core import (
        NeighborCache as NeighborCache,
    )
    from fmipfast._core import (
        Node as Node,
    )
    from fmipfast._core import (
        PacketBuffer as PacketBuffer,
    )
    from fmipfast._core import (
        classify as classify,
    )
    from fmipfast._core import (
        decapsulate as decapsulate,
    )
    from fmipfast._core import (
        encapsulate as encapsulate,
    )
    from fmipfast._core import (
        eui64_from_address as eui64_from_address,
    )
    from fmipfast._core import (
        eui64_from_iid as eui64_from_iid,
    )
    from fmipfast._core import (
        eui64_from_mac48 as eui64_from_mac48,
    )
    from fmipfast._core import (
        eui64_from_mac48_batch as eui64_from_mac48_batch,
    )
    from fmipfast._core import (
        forward_rewrite as forward_rewrite,
    )
    from fmipfast._core import (
        icmp6_checksum as icmp6_checksum,
    )
    from fmipfast._core import (
        icmp6_checksum_fill as icmp6_checksum_fill,
    )
    from fmipfast._core import (
        icmp6_checksum_ok as icmp6_checksum_ok,
    )
    from fmipfast._core import (
        iid_from_eui64 as iid_from_eui64,
    )
    from fmipfast._core import (
        internet_checksum as internet_checksum,
    )
    from fmipfast._core import (
        link_local_from_mac48 as link_local_from_mac48,
    )
    from fmipfast._core import (
        mac48_from_address as mac48_from_address,
    )
    from fmipfast._core import (
        mac48_from_address_batch as mac48_from_address_batch,
    )
    from fmipfast._core import (
        mac48_from_eui64 as mac48_from_eui64,
    )
    from fmipfast._core import (
        nar_link_local as nar_link_local,
    )
    from fmipfast._core import (
        nar_link_local_batch as nar_link_local_batch,
    )
    from fmipfast._core import (
        ncoa_batch as ncoa_batch,
    )
    from fmipfast._core import (
        ncoa_from_prefix as ncoa_from_prefix,
    )
    from fmipfast._core import (
        ring_block_status as ring_block_status,
    )
    from fmipfast._core import (
        ring_release_block as ring_release_block,
    )
    from fmipfast._core import (
        ring_release_frames as ring_release_frames,
    )
    from fmipfast._core import (
        ring_tx_fill as ring_tx_fill,
    )
    from fmipfast._core import (
        ring_walk_block as ring_walk_block,
    )
    from fmipfast._core import (
        ring_walk_frames as ring_walk_frames,
    )
    from fmipfast._core import (
        upper_layer_checksum as upper_layer_checksum,
    )
else:
    internet_checksum = impl.internet_checksum
    upper_layer_checksum = impl.upper_layer_checksum
    icmp6_checksum = impl.icmp6_checksum
    icmp6_checksum_ok = impl.icmp6_checksum_ok
    icmp6_checksum_fill = impl.icmp6_checksum_fill
    ncoa_from_prefix = impl.ncoa_from_prefix
    nar_link_local = impl.nar_link_local
    link_local_from_mac48 = impl.link_local_from_mac48
    eui64_from_mac48 = impl.eui64_from_mac48
    mac48_from_eui64 = impl.mac48_from_eui64
    iid_from_eui64 = impl.iid_from_eui64
    eui64_from_iid = impl.eui64_from_iid
    eui64_from_address = impl.eui64_from_address
    mac48_from_address = impl.mac48_from_address
    ncoa_batch = impl.ncoa_batch
    nar_link_local_batch = impl.nar_link_local_batch
    mac48_from_address_batch = impl.mac48_from_address_batch
    eui64_from_mac48_batch = impl.eui64_from_mac48_batch
    classify = impl.classify
    forward_rewrite = impl.forward_rewrite
    encapsulate = impl.encapsulate
    decapsulate = impl.decapsulate
    ring_walk_block = impl.ring_walk_block
    ring_block_status = impl.ring_block_status
    ring_release_block = impl.ring_release_block
    ring_tx_fill = impl.ring_tx_fill
    ring_walk_frames = impl.ring_walk_frames
    ring_release_frames = impl.ring_release_frames
    RING_WALK_ERRORS = impl.RING_WALK_ERRORS
    Batch = impl.Batch
    NeighborCache = impl.NeighborCache
    PacketBuffer = impl.PacketBuffer
    Fib = impl.Fib
    Node = impl.Node

__all__ += [*KERNELS, *CLASSES, "RING_WALK_ERRORS"]
