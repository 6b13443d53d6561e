"""A measured check that shaping is real: one plain TCP stream from node 0 to node 1 of a two-node emulated
network for a few seconds; the receiver counts bytes against time, and the rate after a warm-up (which leaves
out the token bucket's initial burst and TCP's slow start) is compared with the configured rate.

``python -m ecorec.cluster check-link --link-gbit X`` prints the numbers; :func:`check_link` returns them.
The sender and receiver are this module run as a program (``python -m ecorec.cluster.linkcheck serve|send``)
inside the node namespaces.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from ecorec.cluster.network import EmulatedNetwork, LinkSpec

__all__ = ["LinkCheck", "check_link", "main"]

_PORT = 29411
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LinkCheck:
    """Configured and measured rate of one shaped direction (Gbit/s), ``ratio`` = measured / configured."""

    configured_gbit: float
    measured_gbit: float
    ratio: float
    bytes_measured: int
    seconds_measured: float
    warmup_s: float
    mtu: int

    @property
    def within(self) -> float:
        return abs(self.ratio - 1.0)


def _serve(port: int, warmup_s: float) -> None:
    """Accept one connection, read until it closes; print JSON with the bytes and seconds after warm-up."""
    with socket.create_server(("0.0.0.0", port)) as server:
        print("ready", flush=True)
        conn, _ = server.accept()
        with conn:
            first = None
            start_bytes = 0
            start_t = None
            total = 0
            last = time.perf_counter()
            while True:
                data = conn.recv(_CHUNK)
                now = time.perf_counter()
                if not data:
                    break
                if first is None:
                    first = now
                total += len(data)
                last = now
                if start_t is None and now - first >= warmup_s:
                    start_t, start_bytes = now, total
    if start_t is None:
        raise SystemExit("the stream ended before the warm-up was over")
    print(json.dumps({"bytes": total - start_bytes, "seconds": last - start_t}), flush=True)


def _send(host: str, port: int, seconds: float) -> None:
    payload = b"\0" * _CHUNK
    with socket.create_connection((host, port), timeout=30) as conn:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.sendall(payload)


def check_link(
    link_gbit: float,
    *,
    seconds: float = 4.0,
    warmup_s: float = 1.0,
    mtu: int = 9000,
    prefix: str | None = None,
) -> LinkCheck:
    """Shape a two-node network at ``link_gbit`` and measure one TCP stream from node 0 to node 1."""
    if seconds <= warmup_s:
        raise ValueError(f"seconds ({seconds}) must exceed warmup_s ({warmup_s})")
    with EmulatedNetwork(2, LinkSpec(link_gbit=link_gbit, mtu=mtu), prefix) as net:
        a, b = net.nodes
        py = [sys.executable, "-m", "ecorec.cluster.linkcheck"]
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                b.namespace,
                *py,
                "serve",
                "--port",
                str(_PORT),
                "--warmup",
                str(warmup_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError("the link check's receiver did not start")
            subprocess.run(
                ["ip", "netns", "exec", a.namespace, *py, "send", "--host", b.address, "--port", str(_PORT),
                 "--seconds", str(seconds)],
                check=True,
                timeout=seconds + 60,
            )  # fmt: skip
            out, _ = server.communicate(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    result = json.loads(out.strip().splitlines()[-1])
    gbit = result["bytes"] * 8 / result["seconds"] / 1e9
    return LinkCheck(link_gbit, gbit, gbit / link_gbit, result["bytes"], result["seconds"], warmup_s, mtu)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ecorec.cluster.linkcheck")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=_PORT)
    s.add_argument("--warmup", type=float, default=1.0)
    c = sub.add_parser("send")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, default=_PORT)
    c.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        _serve(args.port, args.warmup)
    else:
        _send(args.host, args.port, args.seconds)
    return 0


def as_dict(check: LinkCheck) -> dict[str, float | int]:
    return asdict(check)


if __name__ == "__main__":
    sys.exit(main())
