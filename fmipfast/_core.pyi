"""Type stub of fmipfast._core (docs/conventions.md §1): signatures only.

The docstrings are written once, in fmipfast/_core.pyx and its fragments, and read from the compiled module
(``help()``, ``inspect.getdoc``); tests/test_public_typing.py keeps this file free of them and its
``__all__`` equal to the compiled module's.  Sections follow the fragments' include order.
"""

from typing import Any, SupportsIndex, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import Buffer

from fmipfast.constants import Codepoints

#: What a kernel takes where the buffer protocol is enough: bytes-like objects and numpy arrays.  (numpy's stubs
#: declare ``ndarray.__buffer__`` only for Python >= 3.12, so ``Buffer`` alone would refuse arrays on 3.11.)
_BufferLike: TypeAlias = Buffer | NDArray[Any]

__all__ = [
    # _kernels/cksum.pxi
    "internet_checksum",
    "upper_layer_checksum",
    "icmp6_checksum",
    "icmp6_checksum_ok",
    "icmp6_checksum_fill",
    # _kernels/derive.pxi
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
    # _kernels/parse.pxi
    "Batch",
    "classify",
    # _kernels/ncache.pxi
    "NeighborCache",
    # _kernels/bufq.pxi and _kernels/rewrite.pxi
    "PacketBuffer",
    "forward_rewrite",
    "encapsulate",
    "decapsulate",
    # _kernels/ring.pxi
    "ring_walk_block",
    "ring_block_status",
    "ring_release_block",
    "ring_tx_fill",
    "ring_walk_frames",
    "ring_release_frames",
    # _kernels/fib.pxi
    "Fib",
    # _kernels/node.pxi
    "Node",
]

# _kernels/cksum.pxi: RFC 1071, RFC 8200 §8.1 and RFC 4443 §2.3 checksums

def internet_checksum(data: _BufferLike) -> int: ...
def upper_layer_checksum(
    src: _BufferLike, dst: _BufferLike, next_header: SupportsIndex, payload: _BufferLike, checksum_offset: SupportsIndex
) -> int: ...
def icmp6_checksum(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> int: ...
def icmp6_checksum_ok(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> bool: ...
def icmp6_checksum_fill(src: _BufferLike, dst: _BufferLike, buf: _BufferLike) -> int: ...

# _kernels/derive.pxi: the draft's address derivations, one and many at a time

def ncoa_from_prefix(nar_address: _BufferLike, prefix_len: SupportsIndex, coa: _BufferLike) -> bytes: ...
def nar_link_local(nar_address: _BufferLike, prefix_len: SupportsIndex) -> bytes: ...
def link_local_from_mac48(mac6: _BufferLike) -> bytes: ...
def eui64_from_mac48(mac6: _BufferLike) -> bytes: ...
def mac48_from_eui64(eui8: _BufferLike) -> bytes: ...
def iid_from_eui64(eui8: _BufferLike) -> bytes: ...
def eui64_from_iid(iid8: _BufferLike) -> bytes: ...
def eui64_from_address(address16: _BufferLike, prefix_len: SupportsIndex) -> bytes: ...
def mac48_from_address(address16: _BufferLike, prefix_len: SupportsIndex) -> bytes: ...
def ncoa_batch(nar_addresses: ArrayLike, prefix_len: SupportsIndex, coas: ArrayLike) -> NDArray[np.uint8]: ...
def nar_link_local_batch(nar_addresses: ArrayLike, prefix_len: SupportsIndex) -> NDArray[np.uint8]: ...
def mac48_from_address_batch(
    addresses: ArrayLike, prefix_len: SupportsIndex
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]: ...
def eui64_from_mac48_batch(macs: ArrayLike) -> NDArray[np.uint8]: ...

# _kernels/parse.pxi: classify and Batch

class Batch:
    capacity: int
    n: int
    verdict: NDArray[np.uint8]
    drop_reason: NDArray[np.uint8]
    checksum_ok: NDArray[np.bool_]
    icmp_type: NDArray[np.uint8]
    icmp_code: NDArray[np.uint8]
    fmip_code: NDArray[np.uint8]
    next_header: NDArray[np.uint8]
    hop_limit: NDArray[np.uint8]
    has_ah: NDArray[np.bool_]
    l3_offset: NDArray[np.uint32]
    l4_offset: NDArray[np.uint32]
    l4_length: NDArray[np.uint32]
    src: NDArray[np.uint8]
    dst: NDArray[np.uint8]
    ncoa: NDArray[np.uint8]
    target: NDArray[np.uint8]
    eth_src: NDArray[np.uint8]
    eth_dst: NDArray[np.uint8]
    lladdr: NDArray[np.uint8]
    has_lladdr: NDArray[np.bool_]
    identifier: NDArray[np.int32]
    drop_counts: NDArray[np.uint64]
    def __init__(self, capacity: SupportsIndex) -> None: ...
    def __len__(self) -> int: ...

def classify(
    arena: _BufferLike,
    offsets: _BufferLike,
    lengths: _BufferLike,
    *,
    codepoints: Codepoints = ...,
    out: Batch | None = None,
    counters: _BufferLike | None = None,
) -> Batch: ...
def _py_icmp6_ok_short(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> bool: ...
def _py_classify_frame(frame: _BufferLike, codepoints: Codepoints = ...) -> tuple[int, int]: ...

# _kernels/ncache.pxi: NeighborCache

class NeighborCache:
    def __init__(self, capacity: SupportsIndex, *, seed: _BufferLike | None = None) -> None: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def keys(self) -> NDArray[np.uint8]: ...
    @property
    def macs(self) -> NDArray[np.uint8]: ...
    @property
    def states(self) -> NDArray[np.uint8]: ...
    @property
    def flags(self) -> NDArray[np.uint8]: ...
    @property
    def ifindex(self) -> NDArray[np.uint32]: ...
    @property
    def expiry(self) -> NDArray[np.int64]: ...
    @property
    def in_use(self) -> NDArray[np.bool_]: ...
    @property
    def counters(self) -> dict[str, int]: ...
    def insert(
        self,
        keys: ArrayLike,
        macs: ArrayLike,
        states: ArrayLike,
        *,
        flags: ArrayLike | None = None,
        ifindex: ArrayLike | None = None,
        expiry: ArrayLike | None = None,
    ) -> NDArray[np.int64]: ...
    def insert_one(
        self,
        key: _BufferLike,
        mac: _BufferLike,
        state: int | np.integer[Any],
        *,
        flags: int | np.integer[Any] = 0,
        ifindex: int | np.integer[Any] = 0,
        expiry: int | np.integer[Any] = 0,
    ) -> int: ...
    def lookup(self, keys: ArrayLike) -> NDArray[np.int64]: ...
    def get(self, key: _BufferLike) -> int: ...
    def update(
        self,
        indices: ArrayLike,
        *,
        macs: ArrayLike | None = None,
        states: ArrayLike | None = None,
        flags: ArrayLike | None = None,
        ifindex: ArrayLike | None = None,
        expiry: ArrayLike | None = None,
    ) -> None: ...
    def delete(self, keys: ArrayLike) -> NDArray[np.bool_]: ...
    def expire(self, now_ns: SupportsIndex) -> int: ...
    # Test hooks
    @property
    def _nslots(self) -> int: ...
    @property
    def _generation(self) -> int: ...
    def _home_slot(self, key: _BufferLike) -> int: ...
    def _slot_of(self, key: _BufferLike) -> int: ...
    def _probe_lengths(self) -> NDArray[np.int64]: ...
    def _check_invariants(self) -> bool: ...

def _nc_hash(key: _BufferLike, seed: _BufferLike, generation: SupportsIndex = 0) -> int: ...
def _siphash24(data: _BufferLike, seed: _BufferLike) -> int: ...
def _ncache_consts() -> dict[str, int]: ...

# _kernels/bufq.pxi and _kernels/rewrite.pxi: PacketBuffer and the rewrite kernels

class PacketBuffer:
    def __init__(
        self,
        *,
        slots: SupportsIndex = 4096,
        slot_size: SupportsIndex = 2048,
        max_keys: SupportsIndex = 1024,
        per_key_packets: SupportsIndex = 64,
        per_key_bytes: SupportsIndex = 65536,
        lifetime_ns: SupportsIndex = 3_000_000_000,
    ) -> None: ...
    @property
    def slots(self) -> int: ...
    @property
    def slot_size(self) -> int: ...
    @property
    def max_keys(self) -> int: ...
    @property
    def per_key_packets(self) -> int: ...
    @property
    def per_key_bytes(self) -> int: ...
    @property
    def lifetime_ns(self) -> int: ...
    @property
    def counters(self) -> dict[str, int]: ...
    def __len__(self) -> int: ...
    def queued(self, key: SupportsIndex) -> int: ...
    def queued_bytes(self, key: SupportsIndex) -> int: ...
    def push(
        self, keys: ArrayLike, arena: _BufferLike, offsets: ArrayLike, lengths: ArrayLike, now_ns: SupportsIndex
    ) -> NDArray[np.uint8]: ...
    def flush(
        self, key: SupportsIndex, now_ns: SupportsIndex
    ) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32]]: ...
    def drop(self, key: SupportsIndex) -> int: ...
    def expire(self, now_ns: SupportsIndex) -> int: ...

def forward_rewrite(
    arena: _BufferLike,
    offsets: ArrayLike,
    l3_offsets: ArrayLike,
    sel: ArrayLike,
    dst_macs: ArrayLike,
    src_mac: ArrayLike,
) -> NDArray[np.uint8]: ...
def encapsulate(
    arena: _BufferLike,
    offsets: ArrayLike,
    lengths: ArrayLike,
    l3_offsets: ArrayLike,
    sel: ArrayLike,
    outer_src: ArrayLike,
    outer_dst: ArrayLike,
    dst_mac: ArrayLike,
    src_mac: ArrayLike,
    *,
    hop_limit: SupportsIndex = 64,
    mtu: SupportsIndex = 1500,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8]]: ...
def decapsulate(
    arena: _BufferLike,
    offsets: ArrayLike,
    lengths: ArrayLike,
    l3_offsets: ArrayLike,
    l4_offsets: ArrayLike,
    sel: ArrayLike,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8]]: ...

# _kernels/ring.pxi: AF_PACKET TPACKET_V3 block walk, TPACKET_V2 frame walk and TX fill

RING_WALK_ERRORS: tuple[str, ...]

def ring_walk_block(
    ring: _BufferLike,
    block_offset: int,
    block_size: int,
    *,
    max_frames: SupportsIndex | None = None,
    out: tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint32], NDArray[np.int64], NDArray[np.uint32]]
    | None = None,
) -> dict[str, Any]: ...
def ring_block_status(ring: _BufferLike, block_offset: int) -> int: ...
def ring_release_block(ring: _BufferLike, block_offset: int) -> None: ...
def ring_tx_fill(
    tx: _BufferLike, frame_size: int, head: int, arena: _BufferLike, offsets: _BufferLike, lengths: _BufferLike
) -> tuple[int, int, int, int]: ...
def ring_walk_frames(
    ring: _BufferLike,
    cursor: int,
    frame_size: int,
    frame_nr: int,
    *,
    max_frames: SupportsIndex | None = None,
    out: tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint32], NDArray[np.int64], NDArray[np.uint32]]
    | None = None,
) -> dict[str, Any]: ...
def ring_release_frames(ring: _BufferLike, cursor: int, frame_size: int, frame_nr: int, count: int) -> None: ...
def _linux_consts() -> dict[str, int]: ...

# _kernels/fib.pxi: the longest-prefix-match FIB

class Fib:
    def __init__(
        self,
        prefixes: NDArray[np.uint8],
        lengths: NDArray[np.uint8],
        values: NDArray[np.int32],
        *,
        seed: _BufferLike | None = None,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    def lookup(self, dst: NDArray[np.uint8], out: NDArray[np.int32] | None = None) -> NDArray[np.int32]: ...
    # Test hooks
    @property
    def _nslots(self) -> int: ...
    @property
    def _max_probe(self) -> int: ...
    @property
    def _entries(self) -> int: ...
    def _hash(self, hi: int, lo: int, length: int) -> int: ...

def _fib_consts() -> dict[str, int]: ...

# _kernels/node.pxi: the forwarding node

class Node:
    def __init__(self, ncache: NeighborCache, capacity: int, interfaces: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def interfaces(self) -> int: ...
    @property
    def entry_key(self) -> NDArray[np.int32]: ...
    @property
    def entry_peer(self) -> NDArray[np.int32]: ...
    last_drops: NDArray[np.uint64] | None
    @property
    def iface_mac(self) -> NDArray[np.uint8]: ...
    @property
    def action(self) -> NDArray[np.uint8]: ...
    @property
    def aux(self) -> NDArray[np.int32]: ...
    @property
    def entry(self) -> NDArray[np.int64]: ...
    @property
    def out_if(self) -> NDArray[np.int32]: ...
    @property
    def next_hop(self) -> NDArray[np.uint8]: ...
    @property
    def tx_count(self) -> NDArray[np.int64]: ...
    @property
    def tx_offsets(self) -> NDArray[np.int64]: ...
    @property
    def tx_lengths(self) -> NDArray[np.uint32]: ...
    @property
    def stats(self) -> NDArray[np.uint64]: ...
    @property
    def decap_count(self) -> int: ...
    @property
    def decap_offsets(self) -> NDArray[np.int64]: ...
    @property
    def decap_lengths(self) -> NDArray[np.uint32]: ...
    @property
    def tunnel_arena(self) -> NDArray[np.uint8]: ...
    @property
    def tunnel_count(self) -> NDArray[np.int64]: ...
    @property
    def tunnel_offsets(self) -> NDArray[np.int64]: ...
    @property
    def tunnel_lengths(self) -> NDArray[np.uint32]: ...
    @property
    def tx_queued(self) -> NDArray[np.int64]: ...
    @property
    def tunnel_queued(self) -> NDArray[np.int64]: ...
    def set_tx_ring(self, iface: int | np.integer[Any], ring: NDArray[np.uint8] | None, frame_size: int = 0,
                    head: NDArray[np.int64] | None = None) -> None: ...
    def set_mtus(self, mtus: ArrayLike) -> None: ...
    @property
    def mtus(self) -> NDArray[np.uint32]: ...
    def set_tx_kick(self, iface: int | np.integer[Any], fd: int) -> None: ...
    @property
    def ring_tx(self) -> NDArray[np.int64]: ...
    @property
    def inner_action(self) -> NDArray[np.uint8]: ...
    @property
    def inner_aux(self) -> NDArray[np.int32]: ...
    @property
    def inner_entry(self) -> NDArray[np.int64]: ...
    @property
    def ncache(self) -> NeighborCache: ...
    def set_codepoints(self, codepoints: Codepoints) -> None: ...
    def set_interfaces(self, macs: ArrayLike) -> None: ...
    def set_routes(self, fib: Fib, route_if: ArrayLike, route_via: ArrayLike, route_has_via: ArrayLike) -> None: ...
    def set_peers(self, peers: ArrayLike) -> None: ...
    def set_buffer(self, buffer: PacketBuffer | None) -> None: ...
    def set_tunnel(self, sources: ArrayLike, mtus: ArrayLike, *, hop_limit: int = 64) -> None: ...
    def set_tunnel_peers(self, peers: ArrayLike) -> None: ...
    def run(
        self,
        batch: Batch,
        arena: NDArray[np.uint8],
        offsets: NDArray[np.int64],
        lengths: NDArray[np.uint32],
        status: NDArray[np.uint32],
        iface: int | np.integer[Any],
        *,
        from_wire: bool = True,
        inner: bool = False,
        drops: NDArray[np.uint64] | None = None,
        now_ns: int | None = None,
        finish_inner: bool = False,
        counts: NDArray[np.uint64] | None = None,
    ) -> int: ...
    def run_block(
        self,
        batch: Batch,
        arena: NDArray[np.uint8],
        offsets: NDArray[np.int64],
        lengths: NDArray[np.uint32],
        status: NDArray[np.uint32],
        iface: int | np.integer[Any],
        *,
        from_wire: bool = True,
        inner: bool = False,
        drops: NDArray[np.uint64] | None = None,
        now_ns: int | None = None,
        finish_inner: bool = False,
        counts: NDArray[np.uint64] | None = None,
    ) -> int: ...
    def run_ring(
        self,
        batch: Batch,
        ring: NDArray[np.uint8],
        block_size: int,
        block_nr: int,
        cursor: int,
        iface: int | np.integer[Any],
        walk_out: tuple[NDArray[Any], ...],
        *,
        drops: NDArray[np.uint64],
        counts: NDArray[np.uint64],
        now_ns: int | None = None,
        max_blocks: int = 1,
        hold: bool = False,
        per_frame: bool = False,
    ) -> tuple[int, int, int, int, int, int, int, int, int, int, int]: ...

# _core.pyx: test hooks of the included declarations

def _struct_sizes() -> dict[str, int]: ...
def _consts() -> dict[str, int]: ...
def _wire_consts() -> dict[str, int]: ...
