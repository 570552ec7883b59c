"""Real MIT realms for the gssapi tests (``fmipfast.lab.mitrealms``, skipped without k5test/gssapi), and a few
ccache surgeries for the negatives."""

from __future__ import annotations

import importlib
import shutil
import struct
import time

import pytest

from tests.tools import REQUIRED, WHY_REQUIRED

_HOW = ("pip install 'fmipfast[krb5]' k5test, with MIT Kerberos installed "
        "(Debian: apt-get install krb5-kdc krb5-admin-server libkrb5-dev); .ci/run installs them")


def _missing(what: str) -> None:
    """Fail the calling module without MIT Kerberos where the tools are required (as root, as in CI; see
    tests/tools.py); skip it, saying why, for a user who is not root."""
    why = f"{what} is not installed ({_HOW})"
    if REQUIRED:
        pytest.fail(f"{why}; {WHY_REQUIRED}", pytrace=False)
    pytest.skip(f"{why}; optional when not running as root", allow_module_level=True)


for _module in ("k5test", "gssapi"):
    try:
        importlib.import_module(_module)
    except ImportError:
        _missing(f"the {_module} package")
for _program in ("krb5kdc", "kdb5_util", "kadmin.local"):
    if shutil.which(_program) is None and shutil.which(f"/usr/sbin/{_program}") is None:
        _missing(f"MIT's {_program}")

from fmipfast.lab.mitrealms import (  # noqa: E402
    CROSS_PASSWORD,
    MN,
    MN_PASSWORD,
    NAR_SERVICE,
    PAR_SERVICE,
    A,
    B,
    Realms,
    demo_kerberos,
    two_realms,
)

__all__ = ["A", "B", "CROSS_PASSWORD", "MN", "MN_PASSWORD", "NAR_SERVICE", "PAR_SERVICE", "Realms", "demo_kerberos",
           "two_realms", "cached_services", "set_time_offset", "stretch_endtime", "wait_until"]

# ---------------------------------------------------------------------------------------------- ccache surgery

_FCC_V4 = 0x0504


def _principal(buf: bytes, o: int) -> int:
    o += 4  # name type
    count = struct.unpack_from(">I", buf, o)[0]
    o += 4
    for _ in range(count + 1):  # the realm, then the components
        o += 4 + struct.unpack_from(">I", buf, o)[0]
    return o


def set_time_offset(ccache: str, seconds: int) -> None:
    """Write MIT's KDC time offset (FCC v4 header tag 1) into ``ccache``: every krb5 call that reads the cache
    then runs its clock ``seconds`` off -- an MN whose clock is wrong by that much (``kdc_timesync``)."""
    with open(ccache, "rb") as f:
        buf = f.read()
    assert struct.unpack_from(">H", buf, 0)[0] == _FCC_V4, "not an FCC version 4 ccache"
    hlen = struct.unpack_from(">H", buf, 2)[0]
    header = struct.pack(">HHii", 1, 8, seconds, 0)
    with open(ccache, "wb") as f:
        f.write(struct.pack(">HH", _FCC_V4, len(header)) + header + buf[4 + hlen:])


def stretch_endtime(ccache: str, service_prefix: str, new_end: int) -> int:
    """Rewrite the *clear* endtime of the cached tickets whose server starts with ``service_prefix`` (the copy
    the initiator reads; the ticket's encrypted endtime, which the acceptor reads, stays): an MN holding a
    ticket that has expired while its cache says otherwise.  Returns how many were changed."""
    with open(ccache, "rb") as f:
        buf = bytearray(f.read())
    hlen = struct.unpack_from(">H", buf, 2)[0]
    o = _principal(buf, 4 + hlen)  # default principal
    changed = 0
    while o < len(buf):
        o = _principal(buf, o)  # client
        s0 = o
        o = _principal(buf, o)  # server
        server = _principal_text(bytes(buf), s0)
        o += 2  # enctype
        o += 4 + struct.unpack_from(">I", buf, o)[0]  # key
        if server.startswith(service_prefix):
            struct.pack_into(">I", buf, o + 8, new_end)  # authtime, starttime, endtime, renew_till
            changed += 1
        o += 16 + 1 + 4  # times, is_skey, flags
        for _ in range(2):  # addresses, then authdata: count of (type 2, length-prefixed data)
            n = struct.unpack_from(">I", buf, o)[0]
            o += 4
            for _ in range(n):
                o += 2
                o += 4 + struct.unpack_from(">I", buf, o)[0]
        for _ in range(2):  # ticket, second ticket
            o += 4 + struct.unpack_from(">I", buf, o)[0]
    with open(ccache, "wb") as f:
        f.write(bytes(buf))
    return changed


def cached_services(ccache: str) -> list[str]:
    """The server principals of the tickets in the FCC v4 file ``ccache`` (``klist``'s list, read here)."""
    with open(ccache, "rb") as f:
        buf = f.read()
    hlen = struct.unpack_from(">H", buf, 2)[0]
    o = _principal(buf, 4 + hlen)  # default principal
    out = []
    while o < len(buf):
        o = _principal(buf, o)  # client
        out.append(_principal_text(buf, o))
        o = _principal(buf, o)  # server
        o += 2
        o += 4 + struct.unpack_from(">I", buf, o)[0]  # keyblock
        o += 16 + 1 + 4  # times, is_skey, flags
        for _ in range(2):  # addresses, authdata
            n = struct.unpack_from(">I", buf, o)[0]
            o += 4
            for _ in range(n):
                o += 2
                o += 4 + struct.unpack_from(">I", buf, o)[0]
        for _ in range(2):  # ticket, second ticket
            o += 4 + struct.unpack_from(">I", buf, o)[0]
    return out


def _principal_text(buf: bytes, o: int) -> str:
    o += 4
    count = struct.unpack_from(">I", buf, o)[0]
    o += 4
    parts = []
    for _ in range(count + 1):
        n = struct.unpack_from(">I", buf, o)[0]
        parts.append(buf[o + 4:o + 4 + n].decode())
        o += 4 + n
    realm, comps = parts[0], parts[1:]
    return "/".join(comps) + "@" + realm


def wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(min(0.2, max(0.0, t - time.time())))
