"""Each algorithm does the work its specification says (spec 1.8, 1.9, 1.13, 1.14), counted in small GEMMs.

Every small GEMM of the torch path goes through :func:`ecorec.tt.primitives.core_product` (one GEMM per item:
``left[i] @ G_k[row_i]``) or :func:`~ecorec.tt.primitives.core_product_backward` (two GEMMs per item: the
core slice ``left[i]^T @ grad[i]`` and ``grad[i] @ G_k[row_i]^T``); level 0 is a plain row gather. The test
wraps both where the algorithms look them up and records, per call, the core (by storage) and the number of
items ``n``. The expected counts come from the indices alone, with Python sets (not the plan code):
``nnz``, ``U`` distinct rows, ``G`` distinct prefix groups ``idx // p_2`` (3 cores), and for micro-batches
the distinct prefixes inside each contiguous range of sorted uniques.

Spec, 3 cores (E1 = level-1 GEMMs against core 1, E2 = level-2 GEMMs against core 2):

- ecorec: forward ``G`` E1 + ``U`` E2; backward recompute ``G`` E1, ``2U`` E2, ``2G`` E1 ("BWD: 3 E1 + 2 E2");
  with ``M`` micro-batches at most ``M - 1`` extra prefix products per level, uniques exactly once;
- fbtt: per occurrence, forward ``nnz`` E1 + ``nnz`` E2; backward ``nnz`` recompute + ``2 nnz`` + ``2 nnz``;
- elrec: forward ``G`` E1 (prefix reuse) + ``nnz`` E2 (per occurrence); backward per unique ``U`` recompute +
  ``2U`` E2 + ``2U`` E1, no contraction to prefix groups.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pytest
import torch

import ecorec.tt.algorithms.ecorec as ecorec_algorithm
import ecorec.tt.algorithms.elrec as elrec_algorithm
import ecorec.tt.algorithms.fbtt as fbtt_algorithm
from ecorec.tt import TTEmbeddingBag, primitives
from ecorec.tt.testing import random_lookup

from .utils import module_forward

N, D = 1000, 8
P3 = [10, 10, 10]  # p_2 = 10 uniques per prefix group at most: heavy prefix sharing, micro-batch boundaries
P4 = [5, 4, 5, 10]  # straddle groups


@dataclass
class WorkLog:
    """Per call: ``(kind, core index, n)`` with kind ``"product"`` (1 GEMM per item) or ``"backward"`` (2)."""

    core_ptrs: dict[int, int] = field(default_factory=dict)
    calls: list[tuple[str, int, int]] = field(default_factory=list)

    def take(self) -> list[tuple[str, int, int]]:
        calls, self.calls = self.calls, []
        return calls


def items(calls: list[tuple[str, int, int]], kind: str) -> Counter[int]:
    """Items per core index over ``calls`` of ``kind``."""
    out: Counter[int] = Counter()
    for k, core, n in calls:
        if k == kind:
            out[core] += n
    return out


def gemms(calls: list[tuple[str, int, int]]) -> int:
    """Small GEMMs over ``calls``: one per product item, two per backward item."""
    return sum(n * (1 if kind == "product" else 2) for kind, _, n in calls)


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> WorkLog:
    """Record every ``core_product`` / ``core_product_backward`` call of the three algorithms."""
    log = WorkLog()
    product, backward = primitives.core_product, primitives.core_product_backward

    def core_index(core: torch.Tensor) -> int:
        return log.core_ptrs[core.data_ptr()]

    def recording_product(left, core, rows, rank, strategy="auto"):
        log.calls.append(("product", core_index(core), left.shape[0]))
        return product(left, core, rows, rank, strategy)

    def recording_backward(left, core, rows, rank, grad_out, grad_core, deterministic, strategy="auto"):
        log.calls.append(("backward", core_index(core), left.shape[0]))
        return backward(left, core, rows, rank, grad_out, grad_core, deterministic, strategy)

    # Patch the names where the algorithms look them up (``from ecorec.tt.primitives import ...``;
    # raising=True: if an algorithm stops importing them by name the test fails instead of silently counting
    # nothing), and the primitives module itself for any call through it (the per-item chain of fbtt and
    # elrec, ``primitives.chain_products`` / ``chain_backward_``).
    for module in (primitives, ecorec_algorithm, elrec_algorithm):
        monkeypatch.setattr(module, "core_product", recording_product)
    for module in (primitives, ecorec_algorithm):
        monkeypatch.setattr(module, "core_product_backward", recording_backward)
    for module in (fbtt_algorithm, elrec_algorithm):  # the chain is the primitives' one, counted above
        assert module.chain_products is primitives.chain_products
        assert module.chain_backward_ is primitives.chain_backward_
    return log


def _module(work: WorkLog, algorithm: str, p_shapes: list[int], **kwargs) -> TTEmbeddingBag:
    module = TTEmbeddingBag(
        N, D, [3] * (len(p_shapes) - 1), tt_p_shapes=p_shapes, include_last_offset=True, algorithm=algorithm,
        backend="torch", dtype=torch.float64, **kwargs,
    )  # fmt: skip
    work.core_ptrs = {core.data_ptr(): t for t, core in enumerate(module.cores)}
    return module


def _lookup():
    # Zipf with repeats: nnz = 394 > U = 147 > G = 69 (3 cores).
    return random_lookup(
        N, 100, mean_length=4, distribution="zipf", weighted=True, dtype=torch.float64,
        generator=torch.Generator().manual_seed(31),
    )  # fmt: skip


def _run(work: WorkLog, module: TTEmbeddingBag, lookup) -> tuple[list, list]:
    """``(forward calls, backward calls)`` of one lookup."""
    out = module_forward(module, lookup)
    forward = work.take()
    out.backward(torch.ones_like(out))
    return forward, work.take()


def _prefix_counts(rows: list[int], p_shapes: list[int]) -> list[int]:
    """Distinct level-k prefixes ``idx // prod(p[k+1:])`` for ``k = 0..d-1`` (level d-1: the rows)."""
    return [len({i // math.prod(p_shapes[k + 1 :]) for i in rows}) for k in range(len(p_shapes))]


def _micro_prefix_counts(rows: list[int], p_shapes: list[int], micro_batches: int) -> list[int]:
    """Per level, the sum over micro-batches of the distinct prefixes of each micro-batch: the sorted uniques
    split into ``min(M, U)`` contiguous ranges, the first ``U mod M`` one longer (spec 1.7)."""
    uniques = sorted(set(rows))
    count = min(micro_batches, len(uniques))
    base, extra = divmod(len(uniques), count)
    totals, start = [0] * len(p_shapes), 0
    for m in range(count):
        size = base + (1 if m < extra else 0)
        chunk = uniques[start : start + size]
        start += size
        for k, n in enumerate(_prefix_counts(chunk, p_shapes)):
            totals[k] += n
    return totals


def test_ecorec_forward_and_backward_work(work: WorkLog) -> None:
    lookup = _lookup()
    rows = lookup.indices.tolist()
    _, groups, uniques = _prefix_counts(rows, P3)
    nnz = len(rows)
    assert groups < uniques < nnz  # the data has reuse at both levels, so the counts below discriminate
    forward, backward = _run(work, _module(work, "ecorec", P3), lookup)
    # Forward: one T01 per prefix group (E1), one row product per unique (E2); nothing per occurrence.
    assert items(forward, "product") == Counter({1: groups, 2: uniques})
    assert items(forward, "backward") == Counter()
    assert gemms(forward) == groups + uniques
    # Backward: recompute T01 per group; per unique the two E2 products; per group the two E1 products
    # (after the unique -> prefix group contraction).
    assert items(backward, "product") == Counter({1: groups})
    assert items(backward, "backward") == Counter({1: groups, 2: uniques})
    assert gemms(backward) == 3 * groups + 2 * uniques


@pytest.mark.parametrize("micro_batches", [2, 4, 9])
@pytest.mark.parametrize("p_shapes", [P3, P4], ids=["d3", "d4"])
def test_ecorec_micro_batches_add_at_most_m_minus_1_products_per_level(
    work: WorkLog, p_shapes: list[int], micro_batches: int
) -> None:
    lookup = _lookup()
    rows = lookup.indices.tolist()
    d = len(p_shapes)
    whole = _prefix_counts(rows, p_shapes)
    per_micro = _micro_prefix_counts(rows, p_shapes, micro_batches)
    assert sum(per_micro[1:]) > sum(whole[1:])  # the data does straddle micro-batch boundaries
    module = _module(work, "ecorec", p_shapes, micro_batches=micro_batches)
    forward, backward = _run(work, module, lookup)
    products = items(forward, "product")
    for k in range(1, d):
        # Spec 1.7: at most one prefix straddles each boundary, so at most M - 1 extra products per level...
        assert whole[k] <= products[k] <= whole[k] + micro_batches - 1
        # ... and exactly the distinct prefixes of each micro-batch's sorted-unique range.
        assert products[k] == per_micro[k]
    assert products[d - 1] == whole[d - 1]  # every unique row exactly once: the micro-batches partition U
    assert set(products) == set(range(1, d))
    # The backward redoes the same partition: recompute levels 1..d-2, two products per item at 1..d-1.
    assert items(backward, "product") == Counter({k: per_micro[k] for k in range(1, d - 1)})
    assert items(backward, "backward") == Counter({k: per_micro[k] for k in range(1, d)})
    # The per-call (per micro-batch) row products are bounded by ceil(U / M): the transient buffers shrink.
    largest = max(n for kind, core, n in forward if kind == "product" and core == d - 1)
    assert largest == math.ceil(whole[d - 1] / micro_batches)


@pytest.mark.parametrize("chunk_size", [0, 64])
def test_fbtt_works_per_occurrence(work: WorkLog, chunk_size: int) -> None:
    lookup = _lookup()
    nnz = lookup.indices.numel()
    forward, backward = _run(work, _module(work, "fbtt", P3, fbtt_chunk_size=chunk_size), lookup)
    assert items(forward, "product") == Counter({1: nnz, 2: nnz})
    assert gemms(forward) == 2 * nnz
    assert items(backward, "product") == Counter({1: nnz})  # recompute the prefix chain per occurrence
    assert items(backward, "backward") == Counter({1: nnz, 2: nnz})
    assert gemms(backward) == 5 * nnz
    if chunk_size:
        assert max(n for _, _, n in forward + backward) == chunk_size
        assert len(forward) == 2 * math.ceil(nnz / chunk_size)


def test_elrec_prefix_reuse_forward_per_unique_backward(work: WorkLog) -> None:
    lookup = _lookup()
    rows = lookup.indices.tolist()
    _, groups, uniques = _prefix_counts(rows, P3)
    nnz = len(rows)
    forward, backward = _run(work, _module(work, "elrec", P3), lookup)
    # Forward: T01 once per distinct prefix of the batch, the last product per occurrence.
    assert items(forward, "product") == Counter({1: groups, 2: nnz})
    assert gemms(forward) == groups + nnz
    # Backward: aggregated to uniques first, then the whole chain per unique (no prefix-group contraction).
    assert items(backward, "product") == Counter({1: uniques})
    assert items(backward, "backward") == Counter({1: uniques, 2: uniques})
    assert gemms(backward) == 5 * uniques


def test_algorithms_rank_as_the_spec_says(work: WorkLog) -> None:
    # Spec 1.13/1.14 in one line: ecorec < elrec < fbtt in forward GEMMs, ecorec < elrec < fbtt in backward.
    lookup = _lookup()
    totals = {}
    for algorithm in ("ecorec", "elrec", "fbtt"):
        forward, backward = _run(work, _module(work, algorithm, P3), lookup)
        totals[algorithm] = (gemms(forward), gemms(backward))
    assert totals["ecorec"][0] < totals["elrec"][0] < totals["fbtt"][0]
    assert totals["ecorec"][1] < totals["elrec"][1] < totals["fbtt"][1]
