"""The engine's routing through the compiled FIB: the same answers as a naive longest-prefix match over the
configured routes, for any number of routes, and the first configured of two routes for one prefix wins."""

from __future__ import annotations

import ipaddress
import random
from ipaddress import IPv6Address

import numpy as np

from fmipfast import config
from tests.test_engine import TOML, Net

IFACES = {"acc0": 0, "up0": 1}


def _toml_with_routes(routes: list[tuple[str, str, str]]) -> str:
    extra = "".join(f'[[router.routes]]\nprefix = "{p}"\nvia = "{v}"\ninterface = "{i}"\n' for p, v, i in routes)
    return TOML + extra


def _naive(routes, dst: IPv6Address):
    best = None
    for n, (prefix, via, iface) in enumerate(routes):
        net = ipaddress.IPv6Network(prefix, strict=False)
        if dst in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, n, IFACES[iface], IPv6Address(via))
    return best


def test_engine_routes_agree_with_a_naive_longest_prefix_match_over_a_thousand_routes():
    rng = random.Random(11)
    routes = []
    seen = set()
    while len(routes) < 1000:
        plen = rng.choice([16, 24, 32, 40, 48, 56, 64, 96, 128])
        net = ipaddress.IPv6Network((rng.getrandbits(128) >> (128 - plen) << (128 - plen), plen))
        if net in seen or net.overlaps(ipaddress.IPv6Network("2001:db8::/32")):
            continue
        seen.add(net)
        routes.append((str(net), "2001:db8:100::ff", rng.choice(["acc0", "up0"])))
    net = Net(_toml_with_routes(routes))
    e = net.engine
    base = [(r.prefix, r.via, r.interface) for r in config.loads(TOML).router.routes]
    everything = base + routes
    dsts = [IPv6Address(rng.getrandbits(128)) for _ in range(300)]
    for (prefix, _via, _iface) in routes[:300]:  # inside and at the edges of the configured prefixes
        n = ipaddress.IPv6Network(prefix)
        dsts += [n.network_address, n.broadcast_address]
    batch = np.frombuffer(b"".join(d.packed for d in dsts), dtype=np.uint8).reshape(-1, 16)
    out_if, next_hop = e._route_batch(batch)
    for k, d in enumerate(dsts):
        want = _naive(everything, d)
        got = e.lookup_route(d)
        if want is None:
            assert got is None and out_if[k] == -1, d
        else:
            assert got == (want[2], want[3]) and out_if[k] == want[2], d
            assert bytes(next_hop[k]) == want[3].packed


def test_a_route_for_an_interfaces_own_prefix_does_not_take_it_over():
    """The interface's on-link prefix is installed first: a configured route for the same prefix is ignored
    (on-link delivery, not a next hop), as with the per-route scan before."""
    net = Net(_toml_with_routes([("2001:db8:1::/64", "2001:db8:100::ff", "up0")]))
    assert net.engine.lookup_route(IPv6Address("2001:db8:1::a")) == (0, IPv6Address("2001:db8:1::a"))
