"""The data plane package (fmipfast.dataplane): the books as int64 arrays behind a live ``dict`` of counters,
the Port protocol as the only face of a port the engine uses, and the public import path ``fmipfast.engine``
still offering every name it offered before the split."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Iterator

import numpy as np
import pytest
from scapy.layers.inet import UDP

from fmipfast import engine as engine_module
from fmipfast.constants import DropReason, EngineCounter
from fmipfast.dataplane import counters as books_module
from fmipfast.dataplane.counters import COUNTERS, Books, CounterView, Ledger
from fmipfast.ports import FrameBatch, MemoryPort, PcapPort, Port, RingPort, pack_frames
from tests.test_engine import H1, H1_MAC, Net, answer_ns, udp


# ---------------------------------------------------------------------------------------------------- the books
def test_the_counters_are_int64_rows_named_by_engine_counter():
    net = Net()
    e = net.engine
    assert tuple(e.counters) == COUNTERS == tuple(c.name.lower() for c in EngineCounter)
    assert COUNTERS[:8] == ("received", "forwarded", "tunnelled", "decapsulated", "buffered", "queued_resolve",
                            "delivered", "dropped")  # the conservation terms: one contiguous slice
    ledger = e._books.main
    assert ledger.counts.dtype == np.int64 and ledger.drops.dtype == np.int64
    assert e.drops is ledger.drops and e.drops.shape == (len(DropReason),)
    assert e.requeue_drops is e._books.requeue.drops and e.requeue_drops.dtype == np.int64
    # the forwarding node adds into the same memory, in its uint64 form
    assert np.shares_memory(ledger.node_drops, ledger.drops) and ledger.node_drops.dtype == np.uint64
    net.send(net.core, udp(payload=b"x"))
    assert ledger.counts[EngineCounter.RECEIVED] == e.counters["received"] == 1
    net.check_conservation()


def test_the_counters_dict_is_live_and_reads_like_a_dict():
    net = Net()
    c = net.engine.counters
    assert isinstance(c, dict) and c["received"] == 0 and type(c["received"]) is int
    net.send(net.core, udp(payload=b"x"))
    net.send(net.core, udp(payload=b"y"))
    assert c["received"] == 2 and c["queued_resolve"] == 2, "a reference taken before sees the new values"
    snapshot = dict(c)
    assert type(snapshot) is dict and snapshot["received"] == 2 and list(snapshot) == list(COUNTERS)
    assert {**c} == snapshot == c and c == snapshot and not (c != snapshot)
    assert c.copy() == snapshot and type(c.copy()) is dict
    assert json.loads(json.dumps(c)) == snapshot
    assert json.loads(json.dumps({"c": c}, sort_keys=True, indent=1))["c"] == snapshot
    assert dict(c.items()) == snapshot and sorted(c.values()) == sorted(snapshot.values())
    assert c.get("received") == 2 and c.get("nope") is None and c.get("nope", 7) == 7
    assert "received" in c and "nope" not in c and len(c) == len(COUNTERS)
    assert repr(c) == repr(snapshot)
    assert pickle.loads(pickle.dumps(c)) == snapshot and copy.copy(c) == snapshot
    assert copy.deepcopy(c) == snapshot and type(copy.deepcopy(c)) is dict
    assert c | {"x": 1} == {**snapshot, "x": 1} and {"x": 1} | c == {"x": 1, **snapshot}


def test_the_counters_dict_writes_through_and_keeps_its_names():
    view = Ledger().view
    view["ns_sent"] += 3
    view.update(ra_sent=2)
    assert view["ns_sent"] == 3 and view["ra_sent"] == 2
    with pytest.raises(KeyError):
        view["not_a_counter"] = 1
    with pytest.raises(KeyError):
        view["not_a_counter"]
    for remove in (lambda: view.pop("ns_sent"), view.popitem, view.clear, lambda: view.__delitem__("ns_sent")):
        with pytest.raises(TypeError):
            remove()
    assert len(view) == len(COUNTERS)


def test_a_dataclass_holding_the_counters_converts_to_a_plain_copy():
    """``dataclasses.asdict`` rebuilds a dict subclass from its pairs (the demo's Result holds the counters)."""

    @dataclasses.dataclass
    class Result:
        counters: dict[str, int]

    ledger = Ledger()
    ledger.c[books_module.FORWARDED] += 5
    out = dataclasses.asdict(Result(ledger.view))["counters"]
    assert out == ledger.view and out["forwarded"] == 5
    ledger.c[books_module.FORWARDED] += 1
    assert out["forwarded"] == 5, "a copy, not the live view"
    assert json.loads(json.dumps(out))["forwarded"] == 5
    with pytest.raises(ValueError):
        CounterView(names=("a", "b"), counts=np.zeros(3, dtype=np.int64))


def test_ledger_drops_and_statuses_keep_the_equation():
    ledger = Ledger()
    ledger.c[books_module.RECEIVED] += 10
    ledger.drop(DropReason.NO_ROUTE, 3)
    ledger.drop(DropReason.NO_ROUTE, 0)
    ledger.drop_statuses(np.array([int(DropReason.BUFFER_FULL)] * 4 + [250], dtype=np.uint8))
    ledger.c[books_module.FORWARDED] += 2
    assert ledger.drop_counts() == {"buffer_full": 4, "no_route": 3, "internal_error": 1}
    assert ledger.conservation() == {"received": 10, "dispositions": 10, "holds": True, "dropped": 8}
    assert ledger.dispositions() == 10 and ledger.view["dropped"] == 8


def test_books_switch_between_the_ledgers():
    books = Books()
    assert books.now is books.main
    before = books.switch(books.requeue)
    assert before is books.main and books.now is books.requeue
    books.switch(before)
    assert books.now is books.main


def test_requeued_frames_are_booked_in_the_second_ledger():
    net = Net()
    net.send(net.core, udp(payload=b"q"))
    answer_ns(net, net.drain(net.h1)[0], net.h1, H1, H1_MAC)
    e = net.engine
    assert [bytes(f[UDP].payload) for f in net.drain(net.h1)] == [b"q"]
    assert e.requeue_counters["forwarded"] == 1 and e.counters["forwarded"] == 0
    assert e._books.requeue.counts[EngineCounter.FORWARDED] == 1 and e._books.now is e._books.main
    net.check_conservation()


# ----------------------------------------------------------------------------------------------- the Port protocol
class _LossyPort:
    """A port that is not a Port subclass: only the protocol's members (a structural implementation)."""

    name = "lossy"
    mac = bytes.fromhex("02005e0000ee")

    def __init__(self) -> None:
        self.losses = (0, 0)
        self.sent = 0

    def fileno(self) -> int | None:
        return None

    def filenos(self) -> list[int]:
        return []

    def receive(self) -> Iterator[FrameBatch]:
        return iter(())

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        self.sent += int(offsets.shape[0])
        return int(offsets.shape[0])

    def send_frames(self, frames: object) -> int:
        return self.send(*pack_frames(frames))  # type: ignore[arg-type]

    def receive_losses(self) -> tuple[int, int]:
        return self.losses

    def statistics(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


def test_the_port_protocol_and_its_defaults():
    port = MemoryPort("m", bytes(6))
    assert isinstance(port, Port) and isinstance(_LossyPort(), Port)
    assert port.receive_losses() == (0, 0) and port.filenos() == [] and port.statistics()["rx_frames"] == 0
    assert PcapPort("p", bytes(6)).receive_losses() == (0, 0)
    assert "receive_losses" in vars(RingPort)  # the ring's kernel drops and damaged blocks


def test_poll_reads_every_ports_control_frames_before_any_ring_block():
    """A port that keeps its control frames apart (``receive_control``) has them read before the frames of
    every port, those listed before it included: an Attach on the access link does not wait behind the core
    link's ring blocks.  A port's own frames keep their order (its control frames were first already)."""
    from fmipfast import config
    from tests.test_engine import TOML

    order: list[str] = []

    class _Split(_LossyPort):
        def __init__(self, name: str, control: bool) -> None:
            super().__init__()
            self.name, self.has_control = name, control

        def _batch(self, what: str) -> Iterator[FrameBatch]:
            order.append(f"{self.name}:{what}")
            return iter(())

        def receive(self) -> Iterator[FrameBatch]:
            if self.has_control:
                yield from self.receive_control()
            yield from self._batch("ring")

        def receive_control(self) -> Iterator[FrameBatch]:
            return self._batch("control") if self.has_control else iter(())

    # the port with a control socket is the second interface: listed first, acc0 would be read first anyway
    ports = {"acc0": _Split("acc0", False), "up0": _Split("up0", True)}
    e = engine_module.Engine(config.loads(TOML).router, ports, clock=lambda: 1, seed=bytes(16))
    assert [i.name for i in e.interfaces] == ["acc0", "up0"]
    order.clear()
    e.poll()
    assert order == ["up0:control", "acc0:ring", "up0:control", "up0:ring"], order


def test_losses_a_port_reports_are_received_and_dropped_once():
    """The engine reads a port's losses through the protocol only: their growth since the last poll is booked
    as received and dropped (KERNEL_RING_DROP, RING_WALK_ERROR), so the equation holds."""
    from fmipfast import config
    from tests.test_engine import TOML

    port = _LossyPort()
    ports = {"acc0": port, "up0": MemoryPort("up0", bytes.fromhex("02005e0000ef"))}
    e = engine_module.Engine(config.loads(TOML).router, ports, clock=lambda: 1, seed=bytes(16))
    e.poll()
    port.losses = (5, 2)
    e.poll()
    port.losses = (7, 2)
    e.poll()
    e.poll()
    assert e.drops[DropReason.KERNEL_RING_DROP] == 7 and e.drops[DropReason.RING_WALK_ERROR] == 2
    assert e.counters["received"] == 9 and e.conservation()["holds"]


# ------------------------------------------------------------------------------------------------- the façade
def test_fmipfast_engine_offers_the_public_names():
    for name in engine_module.__all__:
        assert getattr(engine_module, name) is not None, name
    assert {"Engine", "Interface", "ControlFrame", "TP_STATUS_CSUMNOTREADY", "solicited_node"} <= set(
        engine_module.__all__)
    assert engine_module.log.name == "fmipfast.engine"
    assert engine_module.Engine.__module__ == "fmipfast.dataplane.engine"


def test_the_engine_keeps_the_attributes_tests_and_tools_reach_into():
    net = Net()
    e = net.engine
    idx = e.proxy_add("2001:db8:1::77", None, 1000)
    assert e._proxy_key[idx] >= 0 and e._proxy_aliases and not e._tunnel_peer and not e._hold
    assert not e._hold_alias and not e._resolving and not e._originated and e._depth == 0
    assert len(e._batches) >= 1 and e._node.entry_key[idx] == e._proxy_key[idx]
    assert e._iface_by_name["acc0"] is e.interfaces[0]
    hook = lambda cf: None  # noqa: E731
    e.control = hook
    assert e.control is hook and e._delivery.control is hook
    e.on_event = print
    assert e._handover.on_event is print
    net.check_conservation()
