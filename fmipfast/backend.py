"""Picks the implementation of the per-packet kernels: the compiled ``fmipfast._core`` or the pure-Python
``fmipfast.reference`` (STYLE.md rule 6, the msgpack pattern).

* ``FMIPFAST_PUREPYTHON=1`` forces the reference even when the extension is built.
* ``FMIPFAST_REQUIRE_EXTENSIONS=1`` turns a missing or broken extension into an ImportError instead of a
  silent fallback (CI runs the compiled suite with it, so a broken build cannot pass as pure Python).

Both implementations export exactly the names in :data:`KERNELS`; tests check that.
"""

from __future__ import annotations

import os

from fmipfast import reference as _reference

__all__ = ["IMPLEMENTATION", "KERNELS", "load", "impl"]

#: The public kernel names every implementation exports (same signatures, same errors).
KERNELS = (
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
    # issue #3 [bufq+rewrite]
    "forward_rewrite",
    "encapsulate",
    "decapsulate",
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def load():
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
forward_rewrite = impl.forward_rewrite
encapsulate = impl.encapsulate
decapsulate = impl.decapsulate

__all__ += list(KERNELS)

#: The classes every implementation exports (KERNELS lists functions: the tests compare their signatures
#: and stub docstrings, which a cdef class does not have in the same form).
CLASSES = ("PacketBuffer",)
PacketBuffer = impl.PacketBuffer
__all__ += ["CLASSES", *CLASSES]
