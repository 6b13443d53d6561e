"""Command-line flags of ``python -m ecorec.bench tt`` from a figure's config section (``fig11``, ``table1``).

Whether the chosen index source reads a flag is checked by the benchmark's CLI itself (an error naming the
flag), so the same rule holds by hand and in the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Config key of a kernel-benchmark section -> flag of ``python -m ecorec.bench tt``.
BENCH_FLAGS: dict[str, str] = {
    "variants": "--algorithms",
    "micro_batches": "--micro-batches",
    "embedding_dim": "--embedding-dim",
    "tt_ranks": "--tt-ranks",
    "repeats": "--repeats",
    "warmup": "--warmup",
    "num_batches": "--num-batches",
    "fbtt_chunk_size": "--fbtt-chunk-size",
    "product_strategy": "--product-strategy",
    "max_dense_bytes": "--max-dense-bytes",
    "copy_bytes": "--copy-bytes",
    "seed": "--seed",
}

#: Section keys that are not flags: the grid (the rule's wildcards) and what selects the tables.
GRID_KEYS = {"batch_sizes", "largest_tables", "num_embeddings"}


def bench_flags(section: Mapping[str, Any]) -> str:
    """The flags (one string, in :data:`BENCH_FLAGS` order) a figure's section sets; lists become several
    values of one flag. A key that is neither a flag nor a grid key raises ``ValueError`` naming it."""
    unknown = set(section) - set(BENCH_FLAGS) - GRID_KEYS
    if unknown:
        raise ValueError(
            f"kernel-benchmark section: keys {sorted(unknown)} map to no flag of ecorec.bench tt"
        )
    flags = []
    for key, flag in BENCH_FLAGS.items():
        if key in section:
            value = section[key]
            values = value if isinstance(value, list | tuple) else [value]
            flags.append(" ".join([flag, *map(str, values)]))
    return " ".join(flags)
