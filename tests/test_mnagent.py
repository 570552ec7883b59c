"""The MN agent on a real kernel (root): an ``mn`` namespace whose interface ``mn0`` is a veth to a ``peer``
namespace where the test plays both access routers — two ``fmipfast.ar.AccessRouter`` machines (A = PAR,
B = NAR) behind one raw ICMPv6 socket on ``pr0``, light-weight Kerberos case 1 (each router verifies with its
own service key).  Router-to-router messages (HI, HE) go between the two machines in-process (AH is the
engine's business, not the MN's).  An AF_PACKET capture on ``pr0`` checks with scapy what the MN put on the
wire: the ICMPv6 checksum over the real addresses and hop limit 255.  The layer-2 move of the handover is
a carrier change: ``pr0`` goes down and up (``keep_addr_on_down`` keeps the routers' addresses)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast.constants import DEFAULT_CODEPOINTS, FmipCode
from fmipfast.messages import AdjacentRealms as RealmsOption
from fmipfast.messages import RouterAdvertisement, encode
from fmipfast.mn import MnState
from fmipfast.mnagent import icmp6_filter
from fmipfast.protocol import Received, Send, SetDefaultRoute, Tick, Trigger, Verified, Verify
from fmipfast.rtnetlink import IFF_LOWER_UP, IFF_UP, RTM_NEWLINK
from fmipfast.rtnetlink import parse_links as _parse_links
from fmipfast.security import lwkerb as L

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root for network namespaces, raw sockets and netlink "
                                                 "(CI runs as root)")

REALM_A, REALM_B, REALM_MN = "REALM-A", "REALM-B", "HOME"
P_A = L.Principal("host/ar-a", REALM_A)
P_B = L.Principal("host/ar-b", REALM_B)
P_MN = L.Principal("mn1", REALM_MN)
AR_A = IPv6Address("2001:db8:a::5eff:fe10:1")
AR_B = IPv6Address("2001:db8:b::5eff:fe10:2")
AR_A_LL = IPv6Address("fe80::5eff:fe10:1")
AR_B_LL = IPv6Address("fe80::5eff:fe10:2")  # also pr0's own link-local: its MAC is 02:00:5e:10:00:02
PEER_MAC = "02:00:5e:10:00:02"
MN_MAC = bytes.fromhex("001b638445e6")
PCOA_A = IPv6Address("2001:db8:a::21b:63ff:fe84:45e6")
NCOA_B = IPv6Address("2001:db8:b::21b:63ff:fe84:45e6")
HA = IPv6Address("2001:db8:ff::1")
IN6_PKTINFO = struct.Struct("=16sI")
T_LIMIT = 20.0  # seconds any one scenario may take


# ============================================================================================ no root needed


def test_icmp6_filter_passes_exactly_the_given_types():
    raw = icmp6_filter(200, 134)
    words = struct.unpack("=8I", raw)
    blocked = {t for t in range(256) if words[t >> 5] >> (t & 31) & 1}
    assert set(range(256)) - blocked == {200, 134}
    with pytest.raises(ValueError):
        icmp6_filter(256)


def _newlink(index: int, flags: int, master: int | None = None, mtype: int = RTM_NEWLINK) -> bytes:
    attrs = b""
    if master is not None:
        attrs += struct.pack("=HHI", 8, 10, master)
    attrs += struct.pack("=HH", 8, 3) + b"mn0\0"  # IFLA_IFNAME
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF) + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def test_link_notifications_are_parsed_for_our_interface_only():
    data = _newlink(7, IFF_UP | IFF_LOWER_UP, master=3) + _newlink(8, IFF_UP) + _newlink(7, IFF_UP)
    assert _parse_links(data, 7) == [(RTM_NEWLINK, IFF_UP | IFF_LOWER_UP, 3), (RTM_NEWLINK, IFF_UP, None)]
    # truncated and zero-length garbage never raises
    for cut in range(len(data)):
        _parse_links(data[:cut], 7)
    assert _parse_links(b"\0" * 64, 7) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 16))
def test_a_link_messages_attributes_give_its_master_only_when_asked(garbage, cut):
    """The agent reads a carrier change without walking the message's attributes (link_messages) and looks
    for IFLA_MASTER (link_master) only when the link's name needs it: the two steps give what parse_links
    gives, on well-formed messages and on any bytes, truncated anywhere, and never raise."""
    from fmipfast.rtnetlink import link_master, link_messages

    data = _newlink(7, IFF_UP | IFF_LOWER_UP, master=3) + garbage + _newlink(7, IFF_UP)
    for blob in (data, data[:len(data) - cut], garbage):
        assert [(m, f, link_master(a)) for m, f, a in link_messages(blob, 7)] == _parse_links(blob, 7)
    assert [(m, f, link_master(a)) for m, f, a in link_messages(_newlink(7, IFF_UP, master=9), 7)] == [
        (RTM_NEWLINK, IFF_UP, 9)]


# ============================================================================================ the lab


def _credentials(now: float, lifetime: int = 3600) -> tuple[dict[L.Principal, L.Credentials], dict[str, L.ApVerifier]]:
    """Case 1 key material (as tests/test_handover_fsm.py builds it), valid from just before the real time
    ``now`` for ``lifetime`` seconds."""
    tickets, verifiers = {}, {}
    for name, realm, principal, kvno in (("A", REALM_A, P_A, 3), ("B", REALM_B, P_B, 4)):
        key = L.Key(kvno, bytes((kvno * 7 + i) & 0xFF for i in range(32)))
        keytab = L.Keytab()
        keytab.add(principal, key)
        skey = L.Key(0, bytes((kvno * 13 + i) & 0xFF for i in range(32)))
        start, end = int(now) - 10, int(now) + lifetime
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, start, start, end, skey.value, P_MN)
        ticket = L.Ticket.issue(principal, key, part)
        tickets[principal] = L.Credentials(P_MN, principal, ticket, skey, part.flags, start, start, end)
        verifiers[name] = L.ApVerifier(realm, keytab, clock=time.time)
    return tickets, verifiers


class Lab:
    """Two namespaces, the veth between them, the addresses; :meth:`close` deletes everything."""

    def __init__(self) -> None:
        from fmipfast.lab.namespaces.netns import Netns

        tag = f"{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.mn = Netns(f"mna-mn-{tag}")
        self.peer: Netns | None = None
        try:
            self.peer = Netns(f"mna-peer-{tag}")
            self.mn.veth("mn0", "pr0", peer_ns=self.peer, up=False, ipv6=True)
            self.mn.ip("link", "set", "mn0", "address", ":".join(f"{b:02x}" for b in MN_MAC))
            self.peer.ip("link", "set", "pr0", "address", PEER_MAC)
            self.mn.sysctl("net.ipv6.conf.mn0.accept_ra", 0)
            for key, value in (("accept_dad", 0), ("keep_addr_on_down", 1), ("forwarding", 1)):
                self.peer.sysctl(f"net.ipv6.conf.pr0.{key}", value)
            for address in (f"{AR_A}/64", f"{AR_B}/64", f"{AR_A_LL}/64"):
                self.peer.ip("-6", "addr", "add", address, "dev", "pr0", "nodad")
            self.mn.ip("-6", "addr", "add", f"{PCOA_A}/64", "dev", "mn0", "nodad")
            self.peer.ip("link", "set", "pr0", "up")
            self.mn.ip("link", "set", "mn0", "up")
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        return [ns.name for ns in (self.mn, self.peer) if ns is not None]

    def mn_ip(self, *args: str) -> str:
        return self.mn.ip(*args).stdout

    def close(self) -> None:
        for ns in (self.mn, self.peer):
            if ns is not None:
                ns.delete()


def _open_raw(ifname: str, *types: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    s.setsockopt(socket.IPPROTO_ICMPV6, 1, icmp6_filter(*types))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    s.setblocking(False)
    return s


class Peer:
    """The routers A and B on ``pr0``: the machines, their raw socket, and a capture of what arrives."""

    def __init__(self, lab: Lab, verifiers: dict[str, L.ApVerifier]) -> None:
        from fmipfast.ar import AccessRouter

        self.lab = lab
        self.verifiers = verifiers
        self.routers = {"A": AccessRouter(AR_A, first_identifier=0x100),
                        "B": AccessRouter(AR_B, first_identifier=0x200)}
        assert lab.peer is not None
        with lab.peer.enter():
            self.ifindex = socket.if_nametoindex("pr0")
            self.sock = _open_raw("pr0", DEFAULT_CODEPOINTS.type)
            self.cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
            self.cap.bind(("pr0", 0x86DD))
            self.cap.setblocking(False)
        self.frames: list[bytes] = []  # every IPv6 frame the MN sent (PACKET_HOST on pr0)
        self.received: list[Received] = []
        self.log: list[tuple[str, object]] = []
        self.send_errors = 0

    def close(self) -> None:
        self.sock.close()
        self.cap.close()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._on_icmp)
        loop.add_reader(self.cap.fileno(), self._on_frame)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        loop.remove_reader(self.cap.fileno())

    def _on_frame(self) -> None:
        while True:
            try:
                frame, addr = self.cap.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:  # ENETDOWN while pr0 is down
                continue
            if addr[2] == socket.PACKET_HOST:
                self.frames.append(frame)

    def _on_icmp(self) -> None:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
            except (BlockingIOError, OSError):
                return
            dst = hop = None
            for level, kind, value in anc:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                    dst = IPv6Address(IN6_PKTINFO.unpack_from(value)[0])
                elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                    hop = struct.unpack_from("=i", value)[0]
            assert dst is not None and hop is not None
            ev = Received(bytes(data), IPv6Address(addr[0].split("%")[0]), dst, hop, "pr0", False)
            self.received.append(ev)
            who = "A" if dst in (AR_A, AR_A_LL) else "B" if dst in (AR_B, AR_B_LL) else None
            if who is not None:
                self.feed(who, ev)

    def feed(self, who: str, event: object) -> None:
        for action in self.routers[who].handle(event, time.monotonic_ns()):  # type: ignore[arg-type]
            self.log.append((who, action))
            if isinstance(action, Send):
                if action.ah:  # HI / HE: router to router, in-process (AH verified by the engine in real life)
                    other = "B" if who == "A" else "A"
                    self.feed(other, Received(action.icmp, action.src, action.dst, action.hop_limit, "", True))
                else:
                    self.send(action.icmp, action.src, action.dst, action.hop_limit)
            elif isinstance(action, Verify):
                try:
                    ctx = self.verifiers[who].verify_local(action.ap_req, action.binding)
                    self.feed(who, Verified(action.request_id, ctx))
                except L.LkbError as exc:
                    self.feed(who, Verified(action.request_id, None, str(exc)))

    def send(self, icmp: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int = 255) -> None:
        anc = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, IN6_PKTINFO.pack(src.packed, self.ifindex)),
               (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("=i", hop_limit))]
        scope = self.ifindex if dst.is_link_local or dst.is_multicast else 0
        try:
            self.sock.sendmsg([icmp], anc, 0, (str(dst), 0, 0, scope))
        except OSError:
            self.send_errors += 1

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            for who, r in self.routers.items():
                d = r.next_deadline()
                if d is not None and d <= time.monotonic_ns():
                    self.feed(who, Tick())

    def mn_messages(self) -> list[tuple[int, int, bool]]:
        """(code, hop limit, checksum verifies over the frame's addresses) of each fmipfast frame from the MN,
        checked by scapy from the captured Ethernet frames."""
        from scapy.layers.inet6 import IPv6, in6_chksum
        from scapy.layers.l2 import Ether

        out = []
        for frame in self.frames:
            ip = Ether(frame)[IPv6]
            if ip.nh != socket.IPPROTO_ICMPV6:
                continue
            raw = frame[14 + 40:14 + 40 + ip.plen]
            if raw[0] != DEFAULT_CODEPOINTS.type:
                continue
            wire = int.from_bytes(raw[2:4], "big")
            ok = in6_chksum(socket.IPPROTO_ICMPV6, ip, raw[:2] + b"\0\0" + raw[4:]) == wire
            out.append((raw[1], ip.hlim, ok))
        return out


async def _until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def lab():
    if not ROOT:
        pytest.skip("needs root")
    from fmipfast.lab.namespaces.netns import _ip

    lb = Lab()
    try:
        yield lb
    finally:
        lb.close()
        listed = _ip("netns", "list", check=False).stdout
        assert not any(name in listed for name in lb.names), f"namespace left behind: {listed}"


def _agent(lab: Lab, tickets: dict, **kw):
    from fmipfast.mnagent import MnAgent

    async def provider(server: L.Principal) -> L.Credentials:
        await asyncio.sleep(0)
        return tickets[server]

    with lab.mn.enter():
        return MnAgent("mn0", home_agent=HA, ticket_provider=provider, **kw)


def _code(name: str) -> int:
    return int(FmipCode[name])


# ============================================================================================ over the wire


@needs_root
@pytest.mark.parametrize("keep_pcoa", [False, True], ids=["pcoa-removed", "pcoa-kept"])
def test_attach_and_fast_handover_over_real_links(lab: Lab, keep_pcoa: bool):
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    switches: list[IPv6Address] = []
    notes: list[str] = []

    async def move() -> None:
        # the layer-2 move: a short delay (the HRA is on its way), then carrier off and on at the "new" link
        await asyncio.sleep(0.05)
        agent.next_link = "B"
        for state in ("down", "up"):
            assert lab.peer is not None
            proc = await asyncio.create_subprocess_exec("ip", "-n", lab.peer.name, "link", "set", "pr0", state)
            assert await proc.wait() == 0
            await asyncio.sleep(0.05)

    def ready(nar: IPv6Address) -> None:
        switches.append(nar)
        asyncio.get_running_loop().create_task(move())

    timed: list[tuple[str, dict, int]] = []

    def on_note(n, t: int) -> None:
        notes.append(n.name)
        timed.append((n.name, n.fields, t))

    agent = _agent(lab, tickets, on_ready_to_switch=ready, on_note=on_note, keep_pcoa=keep_pcoa)
    assert agent.mac == MN_MAC  # read from the interface
    released: list[IPv6Address] = []
    kept_before_release: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        peer.attach(loop)
        ticker = loop.create_task(peer.tick())
        runner = loop.create_task(agent.run(stop))
        try:
            # initial attach: Attach with the AP-REQ -> Authenticated-MN, over the wire
            agent.start(AR_A, P_A, PCOA_A, "A")
            await _until(lambda: agent.mn.state == MnState.ATTACHED, "initial attach")
            assert peer.routers["A"].counters.get("bad_checksum", 0) == 0
            # fast handover: the PAR's Redirect -> HRA -> (HI/HE) -> move -> Attach at the NAR -> AMN
            peer.feed("A", Trigger(PCOA_A, AR_B, P_B))
            await _until(lambda: agent.mn.counters["handovers_completed"] == 1, "the handover")
            await _until(lambda: len(peer.mn_messages()) >= agent.counters["tx_sent"], "the capture")
            if keep_pcoa:  # the binding update completed: now the PCoA goes
                kept_before_release.append(lab.mn_ip("-6", "addr", "show", "dev", "mn0"))
                released.extend(await agent.release_retired())
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)
            ticker.cancel()
            peer.detach(loop)

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        assert switches == [AR_B]  # ReadyToSwitch names the NAR
        # what the MN put on the wire: Attach, HRA, Attach; hop limit 255; checksums verify (scapy)
        wire = peer.mn_messages()
        codes = [c for i, (c, _, _) in enumerate(wire) if i == 0 or wire[i - 1][0] != c]  # retransmissions once
        assert codes == [_code("ATTACH"), _code("HANDOVER_REDIRECT_ACK"), _code("ATTACH")], wire
        assert all(h == 255 and ok for _, h, ok in wire), wire
        # ... and the routers' machines accepted them (checksum, hop limit, MAC, AP-REQ)
        assert peer.routers["B"].counters.get("bad_mac", 0) == 0
        assert sum(1 for w, a in peer.log if w == "B" and type(a).__name__ == "ProxyComplete") == 1
        # the kernel state: NCoA without DAD, PCoA removed, NAR neighbor preloaded, default route via its LL
        addrs = lab.mn_ip("-6", "addr", "show", "dev", "mn0")
        line = next(x for x in addrs.splitlines() if str(NCOA_B) in x)
        assert "tentative" not in line and "nodad" in line, addrs
        assert str(PCOA_A) not in addrs
        if keep_pcoa:  # kept through the handover, removed only by release_retired()
            assert str(PCOA_A) in kept_before_release[0] and released == [PCOA_A], kept_before_release
            assert agent.counters["pcoa_kept"] == 1 and agent.retired == []
        else:
            assert agent.counters["pcoa_kept"] == 0 and released == []
        neigh = lab.mn_ip("-6", "neigh", "show", "dev", "mn0")
        assert f"{AR_B_LL} lladdr {PEER_MAC}" in neigh and "FAILED" not in neigh, neigh
        route = lab.mn_ip("-6", "route", "show", "default")
        assert f"default via {AR_B_LL} dev mn0" in route, route
        # link events came from the carrier change
        assert agent.counters["link_down"] >= 1 and agent.counters["link_up"] >= 1
        for name in ("tx_errors", "netlink_errors", "rx_errors", "ticket_errors", "callback_errors"):
            assert agent.counters[name] == 0, agent.counters
        # on a loaded machine an Attach may be retransmitted (150 ms backoff): every send is on the wire
        assert agent.counters["tx_sent"] == len(wire) == 3 + agent.mn.counters["retransmitted"], wire
        assert agent.counters["rx_fmip"] >= 3
        assert {"send", "recv", "state", "link", "carrier"} <= set(notes)
        # the carrier note is stamped when the netlink notification was read: a down, then an up before the
        # Attach that up triggered
        carrier = [(f["up"], t) for name, f, t in timed if name == "carrier"]
        attach_at_b = [t for name, f, t in timed if name == "send" and f["message"] == "Attach"][-1]
        assert [up for up, _ in carrier][-2:] == [False, True] and carrier[-1][1] <= attach_at_b, timed
        # ... and made (like every note of that link up) once the Attach is out: nothing stands between the
        # carrier and the Attach but the machine and the kernel's configuration
        # (the first Attach after the carrier went down: a retransmission may follow later)
        order = [(name, f) for name, f, _ in timed]
        down_note = max(i for i, (name, f) in enumerate(order) if name == "carrier" and not f["up"])
        up_note = next(i for i, (name, f) in enumerate(order) if i > down_note and name == "carrier" and f["up"])
        attach_note = next(i for i, (name, f) in enumerate(order)
                           if i > down_note and name == "send" and f["message"] == "Attach")
        assert attach_note < up_note, order
        assert agent.mn.counters["bad_checksum"] == 0 and agent.mn.counters["bad_hop_limit"] == 0
    finally:
        agent.close()
        peer.close()


@needs_root
def test_bad_input_ra_precache_link_methods_and_failures_are_counted(lab: Lab):
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    precached: list[tuple[str, ...]] = []

    async def precache(realms: tuple[str, ...]) -> None:
        precached.append(realms)

    agent = _agent(lab, tickets, precache=precache)
    seen: list[object] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        runner = loop.create_task(agent.run(stop))
        try:
            await asyncio.sleep(0.05)
            # a truncated Handover Redirect with a valid checksum (the kernel fills it in): the machine counts
            peer.send(bytes((DEFAULT_CODEPOINTS.type, _code("HANDOVER_REDIRECT"), 0, 0, 1)), AR_A, PCOA_A)
            await _until(lambda: agent.mn.counters["malformed"] == 1, "the malformed message")
            # an RA listing adjacent realms -> Precache; one with hop limit 64 is rejected (RFC 4861 §6.1.2)
            ra = RouterAdvertisement(options=(RealmsOption(("REALM-B", "REALM-C")),))
            peer.send(encode(ra, AR_A_LL, "ff02::1"), AR_A_LL, IPv6Address("ff02::1"), 255)
            await _until(lambda: precached == [("REALM-B", "REALM-C")], "precache")
            peer.send(encode(ra, AR_A_LL, "ff02::1"), AR_A_LL, IPv6Address("ff02::1"), 64)
            await _until(lambda: agent.counters["rx_ra_rejected"] == 1, "the rejected RA")
            assert agent.mn.counters["precache_requests"] == 1
            # explicit link methods
            agent.link_down()
            agent.link_up("X")
            await _until(lambda: agent.counters["link_up"] == 1, "link_up")
            # carrier off/on on the peer side -> LinkDown, LinkUp named after the interface
            for state in ("down", "up"):
                assert lab.peer is not None
                lab.peer.ip("link", "set", "pr0", state)
            await _until(lambda: agent.counters["link_up"] == 2 and agent.counters["link_down"] == 1, "carrier")
            # failures are counted, never raised: a send from an address the MN does not have (the kernel
            # refuses a non-local IPV6_PKTINFO source), a datagram too large for IPv6, a route via an
            # unreachable gateway, removing an address that is not there
            from fmipfast.protocol import RemoveAddress

            await agent._execute(Send(b"\xc8\x02\0\0\0\0\0\0", IPv6Address("2001:db8:99::1"), AR_A, 255))
            await agent._execute(Send(b"\xc8\x02" + bytes(70000), IPv6Address("2001:db8:99::1"), AR_A, 255))
            await agent._execute(SetDefaultRoute(IPv6Address("2001:db8:dead::1"), "X"))
            await agent._execute(RemoveAddress(IPv6Address("2001:db8:77::1")))
            seen.append(dict(agent.counters))
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        c = seen[0]
        assert isinstance(c, dict)
        assert c["tx_errors"] == 2 and c["netlink_errors"] == 1 and c["address_missing"] == 1, c
        assert c["rx_ra"] == 2 and c["rx_fmip"] == 1, c
        assert agent.mn.state == MnState.IDLE  # nothing above moved the machine
    finally:
        agent.close()
        peer.close()


@needs_root
def test_the_timer_drives_attach_retransmissions_until_the_machine_gives_up(lab: Lab):
    """No router answers: the agent's next_deadline() timer retransmits the Attach with the backoff and the
    machine gives up after max_tries (real time, a short backoff)."""
    from fmipfast.protocol import Backoff

    tickets, _ = _credentials(time.time())
    agent = _agent(lab, tickets, backoff=Backoff(initial_ms=20, factor=2, max_tries=3))  # 20+40+80 ms

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(agent.run(stop))
        try:
            agent.start(AR_A, P_A, PCOA_A, "A")
            await _until(lambda: agent.mn.counters["attach_failed"] == 1, "the attach to fail")
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)

    try:
        t0 = time.monotonic()
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        assert time.monotonic() - t0 >= 0.14
        assert agent.mn.counters["retransmitted"] == 2 and agent.counters["tx_sent"] == 3, agent.counters
        assert agent.mn.state == MnState.IDLE
    finally:
        agent.close()


@needs_root
def test_link_up_is_named_after_the_master_bridge_unless_the_lab_names_it(lab: Lab):
    """Carrier up on an interface enslaved to a bridge -> LinkUp(<bridge>); ``next_link`` wins once.  A carrier
    change read while the agent is idle is handled by the netlink reader itself (no task: no hop through the
    queue to the worker) unless the link's name needs a netlink query (the master bridge's)."""
    tickets, _ = _credentials(time.time())
    for cmd in (("link", "add", "linkB", "type", "bridge"), ("link", "add", "vx0", "type", "veth", "peer", "name",
                                                             "vx1"),
                ("link", "set", "vx0", "master", "linkB"), ("link", "set", "linkB", "up"),
                ("link", "set", "vx0", "up"), ("link", "set", "vx1", "up")):
        lab.mn.ip(*cmd)
    from fmipfast.mnagent import MnAgent

    with lab.mn.enter():
        agent = MnAgent("vx0", MN_MAC, ticket_provider=tickets.__getitem__)
    events: list[object] = []
    on_reader: list[bool] = []
    handle = agent.mn.handle

    def spy(event, now_ns):  # type: ignore[no-untyped-def]
        events.append(event)
        on_reader.append(asyncio.current_task() is None)  # a reader callback runs outside every task
        return handle(event, now_ns)

    agent.mn.handle = spy  # type: ignore[method-assign]

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(agent.run(stop))
        try:
            for name in (None, "C"):
                agent.next_link = name
                for state in ("down", "up"):
                    lab.mn.ip("link", "set", "vx1", state)
                    await asyncio.sleep(0.05)
            await _until(lambda: len(events) == 4, "four link events")
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        assert [type(e).__name__ for e in events] == ["LinkDown", "LinkUp", "LinkDown", "LinkUp"]
        assert [getattr(e, "link", None) for e in events if type(e).__name__ == "LinkUp"] == ["linkB", "C"]
        assert agent.next_link is None
        assert on_reader == [True, False, True, True], on_reader  # "linkB": the bridge's name was asked for
    finally:
        agent.close()


@needs_root
def test_consecutive_configuration_steps_go_in_one_rtnetlink_batch_each_failure_counted(lab: Lab):
    """The worker hands consecutive ConfigureAddress / PreloadNeighbor / SetDefaultRoute to the kernel in one
    sendmsg: each is applied in order, and one failing (a gateway off-link) is counted without stopping the
    others."""
    from fmipfast.protocol import ConfigureAddress, PreloadNeighbor, RemoveAddress

    tickets, _ = _credentials(time.time())
    agent = _agent(lab, tickets)
    assert agent._rtnl is not None
    sends: list[int] = []
    agent._rtnl.sock = _CountingSocket(agent._rtnl.sock, sends)
    try:
        agent._rtnl_actions([PreloadNeighbor(AR_B_LL, bytes.fromhex("02005e100002"), "B"),
                             SetDefaultRoute(IPv6Address("2001:db8:dead::1"), "B"),
                             ConfigureAddress(NCOA_B, "B"), SetDefaultRoute(AR_B_LL, "B")])
        assert len(sends) == 1 and agent.counters["netlink_errors"] == 1, (sends, agent.counters)
        assert f"{NCOA_B}/64" in lab.mn_ip("-6", "addr", "show", "dev", "mn0")
        assert "REACHABLE" in lab.mn_ip("-6", "neigh", "show", str(AR_B_LL), "dev", "mn0")
        assert f"via {AR_B_LL} dev mn0" in lab.mn_ip("-6", "route", "show", "default")
        asyncio.run(asyncio.wait_for(agent._execute(RemoveAddress(NCOA_B)), T_LIMIT))
    finally:
        agent.close()


class _CountingSocket:
    """A socket whose sends are counted (the length of each)."""

    def __init__(self, sock: socket.socket, sends: list[int]) -> None:
        self._sock, self._sends = sock, sends

    def send(self, data: bytes, *args: int) -> int:
        self._sends.append(len(data))
        return self._sock.send(data, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


@needs_root
def test_remove_address_and_netlink_actions_directly(lab: Lab):
    """ConfigureAddress / PreloadNeighbor / SetDefaultRoute / RemoveAddress each against the kernel."""
    from fmipfast.protocol import ConfigureAddress, PreloadNeighbor, RemoveAddress

    tickets, _ = _credentials(time.time())
    agent = _agent(lab, tickets)

    async def scenario() -> None:
        await agent._execute(ConfigureAddress(NCOA_B, "B"))
        addrs = lab.mn_ip("-6", "addr", "show", "dev", "mn0")
        assert f"{NCOA_B}/64" in addrs and "tentative" not in addrs.split(str(NCOA_B))[1].splitlines()[0]
        await agent._execute(ConfigureAddress(NCOA_B, "B"))  # again: idempotent (replace)
        await agent._execute(PreloadNeighbor(AR_B_LL, bytes.fromhex("02005e100002"), "B"))
        await agent._execute(SetDefaultRoute(AR_B_LL, "B"))
        await agent._execute(SetDefaultRoute(AR_A_LL, "B"))  # replaced, not added
        await agent._execute(RemoveAddress(NCOA_B))

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        assert agent.counters["netlink_errors"] == 0, agent.counters
        assert str(NCOA_B) not in lab.mn_ip("-6", "addr", "show", "dev", "mn0")
        assert "REACHABLE" in lab.mn_ip("-6", "neigh", "show", str(AR_B_LL), "dev", "mn0")
        routes = lab.mn_ip("-6", "route", "show", "default").strip().splitlines()
        assert len(routes) == 1 and f"via {AR_A_LL} dev mn0" in routes[0], routes
    finally:
        agent.close()



def test_solicit_asks_for_adjacent_realms(lab: Lab):
    """The MN's RS carries ND option 253 sub-type 1 (draft §6.1.1), hop limit 255, from its link-local."""
    from fmipfast.messages import AdjacentRealmsRequest, RouterSolicitation, decode

    tickets, _ = _credentials(time.time())
    agent = _agent(lab, tickets)
    assert lab.peer is not None
    with lab.peer.enter():
        listener = _open_raw("pr0", 133)
    try:
        deadline = time.monotonic() + 5
        while not agent.solicit():  # the link-local address may still be tentative for a moment
            assert time.monotonic() < deadline, "the RS could not be sent"
            time.sleep(0.05)
        got = None
        while got is None and time.monotonic() < deadline:
            try:
                data, anc, _flags, addr = listener.recvmsg(2048, 256)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            hops = [struct.unpack("=i", d)[0] for lvl, t, d in anc if t == socket.IPV6_HOPLIMIT]
            got = (data, IPv6Address(addr[0].split("%")[0]), hops)
        assert got is not None, "no Router Solicitation arrived"
        data, src, hops = got
        msg = decode(data)
        assert isinstance(msg, RouterSolicitation) and AdjacentRealmsRequest() in msg.options
        assert src.is_link_local and hops == [255]
    finally:
        listener.close()
        agent.close()


@needs_root
def test_a_retired_pcoa_configured_again_is_no_longer_released(lab: Lab):
    """A→B→A within the release delay: the address the machine configures again is current, so the BAck of
    the earlier binding must not remove it (``release_retired`` releases only what is still retired)."""
    from fmipfast.protocol import ConfigureAddress, RemoveAddress

    tickets, _ = _credentials(time.time())
    agent = _agent(lab, tickets, keep_pcoa=True)
    released: list = []

    async def scenario() -> None:
        await agent._execute(ConfigureAddress(NCOA_B, "B"))
        await agent._execute(RemoveAddress(NCOA_B, retired=True))  # left B: kept until the BAck
        assert agent.retired == [NCOA_B]
        await agent._execute(ConfigureAddress(NCOA_B, "B"))  # back on B before the BAck came
        assert agent.retired == []
        released.extend(await agent.release_retired())

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
        assert released == [] and agent.counters["netlink_errors"] == 0, agent.counters
        assert f"{NCOA_B}/64" in lab.mn_ip("-6", "addr", "show", "dev", "mn0")
    finally:
        agent.close()


@needs_root
def test_an_ra_flood_runs_one_precache_at_a_time(lab: Lab):
    """RAs are unauthenticated and come as fast as an on-link host sends them: while one precache (KDC
    exchanges in the background) runs, the RAs that ask for another are counted, not stacked up as tasks."""
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    started: list[tuple[str, ...]] = []
    release = asyncio.Event()

    async def precache(realms: tuple[str, ...]) -> None:
        started.append(realms)
        await release.wait()

    agent = _agent(lab, tickets, precache=precache)

    async def scenario() -> None:
        nonlocal release
        release = asyncio.Event()
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(agent.run(stop))
        try:
            await asyncio.sleep(0.05)
            ra = encode(RouterAdvertisement(options=(RealmsOption(("REALM-B",)),)), AR_A_LL, "ff02::1")
            for _ in range(20):
                peer.send(ra, AR_A_LL, IPv6Address("ff02::1"), 255)
            await _until(lambda: agent.counters["rx_ra"] == 20, "the RAs")
            await _until(lambda: agent.mn.counters["precache_requests"] == 20, "the machine's requests")
            assert len(started) == 1 and agent.counters["precache_busy"] == 19, agent.counters
            release.set()
            await asyncio.sleep(0.05)
            peer.send(ra, AR_A_LL, IPv6Address("ff02::1"), 255)  # the first one done: the next RA runs again
            await _until(lambda: len(started) == 2, "the next precache")
        finally:
            release.set()
            stop.set()
            await asyncio.wait_for(runner, 5)

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
    finally:
        agent.close()
        peer.close()
