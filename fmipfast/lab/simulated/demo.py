"""``fmipfast demo``: the whole handover scenario in one process on the simulated wire (docs/design.md §6-§7).

The topology (CN, PAR, NAR, MN on a core link and access links A and B) and its measurements are
:mod:`fmipfast.lab.simulated.world`'s.  A correspondent node streams UDP datagrams (sequence number and send
time in each) to the mobile node's care-of address; the mobile node's interface moves from link A to link B
with a layer-2 gap; the CN keeps a binding cache that a Binding Update (RFC 6275 Mobility Header) moves to
the new care-of address.

Modes:

* ``baseline`` — plain Mobile IPv6 (the draft's Figure 2): after the move the MN waits for a Router
  Advertisement from the NAR, forms its address by SLAAC, runs Duplicate Address Detection (RFC 4862:
  one NS, then RetransTimer), and only then sends the Binding Update; packets to the old address are lost.
* ``fast`` — the draft's secure fast handover (Figure 3/4), driven by the protocol machines of
  ``fmipfast.ar`` and ``fmipfast.mn`` (see :mod:`fmipfast.lab.simulated.handover`).

Every run records a timeline (each signalling message: when, from, to, size) and the measurements: sent,
received, lost, duplicated, reordered, the layer-3 interruption (last datagram on the old link to the first on
the new), link-up to first datagram, buffered and flushed counts, and per-step times.

Ownership: single-threaded; all time is the simulator's.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

from fmipfast import frames
from fmipfast.lab.simulated.handover import install_fast_handover
from fmipfast.lab.simulated.sim import MS
from fmipfast.lab.simulated.world import (  # noqa: F401 -- _ROUTER_TOML, binding_ack: their old home's names
    _ROUTER_TOML,
    Plan,
    Result,
    Scenario,
    World,
    binding_ack,
    is_binding_ack,
)
from fmipfast.messages import BindingUpdate, NeighborSolicitation, RouterAdvertisement

__all__ = ["Plan", "Scenario", "Result", "World", "run_scenario", "format_report", "write_capture", "plot"]


# ==================================================================== plain Mobile IPv6 (the baseline)


def _baseline(w: World) -> None:
    """The MN moves; waits for an RA; SLAAC + DAD; then the BU (RFC 6275 §11.5, RFC 4862 §5.4)."""
    sc, p = w.sc, w.sc.plan
    state = {"ra": False}

    def on_ra(ra: RouterAdvertisement, src: IPv6Address, now: int) -> None:
        if state["ra"] or w.mn_port.link is not w.link_b:
            return
        state["ra"] = True
        w.mark("ra_received")
        w.note("Router Advertisement (movement detected)", "nar", "mn", 0)
        w.mn.set_default_router(src)
        ncoa = p.slaac_ncoa
        # DAD: one NS from the unspecified address to the solicited-node group, then wait RetransTimer
        ns = NeighborSolicitation(ncoa)
        group = IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + ncoa.packed[13:])
        w.mn.send_packet(frames.icmp6_packet(ns, "::", group))
        w.mark("dad_start")
        w.note("DAD Neighbor Solicitation", "mn", "B", 72, target=str(ncoa))

        def dad_done() -> None:
            w.mn.add_address(ncoa)
            w.mark("dad_done")
            bu = BindingUpdate(sequence=1, lifetime_units=60).packet(ncoa, p.cn_address)
            w.mn.send_packet(bu)
            w.mark("bu_sent")
            w.note("Binding Update", "mn", "cn", len(bu))

        w.sim.after(int(sc.dad_ms * MS), dad_done)

    w.mn.on_ra = on_ra

    def trigger() -> None:
        w.mark("trigger")
        w.note("handover decision (no network assistance)", "network", "mn")

    w.sim.at(w.trigger_ns, trigger)
    w.move(w.trigger_ns, int(sc.gap_ms * MS))


def run_scenario(sc: Scenario, *, capture: bool = False, krb: Any = None) -> tuple[Result, World]:
    """Build the world, run the chosen mode to ``end_ms``, and measure.

    ``sc.kerberos == "gssapi"``: the fast handover authenticates with standard Kerberos -- ``krb`` (a
    :class:`fmipfast.lab.mitrealms.DemoKerberos`) names the realms' principals, keytabs and the MN's ccache;
    without it two throwaway MIT realms are made for the run (k5test)."""
    if sc.kerberos == "gssapi" and sc.mode == "fast" and krb is None:
        from fmipfast.lab.mitrealms import demo_kerberos, two_realms

        with two_realms() as realms:
            return run_scenario(sc, capture=capture, krb=demo_kerberos(realms))
    if sc.kerberos not in ("lwkerb", "gssapi"):
        raise ValueError(f"kerberos must be 'lwkerb' or 'gssapi', got {sc.kerberos!r}")
    w = World(sc)
    if capture:
        w.capture = []
    w.start_stream()
    if sc.mode == "baseline":
        _baseline(w)
    elif sc.mode == "fast":
        install_fast_handover(w, krb if sc.kerberos == "gssapi" else None)
    else:
        raise ValueError(f"mode must be 'fast' or 'baseline', got {sc.mode!r}")
    w.sim.run(int(sc.end_ms * MS))
    return w.result(), w


# ==================================================================== reporting


def format_report(results: dict[str, Result], sc: Scenario) -> str:
    """The human report: the fast handover's timeline, then the summary side by side."""
    p = sc.plan
    mech = "standard Kerberos (MIT KDCs, GSS-API), " if sc.kerberos == "gssapi" else ""
    lines = [f"fmipfast demo: secure fast handover (draft-koodli-mobileip-fastv6-02), {mech}Kerberos key case "
             f"{sc.case}, seed {sc.seed}",
             f"topology: CN --core {p.core_delay_ms:g} ms-- PAR, NAR --air {p.air_delay_ms:g} ms-- MN; the CN streams "
             f"{sc.rate_pps} UDP datagrams/s to the MN; layer-2 gap {sc.gap_ms:g} ms", ""]
    for mode, r in results.items():
        title = "fast handover" if mode == "fast" else "plain Mobile IPv6 (baseline)"
        lines.append(f"timeline of the {title} (ms from the handover trigger)")
        for e in r.timeline:
            size = f"{e['size']:>5} B" if e["size"] else ""
            lines.append(f"  {e['t_ms']:>9.2f}  {e['from']:>7} -> {e['to']:<7} {e['what']:<62} {size}")
        lines.append("")
    rows = [("sent", "sent"), ("received", "received"), ("lost", "lost"), ("duplicated", "duplicated"),
            ("reordered", "reordered"), ("layer-3 interruption", "interruption_ms"),
            ("link-up to first packet", "link_up_to_first_packet_ms"), ("buffered at the NAR", "buffered"),
            ("flushed in order", "flushed"), ("held at the route switch", "held_at_route_switch")]
    modes = list(results)
    head = "".join(f"{('fast handover' if m == 'fast' else 'plain MIPv6'):>18}" for m in modes)
    lines.append(f"{'summary':<28}{head}")
    for label, key in rows:
        cells = ""
        for m in modes:
            v = getattr(results[m], key)
            cells += f"{'-' if v is None else (f'{v:.1f} ms' if key.endswith('_ms') else str(v)):>18}"
        lines.append(f"  {label:<26}{cells}")
    if "fast" in results and "baseline" in results:
        f, b = results["fast"].interruption_ms, results["baseline"].interruption_ms
        if f and b:
            lines.append(f"  the fast handover's layer-3 interruption is {b / f:.0f}x shorter")
    for m in modes:
        steps = ", ".join(f"{k} {v:g}" for k, v in results[m].steps.items() if v >= 0)
        lines.append(f"steps of the {'fast handover' if m == 'fast' else 'baseline'} (ms after the trigger): {steps}")
    return "\n".join(lines)


def write_capture(path: str, world: World) -> int:
    """Every frame on every link, in time order, as a pcap (tshark reads it)."""
    from fmipfast.pcap import PcapWriter

    frames_ = sorted(world.capture or [], key=lambda x: x[0])
    with PcapWriter(path) as w:
        for t, _link, frame in frames_:
            w.write(frame, ts_ns=EPOCH_NS + t)
    return len(frames_)


#: The capture's timestamps start at this POSIX time (ns), so they look like a real capture.
EPOCH_NS = 1_800_000_000 * 1_000_000_000


def plot(results: dict[str, Result], path: str) -> None:
    """The measured timelines drawn like the draft's Figures 2 and 3, on one time axis (needs matplotlib:
    the plot extra): the milestones of each mode and the layer-3 interruption shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    milestones = {"trigger": "handover epoch", "link_down": "link down", "link_up": "new link up",
                  "ra_received": "RA", "dad_done": "DAD done", "bu_at_cn": "BU at CN", "proxy_installed": "NAR proxies",
                  "flushed": "buffer flushed", "tunnel_start": "PAR tunnels", "nar_verified": "MN authenticated"}
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 2.4 * len(results)), squeeze=False, sharex=True)
    for ax, (mode, r) in zip(axes[:, 0], results.items()):
        ax.set_title("secure fast handover (the draft's Figure 3, measured)" if mode == "fast"
                     else "plain Mobile IPv6 (the draft's Figure 2, measured)", fontsize=10)
        ax.axhline(0, color="black", linewidth=1)
        colour = "tab:blue" if mode == "fast" else "tab:red"
        shown = sorted(((t, milestones[k]) for k, t in r.steps.items() if k in milestones and t >= 0))
        for i, (t, label) in enumerate(shown):
            ax.plot([t, t], [0, 1], color=colour, linewidth=1)
            ax.annotate(label, (t, 0.95 - 0.17 * (i % 5)), fontsize=7, ha="left", va="top",
                        xytext=(2, 0), textcoords="offset points")
        if r.interruption_ms:
            start = r.steps.get("link_down", 0.0)
            ax.axvspan(start, start + r.interruption_ms, color="grey", alpha=0.25,
                       label=f"layer-3 interruption {r.interruption_ms:.0f} ms, {r.lost} packets lost")
            ax.legend(loc="center", fontsize=8)
        ax.set_yticks([])
        ax.set_ylim(-0.05, 1.05)
    axes[-1, 0].set_xlabel("ms after the handover epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
