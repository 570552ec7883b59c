"""The pure-Python reference of every ``_core`` kernel: readable, slow, and the oracle the compiled core
is tested against (docs/conventions.md §4).  Must never import ``fmipfast._core``."""

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
    iid_from_eui64,
    link_local_from_mac48,
    mac48_from_address,
    mac48_from_eui64,
    nar_link_local,
    ncoa_from_prefix,
)

__all__ = [
    "internet_checksum",
    "upper_layer_checksum",
    "icmp6_checksum",
    "icmp6_checksum_ok",
    "icmp6_checksum_fill",
    "ncoa_from_prefix",
    "nar_link_local",
    "link_local_from_mac48",
    "eui64_from_mac48",
    "mac48_from_eui64",
    "iid_from_eui64",
    "eui64_from_iid",
    "eui64_from_address",
    "mac48_from_address",
]

# ---- The batch core. Each room adds its import and __all__ entries in its own section. ----

# [parse] classify: fmipfast/reference/wire.py
from fmipfast.reference.wire import Batch, classify  # noqa: E402

__all__ += ["classify", "Batch"]

# (keep this line: it separates the sections for clean merges)

# [ncache] NeighborCache and batch derivations: fmipfast/reference/ncache.py
from fmipfast.reference.derive import (  # noqa: E402
    eui64_from_mac48_batch,
    mac48_from_address_batch,
    nar_link_local_batch,
    ncoa_batch,
)
from fmipfast.reference.ncache import NeighborCache, _nc_hash, _siphash24  # noqa: E402, F401

__all__ += ["ncoa_batch", "nar_link_local_batch", "mac48_from_address_batch", "eui64_from_mac48_batch"]
__all__ += ["NeighborCache"]

# (keep this line: it separates the sections for clean merges)

# [bufq+rewrite] PacketBuffer: fmipfast/reference/bufq.py; rewrite kernels: fmipfast/reference/rewrite.py

from fmipfast.reference.bufq import PacketBuffer  # noqa: E402
from fmipfast.reference.rewrite import decapsulate, encapsulate, forward_rewrite  # noqa: E402

__all__ += ["forward_rewrite", "encapsulate", "decapsulate", "PacketBuffer"]

# (end of the batch-core sections)

# [ring] AF_PACKET TPACKET_V3 block walk and TX fill: fmipfast/reference/ring.py
from fmipfast.reference.ring import (  # noqa: E402
    RING_WALK_ERRORS,  # noqa: F401 - a constant, not a kernel: reachable as an attribute
    ring_block_status,
    ring_release_block,
    ring_tx_fill,
    ring_walk_block,
)

__all__ += ["ring_block_status", "ring_release_block", "ring_tx_fill", "ring_walk_block"]

# (keep this line: it separates the sections for clean merges)

# [fib] longest-prefix-match FIB: fmipfast/reference/fib.py
from fmipfast.reference.fib import Fib  # noqa: E402

__all__ += ["Fib"]

# (keep this line: it separates the sections for clean merges)

# [node] the forwarding node: fmipfast/reference/node.py
from fmipfast.reference.node import Node  # noqa: E402

__all__ += ["Node"]
