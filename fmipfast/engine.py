"""The router engine: a user-space IPv6 access router over ports (docs/design.md §5).

This module is the engine's public import path; the code lives in the package :mod:`fmipfast.dataplane`, split
by job (its docstring maps which part does what).  Every name this module offered before the split is still
importable from here.

Ownership: one thread (the asyncio loop of ``Engine.run``) drives an Engine; the tables have a single writer
(docs/conventions.md §3).

May import: dataplane, ports, backend, messages, frames, keys, config, errors, constants.
"""

from __future__ import annotations

from fmipfast import backend as backend
from fmipfast import frames as frames
from fmipfast.config import InterfaceConfig as InterfaceConfig
from fmipfast.config import RouterConfig as RouterConfig
from fmipfast.constants import DEFAULT_CODEPOINTS as DEFAULT_CODEPOINTS
from fmipfast.constants import NODE_STATS as NODE_STATS
from fmipfast.constants import Action as Action
from fmipfast.constants import Codepoints as Codepoints
from fmipfast.constants import DropReason as DropReason
from fmipfast.constants import Icmp6Type as Icmp6Type
from fmipfast.constants import IpProto as IpProto
from fmipfast.constants import NeighborFlag as NeighborFlag
from fmipfast.constants import NeighborState as NeighborState
from fmipfast.constants import Verdict as Verdict
from fmipfast.dataplane import counters as _counters
from fmipfast.dataplane import fib as _fib
from fmipfast.dataplane import handover as _handover
from fmipfast.dataplane import nd as _nd
from fmipfast.dataplane import types as _types
from fmipfast.dataplane.counters import COUNTERS as COUNTERS
from fmipfast.dataplane.counters import ERROR_LOG_INTERVAL_NS as ERROR_LOG_INTERVAL_NS
from fmipfast.dataplane.counters import log as log
from fmipfast.dataplane.deliver import _ND_FIRST as _ND_FIRST
from fmipfast.dataplane.deliver import _ND_LAST as _ND_LAST
from fmipfast.dataplane.engine import EXPIRY_INTERVAL_NS as EXPIRY_INTERVAL_NS
from fmipfast.dataplane.engine import Engine
from fmipfast.dataplane.fib import _MASK64 as _MASK64
from fmipfast.dataplane.handover import _F_HOLD as _F_HOLD
from fmipfast.dataplane.nd import MIN_DELAY_BETWEEN_RAS_NS as MIN_DELAY_BETWEEN_RAS_NS
from fmipfast.dataplane.nd import ORIGINATED_QUEUE as ORIGINATED_QUEUE
from fmipfast.dataplane.nd import solicited_node as solicited_node
from fmipfast.dataplane.pipeline import _A_BUFFER as _A_BUFFER
from fmipfast.dataplane.pipeline import _A_CONTROL as _A_CONTROL
from fmipfast.dataplane.pipeline import _A_DECAP as _A_DECAP
from fmipfast.dataplane.pipeline import _A_DROP as _A_DROP
from fmipfast.dataplane.pipeline import _A_NO_ROUTE as _A_NO_ROUTE
from fmipfast.dataplane.pipeline import _A_RESOLVE as _A_RESOLVE
from fmipfast.dataplane.pipeline import _A_TIME_EXCEEDED as _A_TIME_EXCEEDED
from fmipfast.dataplane.pipeline import _A_TUNNEL as _A_TUNNEL
from fmipfast.dataplane.pipeline import _B_BUFFER as _B_BUFFER
from fmipfast.dataplane.pipeline import _B_CONTROL as _B_CONTROL
from fmipfast.dataplane.pipeline import _B_DECAP as _B_DECAP
from fmipfast.dataplane.pipeline import _B_FORWARD as _B_FORWARD
from fmipfast.dataplane.pipeline import _B_NO_ROUTE as _B_NO_ROUTE
from fmipfast.dataplane.pipeline import _B_RESOLVE as _B_RESOLVE
from fmipfast.dataplane.pipeline import _B_TIME_EXCEEDED as _B_TIME_EXCEEDED
from fmipfast.dataplane.pipeline import _B_TUNNEL as _B_TUNNEL
from fmipfast.dataplane.pipeline import _S_CSUM as _S_CSUM
from fmipfast.dataplane.pipeline import _S_DROPPED as _S_DROPPED
from fmipfast.dataplane.pipeline import _S_HELD as _S_HELD
from fmipfast.dataplane.pipeline import _S_INCOMPLETE as _S_INCOMPLETE
from fmipfast.dataplane.pipeline import _SLOW as _SLOW
from fmipfast.dataplane.pipeline import MAX_DECAP_DEPTH as MAX_DECAP_DEPTH
from fmipfast.dataplane.pipeline import MAX_NESTED_PASSES as MAX_NESTED_PASSES
from fmipfast.dataplane.pipeline import MAX_WAITING_PASSES as MAX_WAITING_PASSES
from fmipfast.dataplane.types import ALL_NODES as ALL_NODES
from fmipfast.dataplane.types import ALL_ROUTERS as ALL_ROUTERS
from fmipfast.dataplane.types import SOLICITED_RA_BURST as SOLICITED_RA_BURST
from fmipfast.dataplane.types import SOLICITED_RA_RATE as SOLICITED_RA_RATE
from fmipfast.dataplane.types import TP_STATUS_CSUMNOTREADY, ControlFrame, Interface
from fmipfast.errors import MalformedPacket as MalformedPacket
from fmipfast.keys import KeyPool as KeyPool
from fmipfast.messages import AdjacentRealms as AdjacentRealms
from fmipfast.messages import AdjacentRealmsRequest as AdjacentRealmsRequest
from fmipfast.messages import EchoReply as EchoReply
from fmipfast.messages import EchoRequest as EchoRequest
from fmipfast.messages import IcmpError as IcmpError
from fmipfast.messages import Message as Message
from fmipfast.messages import Mtu as Mtu
from fmipfast.messages import NeighborAdvertisement as NeighborAdvertisement
from fmipfast.messages import NeighborSolicitation as NeighborSolicitation
from fmipfast.messages import PrefixInformation as PrefixInformation
from fmipfast.messages import RouterAdvertisement as RouterAdvertisement
from fmipfast.messages import RouterSolicitation as RouterSolicitation
from fmipfast.messages import SourceLinkLayerAddress as SourceLinkLayerAddress
from fmipfast.messages import TargetLinkLayerAddress as TargetLinkLayerAddress
from fmipfast.messages import decode as decode
from fmipfast.ports import FrameBatch as FrameBatch
from fmipfast.ports import Port as Port
from fmipfast.ports import pack_frames as pack_frames

__all__ = ["Engine", "Interface", "ControlFrame", "TP_STATUS_CSUMNOTREADY", "ERROR_LOG_INTERVAL_NS"]

# The classify verdicts, neighbor flags and other codes as plain ints, as this module always offered them.
_V_DROP, _V_FORWARD, _V_TUNNEL = int(Verdict.DROP), int(Verdict.FORWARD), int(Verdict.TUNNEL)
_V_DECAP, _V_BUFFER, _V_CONTROL = int(Verdict.DECAP), int(Verdict.BUFFER), int(Verdict.CONTROL)
_F_LOCAL, _F_PROXY, _F_TUNNEL = int(NeighborFlag.LOCAL), int(NeighborFlag.PROXY), int(NeighborFlag.TUNNEL)
_P_MH = int(IpProto.MH)
_R_OTHER_HOST = int(DropReason.OTHER_HOST)
# The names the engine's parts now give without a leading underscore, under the names this module had for them.
_RateLimitedLog = _counters.RateLimitedLog
_Route = _fib.Route
_Hold = _handover.Hold
_Resolving = _nd.Resolving
_PROTECTED = _nd.PROTECTED
_Refused = _types.Refused
_TokenBucket = _types.TokenBucket
