"""The fmipfast messages: frozen dataclasses, ``encode()`` and ``decode()``.

Implements the seven messages of docs/design.md §2 (draft-koodli-mobileip-fastv6-02 §5, §6, §6.1, §7, Fig. 4,
App. A), their sub-options, and the Router Solicitation / Advertisement of RFC 4861 §4.1-§4.2 with the
project's ND option 253 (draft §6.1.1 adjacent realms).  ``decode(encode(m)) == m`` for every message
(the ``checksum`` field is excluded from equality: it is an output of encoding).

Every decode failure is a :class:`fmipfast.errors.MalformedPacket` subclass naming the field and the
octet offset (counted from the ICMPv6 Type octet):

* :class:`~fmipfast.errors.Truncated` — the message ends before a fixed field;
* :class:`~fmipfast.errors.BadChecksum` — the RFC 4443 §2.3 checksum fails (only when ``src`` and
  ``dst`` are given, since the pseudo-header needs them);
* :class:`~fmipfast.errors.BadOption` — sub-option/ND option length below its header, past the end, of
  the wrong size for its type, or bad LKB fragmentation;
* :class:`~fmipfast.errors.UnsupportedType` — an ICMPv6 type or Code this codepoint profile lacks;
* :class:`~fmipfast.errors.InvalidField` — a field value the draft forbids, or flags that disagree with
  what is present (M, C, S; the Length field of HRA-shaped messages).

Exception contract (hostile octets are the normal case):

* :func:`decode` (and :func:`mac_value_offset`, which decodes) raises, for *any* octets, only
  :class:`~fmipfast.errors.MalformedPacket` or one of the subclasses above — never ``IndexError``,
  ``struct.error``, ``UnicodeDecodeError``, an enum's ``ValueError`` or a constructor's ``ValueError``.
  Every field is length-checked before it is sliced and range-checked before it becomes an enum or a
  dataclass.  As a last line of defence, an unexpected exception inside a parser is re-raised as a bare
  ``MalformedPacket`` naming the message, chained (``__cause__``) to the original: that is a bug to fix
  (the fuzz tests fail on it), never a crash of the receiver.  Only the *arguments* can raise otherwise:
  ``TypeError`` when ``data`` is a ``str`` or an ``int`` (``bytes(5)`` would be five zero octets), and
  ``ValueError`` (not ``MalformedPacket``) for an unparseable ``src``/``dst`` or only one of them.
* :meth:`BindingUpdate.decode_mh`, :meth:`BindingUpdate.decode_packet`, :meth:`BindingAck.decode_mh` and
  :meth:`BindingAck.decode_packet` (what a raw Mobility Header socket hands over) raise only
  ``Truncated`` (shorter than the MH type's minimum or than its Header Len), ``InvalidField`` (not IPv6,
  not next header 135, Payload Proto not 59, Header Len below the minimum) or ``UnsupportedType`` (another
  MH Type) — all ``MalformedPacket``, hence still ``ValueError`` for older callers.
* Construction and :func:`encode` raise ``ValueError`` for any value that could never be encoded (out of
  range integers, wrong-size octets, text that is not encodable as UTF-8, a non-iterable or wrong-typed
  ``options``, a message over 65535 octets); never ``struct.error``, ``OverflowError`` or ``TypeError``
  for a value of the wrong type.  ``encode`` without ``src``/``dst`` and without a ``checksum`` is a
  ``ValueError`` too.

ND options on the wire (RFC 4861 §4.6): a length of 0 or one past the end is :class:`BadOption`, and so
is option type 0 (no ND option has it; it is what zeroed or shifted octets look like).  The Source and
Target Link-Layer Address options (types 1 and 2) are decoded for **Ethernet only** (RFC 2464 §8, RFC 4861
§4.6.1): exactly one 8-octet unit holding a 6-octet MAC; any other length is :class:`BadOption`, and
:class:`SourceLinkLayerAddress`/:class:`TargetLinkLayerAddress` only hold 6 octets — so ``.address`` of a
decoded option is always a usable MAC.  (Linux drops an NS/NA/RS/RA whose link-layer option has the wrong
length the same way, "invalid link-layer address length".)

Reserved fields are sent as zero and ignored on receipt (RFC 4861 §4 convention); see docs/spec-notes.md
for every such choice.

The package holds one module per section of the wire; this module is the façade that re-exports every public
name, so ``from fmipfast.messages import X`` is the way in:

* :mod:`.base` — :data:`AddressLike`, :data:`MAX_MESSAGE_LEN`, :class:`Message` and the field checks;
* :mod:`.mobility_header` — Binding Update and Binding Acknowledgement (RFC 6275 §6.1);
* :mod:`.suboptions` — the sub-options (docs/design.md §2);
* :mod:`.fmipv6` — the seven fmipfast messages (draft §5, §6, §6.1, §7, Fig. 4, App. A);
* :mod:`.nd` — Neighbor Discovery, echo and ICMPv6 error messages, the ND options (RFC 4861, RFC 4443);
* :mod:`.codec` — :func:`encode`, :func:`decode` and the MAC and checksum helpers.

Each imports only modules above it in this list (the codec depends on the messages, never the reverse; the
sub-options need the Mobility Header for sub-option 5); ``tests/test_imports.py`` checks that order.
"""

from fmipfast.messages.base import MAX_MESSAGE_LEN, AddressLike, Message
from fmipfast.messages.codec import decode, encode, mac_offset_of, mac_value_offset, refill_checksum
from fmipfast.messages.fmipv6 import (
    MESSAGE_CLASSES,
    Attach,
    AuthenticatedMN,
    FmipMessage,
    ForwardingDisable,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
)
from fmipfast.messages.mobility_header import BindingAck, BindingUpdate, binding_ack, is_binding_ack
from fmipfast.messages.nd import (
    ICMP_ERROR_MAX_INVOKING,
    AdjacentRealms,
    AdjacentRealmsRequest,
    EchoReply,
    EchoRequest,
    IcmpError,
    Mtu,
    NdOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    PlainIcmp,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownNdOption,
)
from fmipfast.messages.suboptions import (
    AddressOption,
    EncapsulatedPacket,
    HandoverControl,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Principal,
    Status,
    SubOption,
    UnknownSubOption,
)

__all__ = [
    "AddressLike",
    # sub-options
    "SubOption",
    "Principal",
    "LkbMessage",
    "HandoverControl",
    "AddressOption",
    "EncapsulatedPacket",
    "Identifier",
    "MessageAuthCode",
    "Status",
    "LinkLayerAddress",
    "UnknownSubOption",
    # fmipfast messages
    "Message",
    "FmipMessage",
    "HandoverRedirect",
    "HandoverRedirectAck",
    "IcmpHandover",
    "AuthenticatedMN",
    "Attach",
    "HandoverError",
    "ForwardingDisable",
    "MESSAGE_CLASSES",
    # ND
    "NdOption",
    "SourceLinkLayerAddress",
    "TargetLinkLayerAddress",
    "PrefixInformation",
    "Mtu",
    "AdjacentRealmsRequest",
    "AdjacentRealms",
    "UnknownNdOption",
    "PlainIcmp",
    "RouterSolicitation",
    "RouterAdvertisement",
    "NeighborSolicitation",
    "NeighborAdvertisement",
    "EchoRequest",
    "EchoReply",
    "IcmpError",
    "ICMP_ERROR_MAX_INVOKING",
    # Mobility header
    "BindingUpdate",
    "BindingAck",
    "binding_ack",
    "is_binding_ack",
    # functions
    "encode",
    "decode",
    "mac_value_offset",
    "mac_offset_of",
    "refill_checksum",
    "MAX_MESSAGE_LEN",
]
