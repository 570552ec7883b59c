"""The pure-Python reference of every ``_core`` kernel: readable, slow, and the oracle the compiled core
is tested against (docs/conventions.md §4).  Must never import ``fmipfast._core``.

One module per kernel fragment of the compiled core: ``cksum``, ``derive`` (one and many at a time),
``wire`` (classify), ``ncache``, ``bufq``, ``rewrite``, ``ring``, ``fib``, ``node``.
"""

from fmipfast.reference.bufq import PacketBuffer
from fmipfast.reference.cksum import (
    icmp6_checksum,
    icmp6_checksum_fill,
    icmp6_checksum_ok,
    internet_checksum,
    upper_layer_checksum,
)
from fmipfast.reference.derive import (
    eui64_from_address,
    eui64_from_iid,
    eui64_from_mac48,
    eui64_from_mac48_batch,
    iid_from_eui64,
    link_local_from_mac48,
    mac48_from_address,
    mac48_from_address_batch,
    mac48_from_eui64,
    nar_link_local,
    nar_link_local_batch,
    ncoa_batch,
    ncoa_from_prefix,
)
from fmipfast.reference.fib import Fib
from fmipfast.reference.ncache import NeighborCache, _nc_hash, _siphash24  # noqa: F401 - the test hooks
from fmipfast.reference.node import Node
from fmipfast.reference.rewrite import decapsulate, encapsulate, forward_rewrite
from fmipfast.reference.ring import (
    RING_WALK_ERRORS,  # noqa: F401 - a constant, not a kernel: reachable as an attribute
    ring_block_status,
    ring_release_block,
    ring_release_frames,
    ring_tx_fill,
    ring_walk_block,
    ring_walk_frames,
)
from fmipfast.reference.wire import Batch, classify

__all__ = [
    # cksum
    "internet_checksum",
    "upper_layer_checksum",
    "icmp6_checksum",
    "icmp6_checksum_ok",
    "icmp6_checksum_fill",
    # derive
    "ncoa_from_prefix",
    "nar_link_local",
    "link_local_from_mac48",
    "eui64_from_mac48",
    "mac48_from_eui64",
    "iid_from_eui64",
    "eui64_from_iid",
    "eui64_from_address",
    "mac48_from_address",
    "ncoa_batch",
    "nar_link_local_batch",
    "mac48_from_address_batch",
    "eui64_from_mac48_batch",
    # wire
    "Batch",
    "classify",
    # ncache
    "NeighborCache",
    # bufq, rewrite
    "PacketBuffer",
    "forward_rewrite",
    "encapsulate",
    "decapsulate",
    # ring
    "ring_walk_block",
    "ring_block_status",
    "ring_release_block",
    "ring_tx_fill",
    "ring_walk_frames",
    "ring_release_frames",
    # fib
    "Fib",
    # node
    "Node",
]
