"""Real MIT Kerberos realms for the gssapi mechanism's tests and benchmark (k5test: krb5kdc processes, kadmin.local,
kinit, all in a temporary directory), and a few ccache surgeries for the negatives.

``two_realms()`` makes A.EXAMPLE (the MN's home and the PAR) and B.EXAMPLE (the NAR) with cross-realm trust
through the realms' own configuration: ``krbtgt/B.EXAMPLE@A.EXAMPLE`` with the same key in both databases and
``[capaths]`` saying A reaches B directly.  The process's ``KRB5_CONFIG``/``KRB5CCNAME``/``KRB5RCACHEDIR`` point
at realm A's files (whose krb5.conf knows both KDCs) for as long as the realms live.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

k5test = pytest.importorskip("k5test")
pytest.importorskip("gssapi")

A, B = "A.EXAMPLE", "B.EXAMPLE"
PAR_SERVICE = f"access/par.a.example@{A}"
NAR_SERVICE = f"access/nar.b.example@{B}"
MN = f"mn1@{A}"
MN_PASSWORD = "mn1-password"
CROSS_PASSWORD = "A-to-B-cross-realm-key"


def _free_portbase() -> int:
    """Ten consecutive free UDP+TCP ports (k5test uses portbase..portbase+9)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        ok = True
        for port in range(base, base + 10):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as t:
                    try:
                        t.bind(("", port))
                    except OSError:
                        ok = False
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no ten free ports")


@dataclass
class Realms:
    a: object
    b: object
    env: dict[str, str]

    @property
    def tmp(self) -> str:
        return self.a.tmpdir  # type: ignore[attr-defined]

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def service(self, principal: str, keytab: str | None = None) -> str:
        """Add ``principal`` (random key) to its realm and export it to a keytab; returns the keytab path."""
        realm = self.b if principal.endswith("@" + B) else self.a
        keytab = keytab or self.path(principal.split("/")[1].split("@")[0] + ".keytab")
        realm.addprinc(principal)  # type: ignore[attr-defined]
        realm.extract_keytab(principal, keytab)  # type: ignore[attr-defined]
        return keytab

    def rekey(self, principal: str) -> None:
        """A new random key (kvno + 1) for ``principal`` in its KDC; no keytab gets it."""
        realm = self.b if principal.endswith("@" + B) else self.a
        realm.run_kadminl(f"cpw -randkey {principal}")  # type: ignore[attr-defined]

    def kinit(self, ccache: str, *flags: str, principal: str = MN, password: str = MN_PASSWORD) -> str:
        self.a.kinit(principal, password, flags=["-c", ccache, *flags])  # type: ignore[attr-defined]
        return ccache

    def stop(self) -> None:
        for r in (self.a, self.b):
            r.stop()  # type: ignore[attr-defined]


@contextlib.contextmanager
def two_realms(clockskew: int = 300) -> Iterator[Realms]:
    pa = _free_portbase()
    pb = pa + 10
    conf = {
        "libdefaults": {"clockskew": str(clockskew), "rdns": "false", "dns_canonicalize_hostname": "false"},
        "realms": {B: {"kdc": f"127.0.0.1:{pb}"}},
        "capaths": {A: {B: "."}, B: {A: "."}},
    }
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5CCNAME", "KRB5_KTNAME", "KRB5_CLIENT_KTNAME",
                                             "KRB5RCACHEDIR", "KRB5_KDC_PROFILE")}
    a = k5test.K5Realm(realm=A, portbase=pa, krb5_conf=conf, create_host=False, get_creds=False)
    try:
        b = k5test.K5Realm(realm=B, portbase=pb, create_host=False, get_creds=False,
                           krb5_conf={"libdefaults": {"clockskew": str(clockskew)}})
    except Exception:
        a.stop()
        raise
    realms = Realms(a, b, dict(a.env))
    try:
        a.addprinc(MN, MN_PASSWORD)
        for r in (a, b):
            r.addprinc(f"krbtgt/{B}@{A}", CROSS_PASSWORD)
        os.environ.update(a.env)
        yield realms
    finally:
        realms.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
