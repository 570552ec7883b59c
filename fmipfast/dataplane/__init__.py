"""The router's data plane (docs/design.md §5) around the compiled kernels, split by job.  ``classify`` and the
forwarding node (``Node``, ``_kernels/node.pxi``) do the per-frame work; the Python here handles what the node
hands over, per block, and is composed by :class:`Engine` from parts that each hold the shared state they need:

=============  ==================================================================================================
``engine``     :class:`Engine`: makes the tables and the parts, the public API, the loop (poll, tick, run), the
               kernel's receive losses
``pipeline``   a block through classify and the node, the stages after it (BUFFER, TUNNEL, DECAP, the ICMPv6
               errors, RESOLVE), the TX vectors, nested passes and the requeue ledger
``deliver``    the CONTROL frames: the protocol hook, ND, echo; delivered or dropped with a reason
``nd``         Neighbor Discovery: the responder (NS, NA, RS, periodic RAs, learning) and the resolver (queues
               per next hop, NS retransmissions, control-path packets waiting for a next hop)
``icmp``       sending what the router originates; ICMPv6 errors under a token bucket
``handover``   the protocol layer's hooks: PROXY entries and their buffers, route-switch holds, tunnels,
               buffer keys, the node's ``entry_key`` / ``entry_peer`` columns
``fib``        the routes, the FIB the node looks up, the control path's route lookups
``counters``   the books (int64 counters per EngineCounter and drops per DropReason, two ledgers), the
               conservation equation, rate-limited error logs
``tables``     one-address access to the neighbor cache
``types``      Interface, ControlFrame, TokenBucket and the shared constants
=============  ==================================================================================================

``fmipfast.engine`` is the public import path of the engine and re-exports what it always offered.

Ownership: one thread drives an Engine and every part of it (docs/conventions.md §3).

May import: ports, backend, messages, frames, keys, config, errors, constants; never fmipfast.reference
(tests/test_imports.py holds the rules).
"""

from __future__ import annotations

from fmipfast.dataplane.engine import Engine
from fmipfast.dataplane.types import ControlFrame, Interface

__all__ = ["Engine", "Interface", "ControlFrame"]
