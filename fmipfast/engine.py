"""The router engine: a user-space IPv6 access router over ports (docs/design.md §5).

This module is the engine's public import path; the code lives in the package :mod:`fmipfast.dataplane`, split
by job (its docstring maps which part does what).  Here are the Engine, the types its API takes, and its
tunables and limits; the parts' internals are the package's own.

Ownership: one thread (the asyncio loop of ``Engine.run``) drives an Engine; the tables have a single writer
(docs/conventions.md §3).

May import: dataplane.
"""

from __future__ import annotations

from fmipfast.dataplane.counters import COUNTERS, ERROR_LOG_INTERVAL_NS, log
from fmipfast.dataplane.engine import EXPIRY_INTERVAL_NS, Engine
from fmipfast.dataplane.nd import MIN_DELAY_BETWEEN_RAS_NS, ORIGINATED_QUEUE, solicited_node
from fmipfast.dataplane.pipeline import MAX_DECAP_DEPTH, MAX_NESTED_PASSES, MAX_WAITING_PASSES
from fmipfast.dataplane.types import (
    ALL_NODES,
    ALL_ROUTERS,
    SOLICITED_RA_BURST,
    SOLICITED_RA_RATE,
    TP_STATUS_CSUMNOTREADY,
    ControlFrame,
    FrameBatch,
    Interface,
)

__all__ = ["Engine", "Interface", "ControlFrame", "FrameBatch", "TP_STATUS_CSUMNOTREADY", "ERROR_LOG_INTERVAL_NS",
           "COUNTERS", "EXPIRY_INTERVAL_NS", "ALL_NODES", "ALL_ROUTERS", "SOLICITED_RA_RATE", "SOLICITED_RA_BURST",
           "MIN_DELAY_BETWEEN_RAS_NS", "ORIGINATED_QUEUE", "MAX_DECAP_DEPTH", "MAX_NESTED_PASSES",
           "MAX_WAITING_PASSES", "solicited_node", "log"]
