"""Address, interface-identifier and MAC derivation: the readable oracle of ``_kernels/derive.pxi``.

Implements docs/design.md §3 on top of draft-koodli-mobileip-fastv6-02 §5 (Handover Redirect, M and C bits
clear) and §6 (Handover, M bit clear):

  * new care-of address: the first *prefix size* bits of the NAR address, then the low bits of the
    mobile node's current care-of address (draft §5, "If the `C' bit is not set");
  * NAR link-local address: FE80::/64 followed by the NAR address's interface identifier (draft §5; only
    prefix size 64, docs/design.md §3);
  * the draft's 64-bit MAC fields carry the EUI-64 of the link-layer address: a 48-bit MAC maps to it by
    inserting FF-FE between octets 2 and 3 (IEEE EUI-64, RFC 4291 Appendix A);
  * modified EUI-64 interface identifiers (RFC 4291 §2.5.1, Appendix A) are EUI-64s with the
    universal/local bit (0x02 of octet 0) inverted;
  * MAC from an address without M: IID -> EUI-64 -> 48-bit MAC, failing clearly when the IID is not
    FF-FE based (privacy or stable IIDs, RFC 8981 / RFC 7217): the sender must then set M.

Every input accepts any bytes-like object; every output is ``bytes``.
"""

from __future__ import annotations

from typing import Any

from fmipfast.constants import ADDR_LEN, EUI64_LEN, MAC48_LEN
from fmipfast.errors import DerivationError
from fmipfast.reference.cksum import _index, _need, _octets

__all__ = [
    "eui64_from_address",
    "eui64_from_iid",
    "eui64_from_mac48",
    "iid_from_eui64",
    "link_local_from_mac48",
    "mac48_from_address",
    "mac48_from_eui64",
    "nar_link_local",
    "ncoa_from_prefix",
]

_ADDR_LEN = ADDR_LEN
_EUI64_LEN = EUI64_LEN
_MAC48_LEN = MAC48_LEN
_IID_BITS = 64  # RFC 4291 §2.5.1: interface identifiers of unicast addresses are 64 bits
_LINK_LOCAL_PREFIX = bytes.fromhex("fe80000000000000")  # RFC 4291 §2.5.6: FE80::/64
_UL_BIT = 0x02  # RFC 4291 Appendix A: universal/local bit, octet 0 of an EUI-64
_FFFE = b"\xff\xfe"  # IEEE: the two octets a 48-bit MAC gets in the middle of its EUI-64


def _arg(view: memoryview, name: str, size: int) -> bytes:
    _need(view, name, size)
    return bytes(view)


def _prefix_len(prefix_len: Any) -> int:
    return _index(prefix_len, "prefix_len", 0, 128)


def _flip_ul(eui: bytes) -> bytes:
    return bytes([eui[0] ^ _UL_BIT]) + eui[1:]


def _eui64_to_mac48(eui: bytes) -> bytes | None:
    """The 48-bit MAC inside an FF-FE based EUI-64 (octets 3-4 are FF FE), else ``None``."""
    if eui[3:5] != _FFFE:
        return None
    return eui[:3] + eui[5:]


def ncoa_from_prefix(nar_address: Any, prefix_len: Any, coa: Any) -> bytes:
    """New care-of address: the first ``prefix_len`` bits of ``nar_address``, the rest from ``coa``.

    Draft §5: "If the `C' bit is not set, then the mobile node may determine its new care-of address by
    applying the value in the Prefix Size to select the routing prefix from the address in the Access
    Router IPv6 Address field.  This routing prefix may then be prepended to the lower-order bits of the
    mobile node's current care-of address."  (docs/design.md §3.)

    Parameters
    ----------
    nar_address : bytes-like, 16 octets
    prefix_len : int, 0..128
    coa : bytes-like, 16 octets
        The mobile node's current care-of address.

    Returns
    -------
    bytes
        16 octets.

    Raises
    ------
    ValueError
        Wrong lengths or ``prefix_len`` outside 0..128.
    """
    # Both buffers are converted before any check (the compiled core's argument order), then checked.
    nar_view, coa_view = _octets(nar_address), _octets(coa)
    nar = _arg(nar_view, "nar_address", _ADDR_LEN)
    plen = _prefix_len(prefix_len)
    care_of = _arg(coa_view, "coa", _ADDR_LEN)
    nar_bits = int.from_bytes(nar, "big")
    coa_bits = int.from_bytes(care_of, "big")
    prefix_mask = ((1 << plen) - 1) << (128 - plen)  # the top prefix_len bits
    low_mask = (1 << (128 - plen)) - 1
    return ((nar_bits & prefix_mask) | (coa_bits & low_mask)).to_bytes(_ADDR_LEN, "big")


def nar_link_local(nar_address: Any, prefix_len: Any) -> bytes:
    """NAR link-local address: FE80::/64 followed by the low 64 bits of ``nar_address``.

    Draft §5 replaces the routing prefix with FE80::; docs/design.md §3 allows that only for prefix size 64,
    where the replaced bits are exactly the link-local /64.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` is not 64.
    """
    nar = _arg(_octets(nar_address), "nar_address", _ADDR_LEN)
    plen = _prefix_len(prefix_len)
    if plen != _IID_BITS:
        raise DerivationError(f"link-local derivation needs prefix size 64, got {plen}")
    return _LINK_LOCAL_PREFIX + nar[8:]


def link_local_from_mac48(mac6: Any) -> bytes:
    """FE80::/64 + the modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 Appendix A).

    Example: 00:1b:63:84:45:e6 -> fe80::21b:63ff:fe84:45e6.

    Raises
    ------
    ValueError
        ``mac6`` is not 6 octets.
    """
    return _LINK_LOCAL_PREFIX + iid_from_eui64(eui64_from_mac48(mac6))


def eui64_from_mac48(mac6: Any) -> bytes:
    """The EUI-64 of a 48-bit MAC: FF FE inserted after octet 2, U/L bit untouched (docs/design.md §3).

    Raises
    ------
    ValueError
        ``mac6`` is not 6 octets.
    """
    mac = _arg(_octets(mac6), "mac6", _MAC48_LEN)
    return mac[:3] + _FFFE + mac[3:]


def mac48_from_eui64(eui8: Any) -> bytes:
    """The 48-bit MAC inside an EUI-64 whose octets 3-4 are FF FE (inverse of :func:`eui64_from_mac48`).

    Raises
    ------
    ValueError
        ``eui8`` is not 8 octets.
    DerivationError
        Octets 3-4 are not FF FE, so the EUI-64 is not built from a 48-bit MAC.
    """
    eui = _arg(_octets(eui8), "eui8", _EUI64_LEN)
    mac = _eui64_to_mac48(eui)
    if mac is None:
        raise DerivationError(f"eui8: octets 3-4 are {eui[3]:02X}-{eui[4]:02X}, not FF-FE: not built from a 48-bit MAC")
    return mac


def iid_from_eui64(eui8: Any) -> bytes:
    """Modified EUI-64 interface identifier of an EUI-64: the U/L bit (0x02 of octet 0) inverted.

    Raises
    ------
    ValueError
        ``eui8`` is not 8 octets.
    """
    return _flip_ul(_arg(_octets(eui8), "eui8", _EUI64_LEN))


def eui64_from_iid(iid8: Any) -> bytes:
    """The EUI-64 behind a modified EUI-64 interface identifier: the U/L bit inverted back.

    Raises
    ------
    ValueError
        ``iid8`` is not 8 octets.
    """
    return _flip_ul(_arg(_octets(iid8), "iid8", _EUI64_LEN))


def eui64_from_address(address16: Any, prefix_len: Any) -> bytes:
    """The EUI-64 behind an address's interface identifier: its low 64 bits with the U/L bit inverted.

    Draft §5/§6 without M: the MAC is found by masking off the routing prefix; docs/design.md §3 reads the
    remaining bits as a modified EUI-64 interface identifier.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64: the interface identifier is shorter than an EUI-64.
    """
    address = _arg(_octets(address16), "address16", _ADDR_LEN)
    plen = _prefix_len(prefix_len)
    if plen > _IID_BITS:
        raise DerivationError(
            f"prefix size {plen} leaves a {128 - plen}-bit interface identifier, shorter than an EUI-64"
        )
    return _flip_ul(address[8:])


def mac48_from_address(address16: Any, prefix_len: Any) -> bytes:
    """The 48-bit MAC behind an address's FF-FE based interface identifier (docs/design.md §3, draft §5/§6).

    Equals ``mac48_from_eui64(eui64_from_address(address16, prefix_len))``.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64, or the interface identifier is not FF-FE based (a privacy or stable IID,
        RFC 8981 / RFC 7217): the MAC cannot be derived and the sender must set M.
    """
    eui = eui64_from_address(address16, prefix_len)
    mac = _eui64_to_mac48(eui)
    if mac is None:
        raise DerivationError(
            f"address16: interface identifier {_flip_ul(eui).hex()} is not EUI-64 based (octets 3-4 are "
            f"{eui[3]:02X}-{eui[4]:02X}, not FF-FE; e.g. a privacy or stable IID, RFC 8981/7217): "
            "the MAC cannot be derived, the sender must set M"
        )
    return mac


# --------------------------------------------------------------------------------------------------
# Batch derivations: the oracle is simply the scalar functions above, looped over the rows.

import numpy as np  # noqa: E402  (kept with the batch section it serves)

__all__ += ["eui64_from_mac48_batch", "mac48_from_address_batch", "nar_link_local_batch", "ncoa_batch"]


def _rows(obj: Any, name: str, width: int, allow_single: bool = False) -> np.ndarray:
    """``obj`` as a C-contiguous uint8 array of shape (n, width) (or (width,) when ``allow_single``).

    TypeError names the argument when it is not a uint8 array (no silent casting); ValueError names it
    when the shape is wrong.  A non-contiguous array is copied.
    """
    if obj is None:
        raise TypeError(f"{name}: need a numpy uint8 array, got None")
    arr = np.asarray(obj)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name}: need dtype uint8, got {arr.dtype}")
    if allow_single and arr.ndim == 1 and arr.shape[0] == width:
        return np.ascontiguousarray(arr)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{name}: need shape (n, {width}), got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


def _same_rows(found: int, name: str, n: int) -> None:
    if found != n:
        raise ValueError(f"{name}: need {n} rows (one per entry), got {found}")


def ncoa_batch(nar_addresses: Any, prefix_len: Any, coas: Any) -> np.ndarray:
    """New care-of addresses for many mobile nodes: row i = ``ncoa_from_prefix(nar[i], prefix_len, coas[i])``.

    ``nar_addresses`` is one NAR address, shape (16,), used for every row, or shape (n, 16); ``coas`` has
    shape (n, 16).  Returns uint8 (n, 16).

    Raises
    ------
    TypeError
        An array is not uint8 (the message names it), or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape, a row count that differs from ``coas``'s, or ``prefix_len`` outside 0..128.
    """
    nar = _rows(nar_addresses, "nar_addresses", _ADDR_LEN, True)
    plen = _prefix_len(prefix_len)
    coa = _rows(coas, "coas", _ADDR_LEN)
    n = coa.shape[0]
    if nar.ndim == 2:
        _same_rows(nar.shape[0], "nar_addresses", n)
    out = np.zeros((n, _ADDR_LEN), dtype=np.uint8)
    for i in range(n):
        row = nar if nar.ndim == 1 else nar[i]
        out[i] = np.frombuffer(ncoa_from_prefix(row.tobytes(), plen, coa[i].tobytes()), dtype=np.uint8)
    return out


def nar_link_local_batch(nar_addresses: Any, prefix_len: Any) -> np.ndarray:
    """NAR link-local addresses: row i = ``nar_link_local(nar_addresses[i], prefix_len)``; uint8 (n, 16).

    Raises
    ------
    TypeError
        ``nar_addresses`` is not uint8, or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` is not 64 (also for an empty batch, as the scalar function).
    """
    nar = _rows(nar_addresses, "nar_addresses", _ADDR_LEN)
    plen = _prefix_len(prefix_len)
    if plen != _IID_BITS:
        raise DerivationError(f"link-local derivation needs prefix size 64, got {plen}")
    out = np.zeros((nar.shape[0], _ADDR_LEN), dtype=np.uint8)
    for i in range(nar.shape[0]):
        out[i] = np.frombuffer(nar_link_local(nar[i].tobytes(), plen), dtype=np.uint8)
    return out


def mac48_from_address_batch(addresses: Any, prefix_len: Any) -> tuple[np.ndarray, np.ndarray]:
    """48-bit MACs behind many addresses' FF-FE based interface identifiers, without one exception per row.

    Returns ``(macs, ok)``: uint8 (n, 6) and bool (n,).  Where ``ok`` is False the interface identifier
    is not FF-FE based (a privacy or stable IID: the sender must set M) and the row is zero.

    Raises
    ------
    TypeError
        ``addresses`` is not uint8, or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64: the interface identifier is shorter than an EUI-64 (for every row alike).
    """
    addr = _rows(addresses, "addresses", _ADDR_LEN)
    plen = _prefix_len(prefix_len)
    if plen > _IID_BITS:
        raise DerivationError(
            f"prefix size {plen} leaves a {128 - plen}-bit interface identifier, shorter than an EUI-64"
        )
    n = addr.shape[0]
    macs = np.zeros((n, _MAC48_LEN), dtype=np.uint8)
    ok = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        try:
            mac = mac48_from_address(addr[i].tobytes(), plen)
        except DerivationError:
            continue  # not FF-FE based: ok stays False, the row stays zero
        macs[i] = np.frombuffer(mac, dtype=np.uint8)
        ok[i] = True
    return macs, ok


def eui64_from_mac48_batch(macs: Any) -> np.ndarray:
    """EUI-64s of many 48-bit MACs: row i = ``eui64_from_mac48(macs[i])``; uint8 (n, 8).

    Raises
    ------
    TypeError
        ``macs`` is not uint8.
    ValueError
        A wrong shape.
    """
    arr = _rows(macs, "macs", _MAC48_LEN)
    out = np.zeros((arr.shape[0], _EUI64_LEN), dtype=np.uint8)
    for i in range(arr.shape[0]):
        out[i] = np.frombuffer(eui64_from_mac48(arr[i].tobytes()), dtype=np.uint8)
    return out
