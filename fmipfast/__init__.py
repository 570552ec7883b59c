"""fmipfast: Fast Handovers in Mobile IPv6 (draft-koodli-mobileip-fastv6-02) with light-weight Kerberos.

The per-packet kernels come from the compiled ``fmipfast._core`` or, with ``FMIPFAST_PUREPYTHON=1`` or
without a build, from the pure-Python ``fmipfast.reference``; ``fmipfast.IMPLEMENTATION`` says which.
"""

from fmipfast._version import __version__
from fmipfast.backend import IMPLEMENTATION

__all__ = ["__version__", "IMPLEMENTATION"]
