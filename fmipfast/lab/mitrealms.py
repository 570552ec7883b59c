"""Real MIT Kerberos realms for the gssapi mechanism: ``fmipfast demo --kerberos gssapi``, ``fmipfast lab run
--kerberos gssapi``, their tests and the benchmark (k5test: krb5kdc processes, kadmin.local, kinit, all in a
temporary directory; Debian packages krb5-kdc, krb5-admin-server, krb5-user).

``two_realms()`` makes A.EXAMPLE (the MN's home and the PAR) and B.EXAMPLE (the NAR) with cross-realm trust
through the realms' own configuration: ``krbtgt/B.EXAMPLE@A.EXAMPLE`` with the same key in both databases and
``[capaths]`` saying A reaches B directly.  The process's ``KRB5_CONFIG``/``KRB5CCNAME``/``KRB5RCACHEDIR`` point
at realm A's files (whose krb5.conf knows both KDCs) for as long as the realms live.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


#: MIT's programs k5test runs for a realm: (program, Debian package).
MIT_PROGRAMS = (("krb5kdc", "krb5-kdc"), ("kdb5_util", "krb5-kdc"), ("kadmin.local", "krb5-admin-server"),
                ("kinit", "krb5-user"))


class MitUnavailable(ImportError):
    """Throwaway MIT realms cannot be made here: the message names every missing package and program."""


def _program(name: str) -> str | None:
    """Where MIT's ``name`` is: on PATH, or in /usr/sbin (k5test's default, often not on a user's PATH)."""
    found = shutil.which(name)
    if found is None and os.access(f"/usr/sbin/{name}", os.X_OK):
        found = f"/usr/sbin/{name}"
    return found


def require_mit() -> None:
    """Check, before anything is started, that throwaway MIT realms can be made and used: the Python packages
    ``k5test`` and ``gssapi`` (with MIT's GSS-API library) and MIT's KDC programs; :class:`MitUnavailable`
    names everything that is missing and how to install it."""
    missing: list[str] = []
    try:
        import k5test  # noqa: F401
    except ImportError:
        missing.append("the Python package 'k5test' (pip install k5test)")
    try:
        from fmipfast.security.gss import require_gssapi

        require_gssapi()
    except ImportError:
        missing.append("the Python package 'gssapi' with MIT's libgssapi_krb5 (pip install 'fmipfast[krb5]'; "
                       "Debian: libkrb5-dev to build it)")
    absent = [(name, pkg) for name, pkg in MIT_PROGRAMS if _program(name) is None]
    if absent:
        packages = " ".join(dict.fromkeys(pkg for _, pkg in absent))
        missing.append(f"MIT's {', '.join(name for name, _ in absent)} (Debian: apt-get install {packages})")
    if missing:
        raise MitUnavailable("standard Kerberos (--kerberos gssapi) needs real MIT realms; missing: "
                             + "; ".join(missing))


def _k5test() -> Any:
    require_mit()
    import k5test

    return k5test


@dataclass
class Realms:
    a: Any
    b: Any
    env: dict[str, str]

    @property
    def tmp(self) -> str:
        return self.a.tmpdir

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def service(self, principal: str, keytab: str | None = None) -> str:
        """Add ``principal`` (random key) to its realm and export it to a keytab; returns the keytab path."""
        realm = self.b if principal.endswith("@" + B) else self.a
        keytab = keytab or self.path(principal.split("/")[1].split("@")[0] + ".keytab")
        realm.addprinc(principal)
        realm.extract_keytab(principal, keytab)
        return keytab

    def rekey(self, principal: str) -> None:
        """A new random key (kvno + 1) for ``principal`` in its KDC; no keytab gets it."""
        realm = self.b if principal.endswith("@" + B) else self.a
        realm.run_kadminl(f"cpw -randkey {principal}")

    def kinit(self, ccache: str, *flags: str, principal: str = MN, password: str = MN_PASSWORD) -> str:
        self.a.kinit(principal, password, flags=["-c", ccache, *flags])
        return ccache

    def stop(self) -> None:
        for r in (self.a, self.b):
            r.stop()


@contextlib.contextmanager
def two_realms(clockskew: int = 300) -> Iterator[Realms]:
    k5test = _k5test()  # MitUnavailable, naming what is missing, before anything is made
    pa = _free_portbase()
    pb = pa + 10
    conf = {
        "libdefaults": {"clockskew": str(clockskew), "rdns": "false", "dns_canonicalize_hostname": "false"},
        "realms": {B: {"kdc": f"127.0.0.1:{pb}"}},
        "capaths": {A: {B: "."}, B: {A: "."}},
        "domain_realm": {".a.example": A, ".b.example": B},  # host-based names: access@nar.b.example
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


@dataclass
class DemoKerberos:
    """What the demo's gssapi world needs from the realms: the routers' service principals and keytabs, the
    MN's credentials (a ccache from kinit), and which routers to precache per adjacent realm."""

    par_service: str
    nar_service: str
    par_keytab: str
    nar_keytab: str
    ccache: str
    rcache_dir: str
    adjacent: dict[str, tuple[str, ...]]


def demo_kerberos(realms: Realms) -> DemoKerberos:
    """Service principals for the PAR (realm A) and the NAR (realm B), their keytabs, and the MN's TGT."""
    par_kt = realms.service(PAR_SERVICE)
    nar_kt = realms.service(NAR_SERVICE)
    cc = realms.kinit(realms.path("mn.ccache"))
    return DemoKerberos(PAR_SERVICE, NAR_SERVICE, par_kt, nar_kt, cc, realms.tmp, {B: (NAR_SERVICE,)})
