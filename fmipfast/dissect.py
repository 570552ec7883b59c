"""Dissection of captured frames for ``fmipfast decode``: one dict per frame, and its text rendering.

A frame is walked with :func:`fmipfast.frames.parse_frame`; an ICMPv6 payload of the fmipfast type (or an
RS/RA) is decoded with :func:`fmipfast.messages.decode`.  The checksum is verified separately so that a
message with a bad checksum is still shown field by field, flagged ``checksum_ok: false``.  Nothing here
raises on bad bytes: any exception while dissecting a frame (a :class:`MalformedPacket`, or anything else a
decoder lets escape) becomes that frame's ``error`` entry naming the exception, field and offset.  Text
output escapes every character that is not printable (controls, ESC, C1, bidi overrides, ...), since the
strings in a capture are the sender's.

:func:`read_records` is decode's input: the records of a capture, or of hex text with one frame per line,
from a stream the caller opened (a file, a pipe), read as they are needed and bounded per line.

May import: frames, messages, pcap, errors, constants.
"""

from __future__ import annotations

import re
import struct
from typing import Any, BinaryIO, Iterable, Iterator

from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints, Icmp6Type, IpProto
from fmipfast.errors import InvalidField, MalformedPacket, PcapError, escape_text
from fmipfast.frames import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV6,
    LINKTYPE_RAW,
    describe_upper_layer,
    parse_frame,
    requires_hop_limit_255,
)
from fmipfast.messages import FmipMessage, Message, decode
from fmipfast.pcap import PcapReader, PcapRecord

__all__ = ["LINKTYPE_ICMP6", "count", "dissect", "dissect_records", "escape_text", "format_text", "new_counts",
           "summarize", "guess_linktype", "read_records"]

#: Pseudo link type for a bare ICMPv6 message (hex input without IPv6 header; no checksum check possible).
LINKTYPE_ICMP6 = -58


def guess_linktype(data: bytes, codepoints: Codepoints = DEFAULT_CODEPOINTS) -> int:
    """Guess what a hex frame starts with: IPv6 header, Ethernet header or a bare ICMPv6 message."""
    if len(data) >= 40 and data[0] >> 4 == 6 and struct.unpack_from("!H", data, 4)[0] + 40 <= len(data):
        return LINKTYPE_RAW
    if len(data) >= 14 and data[12:14] in (b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x08\x00", b"\x08\x06"):
        return LINKTYPE_ETHERNET
    if data and data[0] in (codepoints.type, Icmp6Type.ROUTER_SOLICITATION, Icmp6Type.ROUTER_ADVERTISEMENT):
        return LINKTYPE_ICMP6
    return LINKTYPE_ETHERNET


def _error(exc: Exception) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, MalformedPacket):
        out["field"], out["offset"] = exc.field, exc.offset
    return out


def _message_fields(msg: Message) -> dict[str, Any]:
    fields = msg.to_json()
    fields.pop("message", None)
    return fields


def dissect(data: bytes, linktype: int = LINKTYPE_ETHERNET, *, codepoints: Codepoints = DEFAULT_CODEPOINTS,
            number: int = 1, ts_ns: int = 0) -> dict[str, Any]:
    """Everything ``fmipfast decode`` says about one frame, as a JSON-ready dict.

    Keys always present: ``frame``, ``time``, ``length``, ``message`` (class name or None), ``code``,
    ``checksum_ok`` (None when there is no fmipfast/ND checksum to check) and ``error`` (None or a dict
    with ``kind``, ``detail``, ``field``, ``offset``).  Decoded messages add the draft's field names
    (``prefix_size``, ``nar_address``, ``ncoa``, ...) and ``options``.  Never raises on bad bytes: whatever
    goes wrong is the frame's ``error``, with the keys filled in before it kept.
    """
    out: dict[str, Any] = {"frame": number, "time": ts_ns / 1e9, "length": len(data), "message": None,
                           "type": None, "code": None, "checksum": None, "checksum_ok": None, "error": None}
    try:
        _dissect_into(out, data, linktype, codepoints)
    except Exception as exc:  # noqa: BLE001 - hostile bytes: any decoder failure is this frame's error
        out["error"] = _error(exc)
    return out


def _dissect_into(out: dict[str, Any], data: bytes, linktype: int, codepoints: Codepoints) -> None:
    parsed = None
    if linktype == LINKTYPE_ICMP6:
        payload = data
        out.update(src=None, dst=None, hop_limit=None)
    else:
        parsed = parse_frame(data, linktype)
        if parsed.src is None:
            if linktype == LINKTYPE_ETHERNET:
                out["ethertype"] = parsed.ethertype
                return
            # raw link types: parse_frame hands back anything whose version nibble is not 6
            version = data[0] >> 4
            if version != 4 or linktype != LINKTYPE_RAW:
                raise InvalidField(f"IP version {version}, expected 6", field="ipv6.version", offset=0)
            out["ip_version"] = version
            return
        out.update(src=str(parsed.src), dst=str(parsed.dst), hop_limit=parsed.hop_limit,
                   headers=[int(h) for h in parsed.headers], ah=parsed.has_ah)
        if parsed.upper_layer != IpProto.ICMPV6:
            out["upper_layer"] = describe_upper_layer(parsed)
            return
        payload = parsed.payload
    if len(payload) < 4:
        out["error"] = {"kind": "Truncated", "detail": f"ICMPv6 header needs 4 octets, have {len(payload)}",
                        "field": "icmpv6", "offset": 0}
        return
    icmp_type, code = payload[0], payload[1]
    checksum = struct.unpack_from("!H", payload, 2)[0]
    out["type"], out["code"], out["checksum"] = icmp_type, code, checksum
    is_ours = icmp_type == codepoints.type or icmp_type in (Icmp6Type.ROUTER_SOLICITATION,
                                                            Icmp6Type.ROUTER_ADVERTISEMENT)
    if not is_ours:
        if parsed is not None:
            out["upper_layer"] = describe_upper_layer(parsed)
        return
    if parsed is not None:
        out["checksum_ok"] = parsed.icmp6_checksum_ok()
    msg = decode(payload, codepoints=codepoints)
    fields = _message_fields(msg)
    out["message"] = msg.NAME
    out.update(fields)
    if out["hop_limit"] is not None:
        out["hop_limit_ok"] = out["hop_limit"] == 255 if requires_hop_limit_255(msg) else True
    if isinstance(msg, FmipMessage) and msg.KEY in ("handover", "handover_error") and linktype != LINKTYPE_ICMP6:
        out["ah_ok"] = bool(out.get("ah"))  # router-to-router messages travel under AH


def dissect_records(records: Iterable[PcapRecord], *, codepoints: Codepoints = DEFAULT_CODEPOINTS,
                    ) -> Iterator[dict[str, Any]]:
    """Dissect records one at a time, as they arrive (nothing is kept)."""
    for number, rec in enumerate(records, 1):
        if rec.linktype not in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV6, LINKTYPE_ICMP6):
            yield {"frame": number, "time": rec.ts_ns / 1e9, "length": len(rec.data), "message": None,
                   "code": None, "checksum_ok": None,
                   "error": {"kind": "UnsupportedLinkType", "detail": f"link type {rec.linktype}",
                             "field": None, "offset": None}}
            continue
        yield dissect(rec.data, rec.linktype, codepoints=codepoints, number=number, ts_ns=rec.ts_ns)


# --- decode's input: a capture, or hex frames one per line --------------------------------------------------
_CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                   b"\x0a\x0d\x0d\x0a")
_MAX_HEX_LINE = 1 << 20  # characters in one line of hex input: a 256 KiB frame with separators, and comments


def _hex_frames(lines: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """One frame per line; '#' starts a comment; spaces, colons and a 0x prefix are ignored."""
    lineno = 0
    for raw in lines:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise PcapError(f"line {lineno + 1}: neither a pcap/pcapng capture nor hex text (octet "
                            f"0x{raw[exc.start]:02x} is not ASCII)") from None
        for line in text.splitlines() or [""]:
            lineno += 1
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            digits = re.sub(r"0x|[\s:.-]", "", line)
            try:
                yield lineno, bytes.fromhex(digits)
            except ValueError:
                raise PcapError(f"line {lineno}: not hexadecimal: {line[:40]!r}") from None


def _lines(head: bytes, fh: Any) -> Iterator[bytes]:
    """The lines of ``head`` + the rest of ``fh``, each read when it is complete (a live pipe), none longer
    than :data:`_MAX_HEX_LINE`."""
    buf = head
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            yield buf[:nl + 1]
            buf = buf[nl + 1:]
            continue
        if len(buf) > _MAX_HEX_LINE:
            raise PcapError(f"a line of more than {_MAX_HEX_LINE} characters: not hex frames")
        more = fh.readline(_MAX_HEX_LINE + 1 - len(buf))
        if not more:
            if buf:
                yield buf
            return
        buf += more


class _Sniffed:
    """A binary reader giving back the octets already read to sniff the format, then the rest of ``f``."""

    def __init__(self, head: bytes, f: Any) -> None:
        self._head = head
        self._f = f

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._f.read(n)


def read_records(fh: BinaryIO, linktype: int | None = None,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS) -> Iterator[PcapRecord]:
    """The records of what ``fh`` holds, read as they are needed (a live pipe is shown as it comes): a
    pcap/pcapng capture, recognised by its magic, or else hex text, one frame per line.  ``linktype`` forces
    what each frame starts with (default: the capture's, or guessed for hex by :func:`guess_linktype`).
    :class:`PcapError` for a damaged capture or text that is not hex, after the records before it."""
    head = b""
    while len(head) < 4:
        more = fh.read(4 - len(head))
        if not more:
            break
        head += more
    if head in _CAPTURE_MAGICS:
        with PcapReader(_Sniffed(head, fh)) as reader:  # type: ignore[arg-type]
            for rec in reader:
                if linktype is not None:
                    rec = PcapRecord(rec.ts_ns, rec.data, linktype, rec.orig_len, rec.interface)
                yield rec
        return
    for _lineno, frame in _hex_frames(_lines(head, fh)):
        lt = linktype if linktype is not None else guess_linktype(frame, codepoints)
        yield PcapRecord(0, frame, lt, len(frame))


def is_bad(info: dict[str, Any]) -> bool:
    """A frame ``--strict`` counts against the exit status: a malformed or unverifiable fmipfast message."""
    if info.get("checksum_ok") is False or info.get("hop_limit_ok") is False or info.get("ah_ok") is False:
        return True
    return info.get("error") is not None and info.get("type") is not None


def new_counts() -> dict[str, int]:
    """The summary counters of ``fmipfast decode``, all zero; :func:`count` adds a frame to them."""
    return {"frames": 0, "fmipfast": 0, "nd": 0, "bad_checksum": 0, "malformed": 0, "other": 0}


def count(counts: dict[str, int], info: dict[str, Any]) -> None:
    """Add one dissected frame to ``counts`` (from :func:`new_counts`)."""
    counts["frames"] += 1
    if info.get("checksum_ok") is False:
        counts["bad_checksum"] += 1
    if info.get("error") is not None:
        counts["malformed"] += 1
    elif info.get("message") in ("RouterSolicitation", "RouterAdvertisement"):
        counts["nd"] += 1
    elif info.get("message"):
        counts["fmipfast"] += 1
    else:
        counts["other"] += 1


def summarize(infos: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = new_counts()
    for info in infos:
        count(counts, info)
    return counts


_SKIP = {"frame", "time", "length", "message", "type", "code", "checksum", "checksum_ok", "error", "src", "dst",
         "hop_limit", "headers", "ah", "upper_layer", "options", "hop_limit_ok", "ah_ok", "ethertype", "ip_version"}


def _fmt_option(opt: dict[str, Any]) -> str:
    kind = opt.get("type")
    rest = " ".join(f"{k}={_fmt_value(v)}" for k, v in opt.items() if k != "type")
    return f"{kind}: {rest}" if rest else str(kind)


def _fmt_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and len(value) > 64:
        return value[:64] + f"... ({len(value) // 2} octets)"
    return str(value)


def format_text(info: dict[str, Any]) -> str:
    """Render one dissected frame for people: a header line, then the message field by field.

    Every character that is not printable is escaped (:func:`escape_text`), and a frame that cannot be
    rendered says so on its own line rather than raising.
    """
    try:
        text = _format_text(info)
    except Exception as exc:  # noqa: BLE001 - a dict this module did not foresee: say so, keep going
        text = (f"frame {info.get('frame')}  {info.get('length')} octets\n"
                f"  ! cannot show this frame: {type(exc).__name__}: {exc}")
    return "\n".join(escape_text(line) for line in text.split("\n"))


def _format_text(info: dict[str, Any]) -> str:
    head = f"frame {info['frame']}  t={info['time']:.6f}  {info['length']} octets"
    lines = []
    if info.get("src") is not None:
        chain = ""
        if info.get("ah"):
            chain = "  [AH]"
        head += f"  {info['src']} -> {info['dst']}  hlim {info['hop_limit']}{chain}"
    elif info.get("ethertype") is not None:
        head += f"  ethertype 0x{info['ethertype']:04x} (not IPv6)"
    elif info.get("ip_version") is not None:
        head += f"  IPv{info['ip_version']} (not IPv6)"
    lines.append(head)
    upper = info.get("upper_layer")
    if info.get("message") is None and info.get("error") is None:
        if upper is not None:
            desc = {IpProto.UDP: "UDP", IpProto.TCP: "TCP", IpProto.ICMPV6: "ICMPv6", IpProto.IPV6: "IPv6-in-IPv6",
                    IpProto.MH: "Mobility Header", IpProto.ESP: "ESP"}.get(upper["next_header"],
                                                                          f"next header {upper['next_header']}")
            extra = ""
            if "sport" in upper:
                extra = f" {upper['sport']} -> {upper['dport']}"
            elif "inner_src" in upper:
                extra = (f" (inner {upper['inner_src']} -> {upper['inner_dst']}, "
                         f"next header {upper['inner_next_header']})")
            elif "icmp_type" in upper:
                extra = f" type {upper['icmp_type']} code {upper['icmp_code']}"
                if upper.get("icmp_name"):
                    extra += f" ({upper['icmp_name']})"
            lines.append(f"  {desc}{extra}  (not an fmipfast message)")
        return "\n".join(lines)
    if info.get("type") is not None:
        ck = info.get("checksum")
        status = {True: "ok", False: "BAD", None: "not checked"}[info.get("checksum_ok")]
        name = info.get("message") or "?"
        lines.append(f"  {name}  (type {info['type']} code {info['code']})  checksum 0x{ck:04x} {status}")
    if info.get("hop_limit_ok") is False:
        lines.append(f"  ! hop limit {info['hop_limit']}: this message must arrive with 255 (docs/design.md §2)")
    if info.get("ah_ok") is False:
        lines.append("  ! no AH header: router-to-router messages are sent under AH (docs/design.md §4)")
    err = info.get("error")
    if err is not None:
        where = ""
        if err.get("field") is not None or err.get("offset") is not None:
            where = f" [field {err.get('field')}, offset {err.get('offset')}]"
        lines.append(f"  ! MALFORMED {err['kind']}: {err['detail']}{where}")
        return "\n".join(lines)
    width = max((len(k) for k in info if k not in _SKIP), default=0)
    for key, value in info.items():
        if key in _SKIP:
            continue
        lines.append(f"    {key:<{width}}  {_fmt_value(value) if value is not None else '-'}")
    for opt in info.get("options", []):
        lines.append(f"    + {_fmt_option(opt)}")
    return "\n".join(lines)
