"""fmipfast: Fast Handovers in Mobile IPv6 (draft-koodli-mobileip-fastv6-02) with light-weight Kerberos.

The per-packet kernels come from the compiled ``fmipfast._core`` or, with ``FMIPFAST_PUREPYTHON=1`` or
without a build, from the pure-Python ``fmipfast.reference``; ``fmipfast.IMPLEMENTATION`` says which.

The batch API other daemons embed (docs/design.md §7; docs/api/): :func:`classify` over a uint8 arena with int64
offsets and uint32 lengths returns a :class:`Batch` of numpy arrays; :class:`NeighborCache` and
:class:`PacketBuffer` are the bounded tables of the data plane.
"""

from fmipfast._version import __version__
from fmipfast.backend import IMPLEMENTATION, Batch, NeighborCache, PacketBuffer, classify

__all__ = ["__version__", "IMPLEMENTATION", "Batch", "NeighborCache", "PacketBuffer", "classify"]
