"""``python -m ecorec.cluster <command>``:

- ``run --nodes N --ranks-per-node P [--link-gbit X | --config config.yaml --profile NAME] [--intra-gbit Y]
  [--dilation-file F] [--fallback] -- SCRIPT.py [ARGS] | -m MODULE [ARGS]``: run the script on
  every rank of the emulated cluster (as torchrun runs a training script); exits with the job's status.
- ``check-link --link-gbit X``: measure one TCP stream through a shaped link; exit 1 when off by more than
  ``--tolerance`` (default 10%).
- ``dilation --config config.yaml --profile NAME --ranks-per-node P``: measure this machine's TT kernel rate
  and print (``--output``: write) the dilation factor and link rates.
- ``cleanup [--prefix PREFIX]``: remove a killed run's leftover namespaces (without ``--prefix``: those of
  every run whose launcher is gone; each ``run`` does that first too).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ecorec.cluster.dilation import compute_dilation, measure_reference_us, profile_from_config
from ecorec.cluster.launch import ClusterSpec, Terminated, run_job
from ecorec.cluster.linkcheck import check_link
from ecorec.cluster.network import ClusterError, LinkSpec, cleanup, reap_orphans
from ecorec.utils import write_json_atomic
from ecorec.utils.yamlfile import load_yaml


def _cluster_section(path: str) -> dict[str, Any]:
    data = load_yaml(path) or {}  # strict: a second `cluster:` section is an error naming both lines
    section = data.get("cluster") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise SystemExit(f"{path}: no 'cluster:' section")
    return section


def _dilation(args: argparse.Namespace) -> dict[str, Any]:
    section = _cluster_section(args.config)
    name = args.profile or section.get("profile")
    profile = profile_from_config(name, section.get("profiles", {}))
    if args.here_us is not None:
        here = {"us_per_lookup": args.here_us, "measured": False}
    else:
        here = {**measure_reference_us(repeats=args.repeats, threads=args.threads), "measured": True}
    d = compute_dilation(
        profile,
        here["us_per_lookup"],
        args.ranks_per_node,
        link_gbit=args.link_gbit,
        shape_intra_node=args.shape_intra_node,
    )
    return {**d.as_dict(), "measurement": here}


def _add_dilation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with a 'cluster:' section (profiles)")
    p.add_argument("--profile", help="profile name (default: cluster.profile of --config)")
    p.add_argument("--here-us", type=float, help="this machine's us/lookup instead of measuring it")
    p.add_argument("--threads", type=int, default=1, help="threads of the kernel measurement (per rank)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--shape-intra-node", action="store_true", help="also shape loopback at the dilated rate")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the message names the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecorec.cluster", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run SCRIPT on the emulated cluster")
    r.add_argument("--nodes", type=_positive_int, required=True)
    r.add_argument("--ranks-per-node", type=_positive_int, required=True)
    r.add_argument(
        "--link-gbit", type=float, help="inter-node rate per node and direction (overrides profile)"
    )
    r.add_argument("--intra-gbit", type=float, help="shape each node's loopback at this rate")
    r.add_argument("--mtu", type=int, default=9000)
    r.add_argument("--queue-ms", type=float, default=50.0)
    r.add_argument("--prefix", help="name prefix of namespaces and links (default: fresh per run)")
    r.add_argument("--fallback", action="store_true", help="without the capability: plain loopback + warning")
    r.add_argument("--dilation-file", help="JSON written by `dilation --output` (instead of --config)")
    _add_dilation_args(r)
    r.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT.py [ARGS] | -- -m MODULE [ARGS]")
    c = sub.add_parser("check-link", help="measure the rate of one shaped link")
    c.add_argument("--link-gbit", type=float, required=True)
    c.add_argument("--seconds", type=float, default=4.0)
    c.add_argument("--warmup", type=float, default=1.0)
    c.add_argument("--mtu", type=int, default=9000)
    c.add_argument("--tolerance", type=float, default=0.10)
    d = sub.add_parser("dilation", help="measure the kernel rate here; print the dilation and link rates")
    d.add_argument("--ranks-per-node", type=int, required=True)
    d.add_argument("--link-gbit", type=float)
    d.add_argument("--output", help="write the JSON here (atomically)")
    _add_dilation_args(d)
    k = sub.add_parser("cleanup", help="remove leftover namespaces (of a prefix, or of every dead launcher)")
    k.add_argument(
        "--prefix", help="every namespace starting with this (default: runs whose launcher is gone)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.command == "cleanup":
            if args.prefix is None:
                gone = [ns for orphan in reap_orphans() for ns in orphan.namespaces]
            else:
                gone = cleanup(args.prefix)
            print(f"removed {len(gone)} namespaces: {' '.join(gone)}")
            return 0
        if args.command == "check-link":
            res = check_link(args.link_gbit, seconds=args.seconds, warmup_s=args.warmup, mtu=args.mtu)
            ok = res.within <= args.tolerance
            print(
                f"configured {res.configured_gbit:.4g} Gbit/s, measured {res.measured_gbit:.4g} Gbit/s "
                f"({res.bytes_measured} bytes in {res.seconds_measured:.2f} s after {res.warmup_s} s "
                f"warm-up), "
                f"ratio {res.ratio:.3f}: {'within' if ok else 'NOT within'} {args.tolerance:.0%}"
            )
            return 0 if ok else 1
        if args.command == "dilation":
            if not args.config:
                raise SystemExit("dilation: --config is required")
            result = _dilation(args)
            print(json.dumps(result, indent=1))
            if args.output:
                write_json_atomic(args.output, result)
            return 0
        script = args.script[1:] if args.script[:1] == ["--"] else args.script
        info: dict[str, Any] = {}
        link_gbit = args.link_gbit
        if args.dilation_file:
            info["dilation"] = json.loads(Path(args.dilation_file).read_text())
            info["profile"] = info["dilation"]["profile"]
            if link_gbit is None:
                link_gbit = info["dilation"]["link_gbit"]
            if args.intra_gbit is None and info["dilation"].get("intra_gbit") is not None:
                args.intra_gbit = info["dilation"]["intra_gbit"]
        elif args.config:
            info["dilation"] = _dilation(args)
            info["profile"] = info["dilation"]["profile"]
            link_gbit = info["dilation"]["link_gbit"]
        elif args.profile:
            raise SystemExit("run: --profile needs --config (the file with cluster.profiles)")
        spec = ClusterSpec(
            args.nodes,
            args.ranks_per_node,
            LinkSpec(link_gbit=link_gbit, intra_gbit=args.intra_gbit, mtu=args.mtu, queue_ms=args.queue_ms),
            args.prefix,
            info,
        )
        return run_job(spec, script, fallback=args.fallback)
    except Terminated:
        return 143
    except (ClusterError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"python -m ecorec.cluster {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
