"""The ``fmipfast`` command.

Subcommands: ``decode`` (dissect a capture or hex frames), ``check-config`` (validate the TOML file of any
command -- router, mn, kdc, decode's codepoints -- with that command's own loader),
``router`` (the access-router engine), ``ctl`` (its control socket), ``kdc`` (the light-weight Kerberos KDC),
``version``, ``demo`` (the whole handover in one process), ``lab`` (the same over namespaces, root) and ``mn``
(the mobile node daemon).

This module parses the arguments and hands each command to the module that does its work: the daemons are
assembled in :mod:`fmipfast.routerd` (router), :mod:`fmipfast.mnd` (mn) and :mod:`fmipfast.security.kdc`
(kdc); captures are read and dissected by :mod:`fmipfast.dissect`; the demo and the lab are
:mod:`fmipfast.lab`'s.

Exit status: 0 success; 1 ``--strict`` found a bad fmipfast message, or ``check-config`` found an error;
2 usage error or unreadable input; 130 interrupted (Ctrl-C).  A user's mistake ends with one line on stderr,
never a traceback; a closed standard output (``| head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Sequence

from fmipfast import __version__, config
from fmipfast.backend import IMPLEMENTATION
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints
from fmipfast.errors import ConfigError, PcapError
from fmipfast.lab.namespaces.traffic import MAX_RATE

if TYPE_CHECKING:
    from fmipfast.pcap import PcapRecord

__all__ = ["main"]

_LINKS = {"auto": None, "eth": 1, "ipv6": 101, "icmp": -58}


def _records(source: str, link: str, codepoints: Codepoints) -> Iterator[PcapRecord]:
    """Records of a capture file or hex text, from a path or ``-`` (stdin), read as they are needed."""
    from fmipfast.dissect import read_records

    forced = _LINKS[link]
    stdin: BinaryIO | None = getattr(sys.stdin, "buffer", None)  # None when the shell closed it (`fmipfast decode <&-`)
    if source != "-":
        fh: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed below
    elif stdin is None:
        raise PcapError("no standard input to read")
    else:
        fh = stdin
    try:
        yield from read_records(fh, forced, codepoints)
    finally:
        if fh is not stdin:
            fh.close()


def _within(kind: Any, lo: float, hi: float) -> Any:
    """An argparse ``type``: a number of ``kind`` within ``lo..hi`` (NaN is not), else a usage error naming the
    bound."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number within {lo}..{hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be within {lo}..{hi}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _unwritable(*paths: str | None) -> str | None:
    """Why an output file cannot be created, checked before a long run rather than after it: its directory
    is missing or not a directory (None when every path looks writable)."""
    for path in paths:
        if not path:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return f"{path}: the directory {parent} does not exist"
        if os.path.isdir(path):
            return f"{path} is a directory"
        if not os.access(parent, os.W_OK):
            return f"{path}: the directory {parent} is not writable"
    return None


def _cmd_wireshark(args: argparse.Namespace) -> int:
    """The shipped Lua dissector's path, for ``tshark -X lua_script:PATH`` (or to copy into a plugins folder)."""
    from pathlib import Path

    print(Path(__file__).resolve().parent / "wireshark" / "fmipfast.lua")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from fmipfast.dissect import count, dissect_records, escape_text, format_text, is_bad, new_counts

    codepoints = DEFAULT_CODEPOINTS
    if args.config:
        codepoints = config.load(args.config).codepoints.profile()
    name = "stdin" if args.file == "-" else args.file
    counts = new_counts()  # only counters: memory does not grow with the capture
    out = sys.stdout
    status = 0
    bad = False
    try:
        try:
            for info in dissect_records(_records(args.file, args.link, codepoints), codepoints=codepoints):
                count(counts, info)
                bad = bad or is_bad(info)
                if args.json:
                    _emit(out, json.dumps(info, default=repr) + "\n")  # ensure_ascii: controls come out escaped
                elif not args.only_fmipfast or info.get("type") is not None:
                    _emit(out, format_text(info) + "\n")
        except PcapError as exc:
            print(escape_text(f"fmipfast decode: {name}: {exc} (after {counts['frames']} frames)"), file=sys.stderr)
            status = 2
        except BrokenPipeError:
            raise
        except OSError as exc:
            print(escape_text(f"fmipfast decode: {name}: {exc.strerror or exc}"), file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # ^C on a live `tcpdump -w - | fmipfast decode`: the summary so far
            status = 130
        if not args.json:
            _emit(out, "\n" + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) + "\n")
    except BrokenPipeError:  # `fmipfast decode x.pcap | head`: the reader has gone, so stop quietly
        _quiet_stdout()
        return 0
    if status == 0 and args.strict and bad:
        status = 1
    return status


def _emit(out: Any, text: str) -> None:
    """Write and flush at once (a frame is shown as soon as it is read); what the terminal's encoding
    cannot show comes out as backslash escapes rather than an error."""
    try:
        out.write(text)
    except UnicodeEncodeError:
        enc = getattr(out, "encoding", None) or "ascii"
        out.write(text.encode(enc, "backslashreplace").decode(enc))
    out.flush()


#: What ``check-config --kind`` takes: the configuration of each command that reads one.
CONFIG_KINDS = ("auto", "codepoints", "router", "mn", "kdc")


def _detect_kind(doc: dict[str, Any]) -> str:
    """The command a parsed file is for: a KDC's file has top-level keys (realm, keys ...) where the others
    have sections; of those, [router] interfaces make a router's, an [mn] section an MN's, else its codepoints
    (and logging) are what ``decode --config`` takes."""
    from fmipfast.security import kdc

    if any(k in kdc._TOP_KEYS and k not in config._SECTIONS for k in doc):
        return "kdc"
    router, mn = doc.get("router"), doc.get("mn")
    kinds = []
    if isinstance(router, dict) and router.get("interfaces"):
        kinds.append("router")
    if isinstance(mn, dict) and mn:
        kinds.append("mn")
    return "+".join(kinds) or "codepoints"


def _check_mapping(doc: dict[str, Any], kind: str, source: str | None) -> tuple[str, str]:
    """Validate a parsed file as ``kind`` (or the detected one) with the loaders the commands use; returns the
    kind and a summary, or raises :class:`ConfigError`."""
    from fmipfast import mnd, routerd
    from fmipfast.security import kdc

    kind = _detect_kind(doc) if kind == "auto" else kind
    if kind == "kdc":
        k = kdc.config_from_mapping(doc, source=source)
        host = f"[{k.listen[0]}]" if ":" in k.listen[0] else k.listen[0]
        return kind, f"realm {k.realm}, {len(k.keytab.principals())} principals, listen {host}:{k.listen[1]}"
    cfg = config.from_mapping(doc, source=source)
    parts = []
    if "router" in kind.split("+"):
        routerd.check_config(cfg, source)
        parts.append(f"router {cfg.router.name} on {', '.join(i.name for i in cfg.router.interfaces)}")
    if "mn" in kind.split("+"):
        mnd.check_config(cfg, source)
        parts.append(f"mn on {cfg.mn.interface}")
    parts.append(f"codepoints {cfg.codepoints.profile()!r}")
    return kind, "; ".join(parts)


def _kind_hint(doc: dict[str, Any], kind: str) -> str:
    """What to add to an error when the file may not be the kind it was checked as."""
    detected = _detect_kind(doc)
    if kind != "auto" and kind != detected:
        return f" (checked as a {kind} configuration; the file looks like a {detected.replace('+', ' and ')} one)"
    if detected == "codepoints" and set(doc) - set(config._SECTIONS):
        return " (not a configuration fmipfast knows: router, mn, kdc, or codepoints for decode --config)"
    return ""


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Validate FILE as the command it is for would: exit 0 (naming the kind recognised), 1 for a value a command
    would refuse, 2 for a file that cannot be read or parsed."""
    if args.defaults:
        sys.stdout.write(config.DEFAULTS_TOML)
        return 0
    if not args.file:
        print("fmipfast check-config: a FILE or --defaults is required", file=sys.stderr)
        return 2
    try:
        doc = config.read_toml(args.file)
    except ConfigError as exc:
        print(f"fmipfast check-config: {exc}", file=sys.stderr)
        return 2
    try:
        kind, summary = _check_mapping(doc, args.kind, args.file)
    except ConfigError as exc:
        print(f"fmipfast check-config: {exc}{_kind_hint(doc, args.kind)}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok: {kind.replace('+', ' and ')} configuration ({summary})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The whole secure fast handover in one process (no root), optionally against plain Mobile IPv6."""
    from fmipfast.lab.simulated.demo import Scenario, format_report, plot, run_scenario, write_capture

    problem = _unwritable(args.capture, args.plot)
    if problem:
        print(f"fmipfast demo: {problem}", file=sys.stderr)
        return 2
    modes = ["fast", "baseline"] if args.baseline else ["fast"]
    results = {}
    worlds = {}
    for mode in modes:
        sc = Scenario(mode=mode, case=args.case, seed=args.seed, rate_pps=args.rate, gap_ms=args.gap_ms,
                      buffer=not args.no_buffer, kerberos=args.kerberos)
        try:
            results[mode], worlds[mode] = run_scenario(sc, capture=bool(args.capture))
        except (ImportError, ValueError) as exc:  # --kerberos gssapi without gssapi/k5test/MIT KDC, or case 2/3
            print(f"fmipfast demo: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps({m: r.to_json() for m, r in results.items()}, default=str))
    else:
        print(format_report(results, sc))
    if args.capture:
        n = write_capture(args.capture, worlds["fast"])
        print(f"wrote {n} frames of the fast handover to {args.capture}", file=sys.stderr)
    if args.plot:
        try:
            plot(results, args.plot)
        except ImportError:
            print("fmipfast demo: --plot needs matplotlib (pip install 'fmipfast[plot]')", file=sys.stderr)
            return 2
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _cmd_router(args: argparse.Namespace) -> int:
    """Run the access-router engine on the configured interfaces until SIGTERM/SIGINT."""
    from fmipfast import routerd

    return routerd.run(args.config, control_path=args.control, metrics=args.metrics)


def _cmd_mn(args: argparse.Namespace) -> int:
    """Run the mobile node of the [mn] section until SIGTERM/SIGINT (root: raw sockets, netlink)."""
    from fmipfast import mnd

    return mnd.run(args.config, control_path=args.control, metrics=args.metrics)


def _listen_address(text: str) -> str:
    """``[HOST:]PORT`` (an IPv6 host in brackets) -> ``HOST:PORT``; argparse reports a bad one."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected [HOST:]PORT with PORT 1..65535")
    return f"{host if sep else ''}:{port}"


def _cmd_ctl(args: argparse.Namespace) -> int:
    """Send one command to a running daemon's control socket and print the JSON result."""
    from fmipfast.control import ControlClient, ControlError

    kwargs: dict[str, Any] = {}
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"fmipfast ctl: --arg {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
        except RecursionError:  # json's parser recurses per level of nesting
            print(f"fmipfast ctl: --arg {key}: JSON nested too deeply", file=sys.stderr)
            return 2
    try:
        result = ControlClient(args.socket, timeout=args.timeout).call(args.command, **kwargs)
    except ControlError as exc:
        print(f"fmipfast ctl: {exc}", file=sys.stderr)
        return 1
    if args.command == "metrics" and isinstance(result, str):
        sys.stdout.write(result)  # the Prometheus text exposition, as a scraper would read it
    else:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def _load_kdc(path: str) -> Any:
    """The KDC's configuration: the file read by the one TOML reader, validated by the KDC's own loader."""
    from fmipfast.security import kdc

    return kdc.config_from_mapping(config.read_toml(path), source=path)


def _cmd_kdc(args: argparse.Namespace) -> int:
    from fmipfast.control import start_endpoints
    from fmipfast.sdnotify import notifier
    from fmipfast.security import kdc

    cfg = _load_kdc(args.config)
    notify = notifier("kdc")
    if notify is None:
        return 2
    async def endpoints(server: Any) -> list[Any]:
        from fmipfast.metrics import kdc_families, render

        return await start_endpoints(None, None, lambda: render(kdc_families(server.kdc), {"realm": cfg.realm}),
                                      args.metrics, {"realm": cfg.realm})

    return kdc.serve(cfg, prog="fmipfast kdc", source=args.config, notify=notify, endpoints=endpoints)


def _cmd_lab(args: argparse.Namespace) -> int:
    """``fmipfast lab up|status|down`` (root): the lab topology (docs/design.md §6), kept between commands."""
    from fmipfast.lab.namespaces import session
    from fmipfast.lab.namespaces.topology import LabError

    if os.geteuid() != 0:
        print("fmipfast lab: needs root (network namespaces, veth, AF_PACKET)", file=sys.stderr)
        return 2
    if args.action == "run":
        return _lab_run(args)
    if args.action == "move" and not args.to:
        print("fmipfast lab move: --to is required: A, B, or the address of the router on that link",
              file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            result = session.up(args.prefix, args.state)
        elif args.action == "status":
            result = session.status(args.prefix, args.state)
        elif args.action == "move":
            result = session.move(args.prefix, args.state, args.to, args.gap_ms)
        else:
            result = session.down(args.prefix, args.state)
    except (LabError, ValueError) as exc:
        print(f"fmipfast lab {args.action}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        done = {"up": "the lab and its processes were removed", "down": "run 'fmipfast lab down' again to finish"}
        print(f"fmipfast lab {args.action}: interrupted; {done.get(args.action, 'nothing was changed')}",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif args.action == "up":
        print(f"lab up: namespaces {' '.join(sorted(result['namespaces'].values()))}")
        for name, eng in result["engines"].items():
            print(f"  {name} engine pid {eng['pid']}  control {eng['control']}  log {eng['log']}")
        a = result["addresses"]
        mn = result["mn"]
        print(f"  mn daemon pid {mn['pid']}  control {mn['control']}  log {mn['log']} (attached to the PAR)")
        print(f"  CN {a['cn']}  MN PCoA {a['pcoa']} (on link A)  NCoA {a['ncoa']}")
        print(f"  try: ip netns exec {result['namespaces']['cn']} ping -6 -c 3 {a['pcoa']}")
        print(f"  hand over: fmipfast ctl --socket {result['engines']['par']['control']} handover "
              f"--arg pcoa={a['pcoa']} --arg nar={a['nar']} --arg nar_principal=host/nar@B.EXAMPLE")
    elif args.action == "status":
        print(f"lab {result['prefix']}: {len(result['namespaces_present'])}/{len(result['namespaces'])} namespaces")
        for name, eng in result["engines"].items():
            state = "alive" if eng.get("alive") else "DEAD"
            c = eng.get("counters") or {}
            detail = eng.get("error") or " ".join(f"{k}={v}" for k, v in sorted(c.get("counters", c).items())
                                                  if isinstance(v, int) and v)
            print(f"  {name} ({state}): {detail}")
        if "mn" in result:
            st = result["mn"].get("status") or {}
            print(f"  mn ({'alive' if result['mn'].get('alive') else 'DEAD'}): "
                  + (result["mn"].get("error") or f"{st.get('state')} at {st.get('router')} with {st.get('coa')}"))
    elif args.action == "move":
        print(f"lab move: link {result['from']} -> {result['to']} after {result['gap_ms']:.1f} ms without a link")
    else:
        print(f"lab down: removed {len(result['namespaces_removed'])} namespaces")
        for name, final in result["engines"].items():
            if name == "mn":
                print(f"  mn: {final.get('state')} at {final.get('router')}, "
                      f"{final.get('counters', {}).get('daemon', {}).get('handovers_completed', 0)} handover(s)")
            elif name == "bcache":
                print(f"  CN binding cache: {final.get('bindings', 0)} binding update(s) answered")
            elif name.startswith("kdc-"):
                print(f"  {name}: " + " ".join(f"{k}={v}" for k, v in sorted(final.items())
                                               if isinstance(v, int) and v))
            else:
                cons = final.get("conservation", {})
                print(f"  {name}: forwarded {final.get('counters', {}).get('forwarded', 0)}, "
                      f"conservation {'holds' if cons.get('holds') else 'BROKEN'}")
    return 0


def _lab_run(args: argparse.Namespace) -> int:
    from fmipfast.lab.namespaces import run as labrun
    from fmipfast.lab.namespaces.topology import LabError

    if not 1 <= args.repeat <= 100:
        print(f"fmipfast lab run: --repeat must be within 1..100, got {args.repeat}", file=sys.stderr)
        return 2
    import dataclasses

    problem = _unwritable(args.capture, args.plot)
    if problem:
        print(f"fmipfast lab run: {problem}", file=sys.stderr)
        return 2
    try:
        opts = labrun.RunOptions(rate=args.rate, gap_ms=args.gap_ms, buffer=not args.no_buffer,
                                 switch_delay_ms=args.switch_delay_ms, capture=args.capture,
                                 reverse=args.reverse, case=args.case, ring_timeout_ms=args.ring_timeout_ms,
                                 ring_mode=args.ring_mode, kerberos=args.kerberos,
                                 switch_priority=args.switch_priority,
                                 prefix="fmipfast-run-" if args.prefix == "fmipfast-lab-" else args.prefix)
    except ValueError as exc:  # a bound of RunOptions, named
        print(f"fmipfast lab run: {exc}", file=sys.stderr)
        return 2
    modes = ("fast", "baseline") if args.baseline else ("fast",)
    # one capture per mode: FILE for the fast handover, FILE-baseline.ext for plain Mobile IPv6
    captures = {mode: _mode_capture(args.capture, mode) for mode in modes} if args.capture else {}
    results: dict[str, Any] = {}
    try:
        for mode in modes:
            results[mode] = labrun.repeat(dataclasses.replace(opts, mode=mode, capture=captures.get(mode)),
                                          args.repeat)
    except ImportError as exc:  # --kerberos gssapi without gssapi, k5test or MIT's KDC programs: named
        print(f"fmipfast lab run: {exc}", file=sys.stderr)
        return 2
    except (LabError, ValueError) as exc:
        print(f"fmipfast lab run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fmipfast lab run: interrupted; the lab and its processes were removed", file=sys.stderr)
        return 130
    if args.plot:
        try:
            labrun.plot({mode: r["each"][-1] for mode, r in results.items()}, args.plot)
        except ImportError:
            print("fmipfast lab run: --plot needs matplotlib (pip install 'fmipfast[plot]')", file=sys.stderr)
            return 2
        print(f"wrote {args.plot}", file=sys.stderr)
    for mode, path in captures.items():
        last = " (the last run)" if args.repeat > 1 else ""
        print(f"wrote the capture of the {mode} mode{last} to {path}", file=sys.stderr)
    if args.json:
        def public(v: Any) -> Any:  # leave out what is only drawn ("_stream": every datagram)
            if isinstance(v, dict):
                return {k: public(x) for k, x in v.items() if not str(k).startswith("_")}
            return [public(x) for x in v] if isinstance(v, list) else v

        shown = {mode: public(r if args.repeat > 1 else r["each"][0]) for mode, r in results.items()}
        print(json.dumps(shown if args.baseline else shown["fast"], indent=2, sort_keys=True, default=str))
        return 0
    from fmipfast.lab.namespaces import latency
    titles = {"fast": "fast handover", "baseline": "plain Mobile IPv6 (SLAAC + DAD + BU)"}
    if args.kerberos == "gssapi":
        titles["fast"] += " with standard Kerberos (MIT KDCs, GSS-API)"
    for mode, result in results.items():
        print(f"{titles[mode]} over the real lab: {args.rate} datagrams/s, layer-2 gap {args.gap_ms:g} ms, "
              f"switch delay {args.switch_delay_ms:g} ms, {args.repeat} run(s)")
        if args.repeat == 1:
            m = result["each"][0]
            for what, at in m["timeline_ms"]:
                print(f"  {at:9.3f} ms  {what}")
            print(f"  sent {m['sent']}  received {m['received']}  lost {m['lost']}  duplicated {m['duplicated']}  "
                  f"reordered {m['reordered']}")
            for key in ("interruption_ms", "beyond_gap_ms", "beyond_gap_less_source_pause_ms",
                        "link_up_to_first_packet_ms", "link_up_request_to_first_packet_ms", "source_pause_ms"):
                print(f"  {key:32s} {'-' if m.get(key) is None else format(m[key], '.3f')}")
            for r in m["lost_ranges"][:10]:
                print(f"  lost seq {r['first']}..{r['last']} (sent at {r.get('sent_ms', '?')} ms)")
            if m.get("waterfall_ms"):
                print("latency waterfall (ms since the MN's link came up: its carrier's RTM_NEWLINK, first read; "
                      "CLOCK_MONOTONIC, kernel timestamps converted from CLOCK_REALTIME):")
                for line in latency.format_waterfall(m["waterfall_ms"]):
                    print(line)
        else:
            print("over the runs:")
            for line in latency.format_steps(result["summary"], labrun.SUMMARY_KEYS):
                print(line)
            if result.get("waterfall_ms"):
                print("latency waterfall over the runs (ms since the MN's link came up):")
                for line in latency.format_steps(result["waterfall_ms"], [k for k, _, _ in latency.STEPS],
                                                 latency.LABELS):
                    print(line)
        for name, eng in result["each"][-1]["engines"].items():
            print(f"  {name} engine: conservation {'holds' if eng['conservation']['holds'] else 'BROKEN'}, "
                  f"buffered {eng['counters']['buffered']}, flushed {eng['counters']['flushed']}, "
                  f"held at the route switch {eng['counters'].get('reorder_held', 0)}")
    if args.baseline:
        f, b = (results[m]["summary"]["interruption_ms"] for m in modes)
        if f and b and f["median"] > 0:
            print(f"layer-3 interruption: fast {f['median']:.1f} ms vs plain {b['median']:.1f} ms "
                  f"({b['median'] / f['median']:.1f}x)")
    return 0


def _mode_capture(path: str, mode: str) -> str:
    """Where ``lab run --capture PATH`` writes ``mode``'s capture: PATH itself for the fast handover,
    PATH with ``-baseline`` before its extension for plain Mobile IPv6."""
    if mode == "fast":
        return path
    root, ext = os.path.splitext(path)
    return f"{root}-{mode}{ext}"


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"fmipfast {__version__} ({IMPLEMENTATION} kernels)")
    return 0


#: Bounds of the numbers the demo and the lab take (the lab's: those of ``fmipfast.lab.namespaces.run.RunOptions``).
DEMO_MAX_GAP_MS = 1000.0  # the demo's CN streams 2.5 s, the move starts about 0.3 s in
LAB_MAX_MS = 60_000.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmipfast", description="Fast Handovers in Mobile IPv6 "
                                     "(draft-koodli-mobileip-fastv6-02) with light-weight Kerberos.")
    parser.add_argument("--version", action="version", version=f"fmipfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("decode", help="print the fmipfast messages in a capture, field by field",
                       description="Dissect a pcap/pcapng capture (or hex frames, one per line, on stdin or "
                       "in a file) and print every fmipfast message and RS/RA field by field, flagging bad "
                       "checksums, wrong hop limits and missing AH.")
    p.add_argument("file", nargs="?", default="-", help="capture file, or - for stdin (default)")
    p.add_argument("--json", action="store_true", help="one JSON object per frame")
    p.add_argument("--link", choices=sorted(_LINKS), default="auto",
                   help="what each frame starts with (default: from the capture, or guessed for hex)")
    p.add_argument("--config", help="TOML configuration with a [codepoints] section")
    p.add_argument("--only-fmipfast", action="store_true", help="hide frames that are not ICMPv6 of interest")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any fmipfast message is malformed, has a bad checksum, hop limit or no AH")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("wireshark", help="print the path of the shipped Wireshark/tshark dissector (Lua)",
                       description="tshark -X lua_script:$(fmipfast wireshark) -r capture.pcap -Y fmipfast")
    p.set_defaults(func=_cmd_wireshark)

    p = sub.add_parser("check-config", help="validate a TOML configuration file")
    p.add_argument("file", nargs="?")
    p.add_argument("--defaults", action="store_true", help="print the default configuration")
    p.add_argument("--kind", choices=CONFIG_KINDS, default="auto",
                   help="the command the file is for (default: recognised from its sections and keys): codepoints "
                        "(decode --config), router, mn or kdc")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("demo", help="the secure fast handover end to end, in one process (no root)",
                       description="Run the whole topology (CN, PAR, NAR, MN, two realms) on a simulated wire: "
                       "a UDP stream to the MN across a network-triggered fast handover; prints the timeline of "
                       "every signalling message and the measured summary.")
    p.add_argument("--json", action="store_true", help="one JSON object with the results of each mode")
    p.add_argument("--baseline", action="store_true",
                   help="also run plain Mobile IPv6 (RA wait + DAD + BU) and compare side by side")
    p.add_argument("--case", type=int, choices=(1, 2, 3), default=1,
                   help="Kerberos key case at the NAR: 1 own key, 2 local KDC, 3 home KDC (draft §3)")
    p.add_argument("--kerberos", choices=("lwkerb", "gssapi"), default="lwkerb",
                   help="lwkerb (default), or gssapi: standard Kerberos, tickets from two throwaway MIT realms "
                        "(needs gssapi, k5test and the MIT KDC programs; key case 1 only)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=_within(int, 1, MAX_RATE), default=1000,
                   help=f"the CN's stream, datagrams per second (1..{MAX_RATE})")
    p.add_argument("--gap-ms", type=_within(float, 0, DEMO_MAX_GAP_MS), default=30.0,
                   help=f"the layer-2 gap of the move, ms (0..{DEMO_MAX_GAP_MS})")
    p.add_argument("--no-buffer", action="store_true", help="ask the NAR not to buffer (U flag clear)")
    p.add_argument("--capture", metavar="FILE.pcap", help="every frame on every link of the fast handover")
    p.add_argument("--plot", metavar="FILE.png", help="draw the measured timelines (needs matplotlib)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("router", help="run the access-router engine on real interfaces (root)",
                       description="Own the [router] interfaces of FILE through AF_PACKET rings and route IPv6 "
                       "between them until SIGTERM/SIGINT; prints 'READY' once serving and a JSON summary of the "
                       "counters on exit.")
    p.add_argument("--config", required=True, help="TOML file with a [router] section")
    p.add_argument("--control", metavar="PATH", help="serve the JSON control API on this Unix socket")
    p.add_argument("--metrics", metavar="[HOST:]PORT", type=_listen_address,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default host ::1)")
    p.set_defaults(func=_cmd_router)

    p = sub.add_parser("ctl", help="query or command a running daemon through its control socket",
                       description="Commands of a router: ping, counters, neighbors, interfaces, handover, "
                       "handovers, mobile-nodes, metrics; of an MN (fmipfast mn): ping, status, counters, metrics.  "
                       "Results print as JSON; metrics prints the Prometheus text.  "
                       "Example: fmipfast ctl --socket /run/fmipfast.sock handover "
                       "--arg pcoa=2001:db8:1::a --arg nar=2001:db8:2::1")
    p.add_argument("--socket", required=True, help="the daemon's --control path")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a command argument (VALUE parsed as JSON when it is, else a string)")
    p.add_argument("command")
    p.set_defaults(func=_cmd_ctl)

    p = sub.add_parser("mn", help="run the mobile node on a real interface (root)",
                       description="Attach to the [mn] router with the tickets of the [mn] ccache file and follow "
                       "the handovers the network triggers (the draft's MN side), on the host's kernel stack; "
                       "prints 'READY' once running and a JSON status on exit (SIGTERM/SIGINT).")
    p.add_argument("--config", required=True, help="TOML file with an [mn] section")
    p.add_argument("--control", metavar="PATH",
                   help="serve the JSON control API (ping, status, counters, metrics) here")
    p.add_argument("--metrics", metavar="[HOST:]PORT", type=_listen_address,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default host ::1)")
    p.set_defaults(func=_cmd_mn)

    p = sub.add_parser("kdc", help="run a light-weight Kerberos KDC (UDP) for one realm",
                       description="Run the light-weight Kerberos KDC of docs/security.md §7; prints "
                       "'READY host port' once bound; SIGINT/SIGTERM stop it.")
    p.add_argument("--config", required=True, help="KDC TOML file (keys in docs/security.md §7)")
    p.add_argument("--metrics", metavar="[HOST:]PORT", type=_listen_address,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default host ::1)")
    p.set_defaults(func=_cmd_kdc)

    p = sub.add_parser("lab", help="the namespace lab: up, status, move, down, run (root)",
                       description="up: build the namespaces, veth pairs and bridges and start fmipfast router "
                       "engines in par and nar and fmipfast mn in mn, attached to the PAR (kept running after the "
                       "command); status: the daemons' live counters; move: the MN's link to A or B (what a "
                       "handover's switch command does); down: stop the daemons and remove every namespace and "
                       "link; run: build a lab, "
                       "measure a fast handover of a CN stream over it (engines with AH, Kerberos case 1) and "
                       "remove it.")
    p.add_argument("action", choices=("up", "status", "move", "down", "run"))
    p.add_argument("--to", help="move (required): link A or B, or the address of the router on it")
    p.add_argument("--prefix", default="fmipfast-lab-", help="namespace name prefix (default fmipfast-lab-)")
    p.add_argument("--state", help="state directory (default /run/fmipfast-lab/<prefix>)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--rate", type=_within(int, 1, MAX_RATE), default=1000,
                   help=f"run: the CN's stream, datagrams per second (1..{MAX_RATE})")
    p.add_argument("--gap-ms", type=_within(float, 0, LAB_MAX_MS), default=30.0,
                   help=f"run, move: the layer-2 gap of the move, ms (0..{LAB_MAX_MS})")
    p.add_argument("--repeat", type=int, default=1, help="run: runs, reported as median, p90, p99 and maximum")
    p.add_argument("--no-buffer", action="store_true", help="run: ask the NAR not to buffer")
    p.add_argument("--case", type=int, choices=(1, 2, 3), default=1,
                   help="run: Kerberos key case at the NAR: 1 own key, 2 its realm's KDC, 3 the MN's home KDC "
                        "through it (KDCs as separate processes)")
    p.add_argument("--kerberos", choices=("lwkerb", "gssapi"), default="lwkerb",
                   help="run: lwkerb (default), or gssapi: standard Kerberos, tickets from two throwaway MIT realms, "
                        "the engines accepting with keytabs (needs gssapi, k5test and the MIT KDC programs; key "
                        "case 1 only)")
    p.add_argument("--plot", metavar="FILE.png", help="run: draw the (last) run of each mode (needs matplotlib)")
    p.add_argument("--reverse", action="store_true",
                   help="run: link reversal (draft App. A): the MN comes back on link A instead of moving to B")
    p.add_argument("--capture", metavar="FILE.pcapng",
                   help="run: every frame of both access links (dumpcap); with --baseline, plain Mobile IPv6 goes "
                        "to FILE-baseline.pcapng; with --repeat, the last run of each mode")
    p.add_argument("--baseline", action="store_true",
                   help="run: also plain Mobile IPv6 on the same links (kernel SLAAC with DAD, then the BU)")
    p.add_argument("--switch-delay-ms", type=_within(float, 0, 10_000), default=0.0,
                   help="run: from the MN's ReadyToSwitch to its port going down (default 0: at once)")
    p.add_argument("--ring-timeout-ms", type=_within(int, 1, 1000), default=2,
                   help="run: the engines' TPACKET block retire timeout (default 2, as [router.ring]'s; 1 is the "
                        "kernel's least)")
    p.add_argument("--switch-priority", type=_within(int, 0, 99), default=0, metavar="PRIO",
                   help="run: the layer-2 switch at realtime FIFO PRIO where allowed (default 0: ordinary); above the "
                        "routers' 10 it stands in for a switch with a CPU of its own")
    p.add_argument("--ring-mode", choices=("blocks", "frames"), default="blocks",
                   help="run: the engines' RX rings, [router.ring] mode: blocks (TPACKET_V3, default) or frames "
                        "(TPACKET_V2, each frame handed over at once)")
    p.set_defaults(func=_cmd_lab)

    p = sub.add_parser("version", help="print the version and which kernels are in use")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"fmipfast: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fmipfast ... | head`: the reader has gone; stop quietly
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"fmipfast {args.command}: interrupted", file=sys.stderr)
        return 130


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of what is still buffered does not
    fail on the closed pipe a second time (the idiom of the Python documentation's note on SIGPIPE)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
