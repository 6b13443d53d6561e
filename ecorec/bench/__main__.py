"""``python -m ecorec.bench <benchmark> [options]``: benchmarks that print numbers and write JSON lines.

Benchmarks (each a module of this package with a ``main(argv) -> int``):

- ``tt``: the TT-EmbeddingBag algorithms against ``nn.EmbeddingBag`` and fbgemm's CPU TBE
  (:mod:`ecorec.bench.tt`).
- ``train``: the distributed modes side by side (:mod:`ecorec.bench.train`).
- ``placement``: measured cost of table placements, DreamShard's protocol (:mod:`ecorec.bench.placement`).
- ``split``: one rank's compute in embedding kernels and in dense MLPs (:mod:`ecorec.bench.compute_split`).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "tt": "ecorec.bench.tt",
    "train": "ecorec.bench.train",
    "placement": "ecorec.bench.placement",
    "split": "ecorec.bench.compute_split",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        print(
            f"\navailable: {', '.join(sorted(BENCHMARKS))}; "
            "`python -m ecorec.bench <name> --help` lists the options"
        )
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
