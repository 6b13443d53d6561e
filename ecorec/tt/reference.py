"""Dense reconstruction of a TT table: the test oracle and ``TTEmbeddingBag.full_weight()``.

Plain differentiable torch ops (reshape + einsum), independent of the lookup algorithms, so autograd through
it gives the reference core gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ecorec.tt.shapes import TTShapes


def tt_full_weight(cores: Sequence[torch.Tensor], shapes: TTShapes) -> torch.Tensor:
    """Materialise the dense table.

    Args:
        cores: ``d`` tensors, core ``t`` of shape ``(p_t, r_t * q_t * r_{t+1})``.
        shapes: the table's :class:`TTShapes`.

    Returns:
        ``Tensor[N, D]``: row ``idx`` (digits row-major over p) and column ``j`` (digits row-major over q) of
        the product ``G_0[I_0] G_1[I_1] ... G_{d-1}[I_{d-1}]``; rows ``>= N`` and columns ``>= D`` are
        dropped.
        Memory is ``O(prod(p) * prod(q))``: for small tables only.
    """
    r, p, q = shapes.ranks, shapes.p_shapes, shapes.q_shapes
    # acc: (P, Qc, r_k) with P = p_0..p_{k-1} (rows so far) and Qc = q_0..q_{k-1} (columns so far).
    acc = cores[0].reshape(p[0], q[0], r[1])
    for t in range(1, shapes.num_cores):
        core = cores[t].reshape(p[t], r[t], q[t], r[t + 1])
        acc = torch.einsum("aqr,brsk->abqsk", acc, core)
        acc = acc.reshape(acc.shape[0] * p[t], acc.shape[2] * q[t], r[t + 1])
    return acc.reshape(shapes.padded_rows, shapes.padded_dim)[: shapes.num_embeddings, : shapes.embedding_dim]


def tt_rows(cores: Sequence[torch.Tensor], shapes: TTShapes, rows: torch.Tensor) -> torch.Tensor:
    """Rows of the table by the plain chain ``G_0[I_0] @ ... @ G_{d-1}[I_{d-1}]`` per row (differentiable).

    Args:
        rows: ``(n,)`` int row ids in ``[0, N)``.

    Returns:
        ``Tensor[n, D]``.
    """
    r, p, q = shapes.ranks, shapes.p_shapes, shapes.q_shapes
    rows = rows.to(torch.int64)
    n = rows.numel()
    digits = []
    rest = rows
    for t in reversed(range(shapes.num_cores)):
        digits.append(rest % p[t])
        rest = rest // p[t]
    digits.reverse()
    acc = cores[0][digits[0]].reshape(n, q[0], r[1])
    for t in range(1, shapes.num_cores):
        core = cores[t][digits[t]].reshape(n, r[t], q[t] * r[t + 1])
        acc = torch.bmm(acc, core).reshape(n, acc.shape[1] * q[t], r[t + 1])
    return acc.reshape(n, shapes.padded_dim)[:, : shapes.embedding_dim]
