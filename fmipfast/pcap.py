"""Capture files without scapy: a streaming reader and a classic-format writer (stdlib only).

Implements
  * the classic libpcap format (draft-ietf-opsawg-pcap): file header magic 0xA1B2C3D4 (microsecond
    timestamps) or 0xA1B23C4D (nanosecond timestamps) in either byte order, version 2.x, 16-octet record
    headers; read, and written in little-endian byte order, version 2.4;
  * pcapng (draft-ietf-opsawg-pcapng), read only: Section Header Block (any number of sections, each with
    its own byte order and its own interfaces), Interface Description Block with the ``if_tsresol``
    (code 9) and ``if_tsoffset`` (code 14) options, Enhanced Packet Block, Simple Packet Block and the
    obsolete Packet Block (type 2); every other block type is checked for framing and skipped.

Layouts (every field in the byte order of the file or section)::

    classic file header (24)   magic:32 version_major:16 version_minor:16 thiszone:32 sigfigs:32
                               snaplen:32 linktype:32 (thiszone, sigfigs, FCS bits 16-31 ignored)
    classic record header (16) ts_sec:32 ts_frac:32 (us or ns) caplen:32 orig_len:32, then caplen octets
    pcapng block               type:32 total_length:32 body total_length:32  (length % 4 == 0, >= 12)
    SHB body                   byte_order_magic:32 (0x1A2B3C4D) major:16 (1) minor:16 section_length:64 opts
    IDB body                   linktype:16 reserved:16 snaplen:32 options
    EPB body                   interface_id:32 ts_high:32 ts_low:32 caplen:32 orig_len:32 data pad options
    SPB body                   orig_len:32 data pad  (caplen = min(orig_len, snaplen of interface 0))
    PB body (obsolete)         interface_id:16 drops_count:16 ts_high:32 ts_low:32 caplen:32 orig_len:32 data

Untrusted input: every length is checked before anything is read for it, and no single read asks for
more than ``max_record`` octets (or a fixed header of at most 24), so a damaged file cannot make the
reader allocate gigabytes; a pcapng section may describe at most ``MAX_INTERFACES`` interfaces, so the
memory the reader keeps does not grow with the file either.  Any damage
raises :class:`fmipfast.errors.PcapError` with the file offset (octets from where reading started);
records before the damage have been yielded by then.

Ownership: a reader or writer belongs to the thread that uses it; there is no locking.  Imports nothing
from fmipfast but ``errors`` (scapy is GPL and only a test peer).
"""

from __future__ import annotations

import operator
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Self

from fmipfast.errors import PcapError

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_RAW",
    "MAX_INTERFACES",
    "MAX_RECORD",
    "PcapReader",
    "PcapRecord",
    "PcapWriter",
    "read_pcap",
    "write_pcap",
]

LINKTYPE_ETHERNET = 1  # IEEE 802.3 Ethernet
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LINUX_SLL = 113  # Linux "cooked" capture v1
LINKTYPE_IPV6 = 229  # raw IPv6
LINKTYPE_LINUX_SLL2 = 276  # Linux "cooked" capture v2

MAX_RECORD = 256 * 1024  # default bound on a captured length and on a pcapng block length, in octets
MAX_INTERFACES = 65536  # interface descriptions kept per pcapng section (ids are 16-bit in a Packet Block)
DEFAULT_SNAPLEN = 262144  # what tcpdump and libpcap write today

_NS_PER_S = 1_000_000_000
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_MAGIC_US_LE = struct.pack("<I", _MAGIC_US)
_MAGIC_US_BE = struct.pack(">I", _MAGIC_US)
_MAGIC_NS_LE = struct.pack("<I", _MAGIC_NS)
_MAGIC_NS_BE = struct.pack(">I", _MAGIC_NS)
_CLASSIC_MAGICS = {  # magic octets as stored -> (byte order, nanosecond)
    _MAGIC_US_LE: ("<", False),
    _MAGIC_US_BE: (">", False),
    _MAGIC_NS_LE: ("<", True),
    _MAGIC_NS_BE: (">", True),
}
_CLASSIC_VERSION_MAJOR = 2
_CLASSIC_HDR_LEN = 24
_RECORD_HDR_LEN = 16
_LINKTYPE_MASK = 0xFFFF  # draft-ietf-opsawg-pcap §4: LinkType is the low 16 bits; FCS bits above it

_SHB_TYPE_OCTETS = b"\x0a\x0d\x0d\x0a"  # a palindrome, so the same in both byte orders
_SHB_TYPE = 0x0A0D0D0A
_BOM_BE = b"\x1a\x2b\x3c\x4d"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_PCAPNG_VERSION_MAJOR = 1
_BT_IDB = 1
_BT_PB = 2
_BT_SPB = 3
_BT_EPB = 6
_BLOCK_HDR_LEN = 8  # type + total length
_BLOCK_MIN_LEN = 12  # type + total length + trailing total length
_SHB_MIN_LEN = 28  # 12 + byte-order magic, versions, section length
_IDB_FIXED = 8
_EPB_FIXED = 20
_PB_FIXED = 20
_SPB_FIXED = 4
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_DEFAULT_TSRESOL = 6  # draft-ietf-opsawg-pcapng §4.2: absent if_tsresol means 10^-6 s

_STRUCTS = {
    e: {
        "file": struct.Struct(e + "IHHiIII"),
        "record": struct.Struct(e + "IIII"),
        "u32": struct.Struct(e + "I"),
        "block": struct.Struct(e + "II"),
        "shb": struct.Struct(e + "HHq"),
        "idb": struct.Struct(e + "HHI"),
        "epb": struct.Struct(e + "IIIII"),
        "pb": struct.Struct(e + "HHIIII"),
        "opt": struct.Struct(e + "HH"),
        "i64": struct.Struct(e + "q"),
    }
    for e in ("<", ">")
}


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured frame.

    Attributes
    ----------
    ts_ns : int
        Capture time in nanoseconds since the epoch (0 for a pcapng Simple Packet Block).
    data : bytes
        The captured octets (``len(data)`` is the captured length).
    linktype : int
        LINKTYPE_* of the interface the frame was captured on.
    orig_len : int
        Length of the frame on the wire; may be below ``len(data)`` in files from careless writers.
    interface : int
        Index of the pcapng interface within its section; 0 for classic files.
    """

    ts_ns: int
    data: bytes
    linktype: int
    orig_len: int
    interface: int = 0


@dataclass(slots=True)
class _Interface:
    """A pcapng interface: link type, snap length and the units -> nanoseconds conversion."""

    linktype: int
    snaplen: int
    num: int = 1000  # ns = units * num // den + offset_ns
    den: int = 1
    offset_ns: int = 0

    def ts_ns(self, units: int) -> int:
        return units * self.num // self.den + self.offset_ns


def _truncated(what: str, at: int, need: int, have: int) -> PcapError:
    return PcapError(f"truncated {what} at offset {at}: need {need} octets, have {have}")


class PcapReader:
    """Stream the records of a classic pcap or a pcapng file, in one pass.

    The file header (or first Section Header Block) is read by the constructor; iterating reads the
    rest, and a second iteration continues where the first stopped.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        A path (opened here and closed by :meth:`close`) or an object with ``read(n)`` (left open).
    max_record : int
        Largest captured length and largest pcapng block length accepted, in octets; anything larger is
        a :class:`PcapError` before it is read.

    Attributes
    ----------
    format : str
        ``"pcap"`` or ``"pcapng"``.
    linktype : int or None
        Classic: from the file header.  pcapng: of the first interface, ``None`` until its block is read.
    snaplen : int or None
        Same rules as ``linktype``.

    Raises
    ------
    PcapError
        From the constructor for an empty file, an unknown magic or a damaged file header; from iteration
        for a damaged record or block, after every record before it has been yielded.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, max_record: int = MAX_RECORD) -> None:
        if isinstance(max_record, bool) or not isinstance(max_record, int) or max_record < 1:
            raise ValueError(f"max_record must be a positive int, got {max_record!r}")
        self.max_record = max_record
        self.format: str = ""
        self.linktype: int | None = None
        self.snaplen: int | None = None
        self._pos = 0
        self._e = "<"
        self._ns = False
        self._interfaces: list[_Interface] = []
        self._closed = False
        if isinstance(source, (str, os.PathLike)):
            self._f: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed by close()
            self._owns = True
        elif hasattr(source, "read"):
            self._f = source
            self._owns = False
        else:
            raise TypeError(f"PcapReader needs a path or a binary file object, got {type(source).__name__}")
        try:
            self._read_file_header()
        except BaseException:
            self.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        """Read ``n`` octets, fewer only at end of file; never asks the file for more than ``n``."""
        chunks: list[bytes] = []
        got = 0
        while got < n:
            chunk = self._f.read(n - got)
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray)):
                raise TypeError(f"PcapReader needs a binary file, read() returned {type(chunk).__name__}")
            chunks.append(bytes(chunk))
            got += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._pos += len(data)
        return data

    def _need(self, n: int, what: str) -> bytes:
        at = self._pos
        data = self._read(n)
        if len(data) < n:
            raise _truncated(what, at, n, len(data))
        return data

    def _read_file_header(self) -> None:
        magic = self._read(4)
        if not magic:
            raise PcapError("empty capture file: no magic number at offset 0")
        if len(magic) < 4:
            raise PcapError(f"truncated magic number at offset 0: need 4 octets, have {len(magic)} "
                            f"({magic.hex()})")
        if magic in _CLASSIC_MAGICS:
            self._e, self._ns = _CLASSIC_MAGICS[magic]
            rest = self._need(_CLASSIC_HDR_LEN - 4, "file header")
            _, major, minor, _, _, snaplen, linktype = _STRUCTS[self._e]["file"].unpack(magic + rest)
            if major != _CLASSIC_VERSION_MAJOR:
                raise PcapError(f"unsupported pcap version {major}.{minor} at offset 4 (need 2.x)")
            self.format = "pcap"
            self.snaplen = snaplen
            self.linktype = linktype & _LINKTYPE_MASK
        elif magic == _SHB_TYPE_OCTETS:
            self.format = "pcapng"
            head = magic + self._read(4)
            if len(head) < _BLOCK_HDR_LEN:
                raise _truncated("block header", 0, _BLOCK_HDR_LEN, len(head))
            _, body, at = self._block_from_head(0, head)
            self._on_shb(body, at)
        else:
            raise PcapError(f"unknown magic number 0x{magic.hex()} at offset 0: "
                            "neither classic pcap (0xa1b2c3d4, 0xa1b23c4d) nor pcapng (0x0a0d0d0a)")

    # -- classic ---------------------------------------------------------------------------------------
    def _iter_classic(self) -> Iterator[PcapRecord]:
        rec = _STRUCTS[self._e]["record"]
        frac_ns = 1 if self._ns else 1000
        linktype = self.linktype if self.linktype is not None else 0
        while True:
            at = self._pos
            head = self._read(_RECORD_HDR_LEN)
            if not head:
                return
            if len(head) < _RECORD_HDR_LEN:
                raise _truncated("record header", at, _RECORD_HDR_LEN, len(head))
            sec, frac, caplen, orig_len = rec.unpack(head)
            if caplen > self.max_record:
                raise PcapError(f"record at offset {at}: captured length {caplen} exceeds "
                                f"max_record {self.max_record}")
            data = self._need(caplen, "record data")
            yield PcapRecord(sec * _NS_PER_S + frac * frac_ns, data, linktype, orig_len, 0)

    # -- pcapng ----------------------------------------------------------------------------------------
    def _block_from_head(self, at: int, head: bytes) -> tuple[int, bytes, int]:
        """Finish reading the block whose first 8 octets are ``head``; return (type, body, offset)."""
        if head[:4] == _SHB_TYPE_OCTETS:
            # The byte order of a section is only known from its byte-order magic (§4.1).
            bom = self._need(4, "section header block")
            if bom == _BOM_BE:
                self._e = ">"
            elif bom == _BOM_LE:
                self._e = "<"
            else:
                raise PcapError(f"section header block at offset {at}: bad byte-order magic 0x{bom.hex()}")
            btype, total = _STRUCTS[self._e]["block"].unpack(head)
            self._check_block_length(at, btype, total, _SHB_MIN_LEN)
            rest = self._read(total - 12)
            if len(rest) < total - 12:
                raise _truncated("section header block", at, total, 12 + len(rest))
            body = bom + rest[:-4]
        else:
            btype, total = _STRUCTS[self._e]["block"].unpack(head)
            self._check_block_length(at, btype, total, _BLOCK_MIN_LEN)
            rest = self._read(total - _BLOCK_HDR_LEN)
            if len(rest) < total - _BLOCK_HDR_LEN:
                raise _truncated(f"block (type 0x{btype:x})", at, total, _BLOCK_HDR_LEN + len(rest))
            body = rest[:-4]
        (trailer,) = _STRUCTS[self._e]["u32"].unpack(rest[-4:])
        if trailer != total:
            raise PcapError(f"block (type 0x{btype:x}) at offset {at}: trailing total length {trailer} "
                            f"differs from leading {total}")
        return btype, body, at

    def _check_block_length(self, at: int, btype: int, total: int, minimum: int) -> None:
        # draft-ietf-opsawg-pcapng §3.1: Block Total Length is a multiple of 4, at least 12.
        if total % 4 or total < minimum:
            raise PcapError(f"block (type 0x{btype:x}) at offset {at}: bad total length {total} "
                            f"(need a multiple of 4, at least {minimum})")
        if total > self.max_record:
            raise PcapError(f"block (type 0x{btype:x}) at offset {at}: total length {total} exceeds "
                            f"max_record {self.max_record}")

    def _next_block(self) -> tuple[int, bytes, int] | None:
        at = self._pos
        head = self._read(_BLOCK_HDR_LEN)
        if not head:
            return None
        if len(head) < _BLOCK_HDR_LEN:
            raise _truncated("block header", at, _BLOCK_HDR_LEN, len(head))
        return self._block_from_head(at, head)

    def _options(self, body: bytes, start: int, at: int) -> Iterator[tuple[int, bytes, int]]:
        """Walk the options of a block body from ``start``: (code, value, file offset)."""
        opt = _STRUCTS[self._e]["opt"]
        pos = start
        while pos + 4 <= len(body):
            code, length = opt.unpack_from(body, pos)
            if code == _OPT_ENDOFOPT:
                return
            where = at + _BLOCK_HDR_LEN + pos
            if pos + 4 + length > len(body):
                raise PcapError(f"option {code} at offset {where}: length {length} runs past the end "
                                "of its block")
            yield code, body[pos + 4:pos + 4 + length], where
            pos += 4 + ((length + 3) & ~3)

    def _on_shb(self, body: bytes, at: int) -> None:
        major, minor, _ = _STRUCTS[self._e]["shb"].unpack_from(body, 4)
        if major != _PCAPNG_VERSION_MAJOR:
            raise PcapError(f"section header block at offset {at}: unsupported pcapng version "
                            f"{major}.{minor} (need 1.x)")
        self._interfaces = []  # §4.1: interface ids are per section

    def _on_idb(self, body: bytes, at: int) -> None:
        if len(body) < _IDB_FIXED:
            raise PcapError(f"interface description block at offset {at}: body of {len(body)} octets, "
                            f"need {_IDB_FIXED}")
        s = _STRUCTS[self._e]
        linktype, _, snaplen = s["idb"].unpack_from(body, 0)
        if len(self._interfaces) >= MAX_INTERFACES:
            raise PcapError(f"interface description block at offset {at}: more than {MAX_INTERFACES} "
                            "interfaces in one section")
        iface = _Interface(linktype, snaplen)
        for code, value, where in self._options(body, _IDB_FIXED, at):
            if code == _OPT_IF_TSRESOL:  # §4.2: 1 octet; MSB 0 -> 10^-v s, MSB 1 -> 2^-v s
                if len(value) != 1:
                    raise PcapError(f"if_tsresol option at offset {where}: length {len(value)}, need 1")
                exp = value[0] & 0x7F
                if value[0] & 0x80:
                    iface.num, iface.den = _NS_PER_S, 1 << exp
                elif exp <= 9:
                    iface.num, iface.den = 10 ** (9 - exp), 1
                else:
                    iface.num, iface.den = 1, 10 ** (exp - 9)
            elif code == _OPT_IF_TSOFFSET:  # §4.2: signed 64-bit seconds added to every timestamp
                if len(value) != 8:
                    raise PcapError(f"if_tsoffset option at offset {where}: length {len(value)}, need 8")
                (iface.offset_ns,) = s["i64"].unpack(value)
                iface.offset_ns *= _NS_PER_S
        self._interfaces.append(iface)
        if self.linktype is None:
            self.linktype = linktype
            self.snaplen = snaplen

    def _interface(self, ifid: int, at: int, kind: str) -> _Interface:
        if ifid >= len(self._interfaces):
            raise PcapError(f"{kind} at offset {at}: interface id {ifid} but {len(self._interfaces)} "
                            "interface(s) described in this section")
        return self._interfaces[ifid]

    def _packet(self, body: bytes, at: int, fixed: int, ifid: int, units: int, caplen: int,
                orig_len: int, kind: str) -> PcapRecord:
        if caplen > self.max_record:
            raise PcapError(f"{kind} at offset {at}: captured length {caplen} exceeds "
                            f"max_record {self.max_record}")
        room = len(body) - fixed
        if caplen > room:
            raise PcapError(f"{kind} at offset {at}: captured length {caplen} exceeds the {room} "
                            "octets the block has room for")
        iface = self._interface(ifid, at, kind)
        return PcapRecord(iface.ts_ns(units), body[fixed:fixed + caplen], iface.linktype, orig_len, ifid)

    def _iter_pcapng(self) -> Iterator[PcapRecord]:
        while True:
            block = self._next_block()
            if block is None:
                return
            btype, body, at = block
            s = _STRUCTS[self._e]
            if btype == _SHB_TYPE:
                self._on_shb(body, at)
            elif btype == _BT_IDB:
                self._on_idb(body, at)
            elif btype == _BT_EPB:
                if len(body) < _EPB_FIXED:
                    raise PcapError(f"enhanced packet block at offset {at}: body of {len(body)} octets, "
                                    f"need {_EPB_FIXED}")
                ifid, hi, lo, caplen, orig_len = s["epb"].unpack_from(body, 0)
                yield self._packet(body, at, _EPB_FIXED, ifid, hi << 32 | lo, caplen, orig_len,
                                   "enhanced packet block")
            elif btype == _BT_SPB:
                if len(body) < _SPB_FIXED:
                    raise PcapError(f"simple packet block at offset {at}: body of {len(body)} octets, "
                                    f"need {_SPB_FIXED}")
                # §4.4: no interface id (always 0), no timestamp; captured = min(orig_len, snaplen)
                iface = self._interface(0, at, "simple packet block")
                (orig_len,) = s["u32"].unpack_from(body, 0)
                caplen = orig_len if iface.snaplen == 0 else min(orig_len, iface.snaplen)
                rec = self._packet(body, at, _SPB_FIXED, 0, 0, caplen, orig_len, "simple packet block")
                yield PcapRecord(0, rec.data, rec.linktype, orig_len, 0)
            elif btype == _BT_PB:
                if len(body) < _PB_FIXED:
                    raise PcapError(f"packet block at offset {at}: body of {len(body)} octets, "
                                    f"need {_PB_FIXED}")
                ifid, _, hi, lo, caplen, orig_len = s["pb"].unpack_from(body, 0)
                yield self._packet(body, at, _PB_FIXED, ifid, hi << 32 | lo, caplen, orig_len,
                                   "packet block")
            # any other block type (NRB, ISB, DSB, custom, ...) was framed and is skipped

    # -- public ----------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[PcapRecord]:
        if self._closed:
            raise ValueError("I/O on a closed PcapReader")
        return self._iter_pcapng() if self.format == "pcapng" else self._iter_classic()

    def close(self) -> None:
        """Close the file if this reader opened it; idempotent."""
        if not self._closed:
            self._closed = True
            if self._owns:
                self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class PcapWriter:
    """Write a classic pcap file (little-endian, version 2.4).

    Parameters
    ----------
    dest : str, os.PathLike or binary file object
        A path (created or truncated here, closed by :meth:`close`) or an object with ``write`` (flushed
        by :meth:`close`, left open).
    linktype : int
        LINKTYPE_* written to the file header (0..65535).
    snaplen : int
        Longest record written; longer frames are cut to it and keep their ``orig_len``.
    nanosecond : bool
        Nanosecond timestamps (magic 0xA1B23C4D) or microsecond ones (0xA1B2C3D4, truncated).
    """

    def __init__(self, dest: str | os.PathLike[str] | BinaryIO, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = DEFAULT_SNAPLEN, nanosecond: bool = True) -> None:
        if not 0 <= linktype <= _LINKTYPE_MASK:
            raise ValueError(f"linktype must be in 0..65535, got {linktype}")
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen must be in 1..4294967295, got {snaplen}")
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = bool(nanosecond)
        if isinstance(dest, (str, os.PathLike)):
            self._f: BinaryIO | None = open(dest, "wb")  # noqa: SIM115 - closed by close()
            self._owns = True
        elif hasattr(dest, "write"):
            self._f = dest
            self._owns = False
        else:
            raise TypeError(f"PcapWriter needs a path or a binary file object, got {type(dest).__name__}")
        magic = _MAGIC_NS if self.nanosecond else _MAGIC_US
        self._f.write(_STRUCTS["<"]["file"].pack(magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, data: bytes | bytearray | memoryview, ts_ns: int = 0, orig_len: int | None = None) -> None:
        """Append one record.

        Parameters
        ----------
        data : bytes-like
            The frame; cut to ``snaplen`` octets.
        ts_ns : int
            Capture time in ns since the epoch, 0 <= ts_ns < 2**32 s (microsecond files truncate it).
        orig_len : int, optional
            Length on the wire; default ``len(data)`` before the cut.  May not be below the captured length.
        """
        if self._f is None:
            raise ValueError("write to a closed PcapWriter")
        frame = bytes(memoryview(data))  # memoryview: TypeError for an int rather than zero octets
        wire = len(frame) if orig_len is None else operator.index(orig_len)
        frame = frame[:self.snaplen]
        if not len(frame) <= wire <= 0xFFFFFFFF:
            raise ValueError(f"orig_len {wire} must be in {len(frame)}..4294967295 "
                             f"(captured length {len(frame)})")
        sec, rem = divmod(operator.index(ts_ns), _NS_PER_S)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise ValueError(f"ts_ns {ts_ns} is outside the 32-bit seconds of the pcap format")
        frac = rem if self.nanosecond else rem // 1000
        self._f.write(_STRUCTS["<"]["record"].pack(sec, frac, len(frame), wire) + frame)

    def flush(self) -> None:
        """Flush the underlying file."""
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it; idempotent."""
        f, self._f = self._f, None
        if f is None:
            return
        try:
            f.flush()
        finally:
            if self._owns:
                f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_pcap(source: str | os.PathLike[str] | BinaryIO, max_record: int = MAX_RECORD) -> list[PcapRecord]:
    """Read every record of a pcap or pcapng file; see :class:`PcapReader`."""
    with PcapReader(source, max_record) as reader:
        return list(reader)


def write_pcap(dest: str | os.PathLike[str] | BinaryIO, frames: Iterable[bytes | tuple[int, bytes]],
               linktype: int = LINKTYPE_ETHERNET, nanosecond: bool = True,
               snaplen: int = DEFAULT_SNAPLEN) -> None:
    """Write frames (bytes, timestamp 0, or ``(ts_ns, bytes)``) to a classic pcap file."""
    with PcapWriter(dest, linktype=linktype, snaplen=snaplen, nanosecond=nanosecond) as writer:
        for frame in frames:
            if isinstance(frame, tuple):
                writer.write(frame[1], ts_ns=frame[0])
            else:
                writer.write(frame)
