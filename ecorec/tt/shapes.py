"""TT shapes: factor a table's rows into p-shapes and its embedding dim into q-shapes; ranks; core shapes.

A table of ``N`` rows and ``D`` columns is stored as ``d`` TT cores. Core ``t`` has shape
``(p_t, r_t * q_t * r_{t+1})``: row ``i`` is a row-major ``(r_t, q_t, r_{t+1})`` block, with
``r_0 = r_d = 1``. Row index ``idx`` has digits ``(I_0, ..., I_{d-1})`` row-major over ``p`` (``I_{d-1}``
varies fastest) and column ``j`` has digits ``(j_0, ..., j_{d-1})`` row-major over ``q``.
``prod(p) >= N`` and ``prod(q) >= D``: rows beyond ``N`` are never addressed, columns beyond ``D`` are
computed and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def _prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` with multiplicity, ascending (trial division; ``n`` up to ~1e12 is instant)."""
    factors: list[int] = []
    k = 2
    while k * k <= n:
        while n % k == 0:
            factors.append(k)
            n //= k
        k += 1 if k == 2 else 2
    if n > 1:
        factors.append(n)
    return factors


def _divisors(primes: list[int]) -> list[int]:
    """All divisors (ascending) of the product of ``primes`` (prime factors with multiplicity)."""
    divisors = [1]
    for prime in sorted(set(primes)):
        power, powers = 1, []
        for _ in range(primes.count(prime)):
            power *= prime
            powers.append(power)
        divisors = divisors + [d * pw for d in divisors for pw in powers]
    return sorted(divisors)


def _factor_tuples(n: int, d: int, min_factor: int, divisors: list[int]) -> list[tuple[int, ...]]:
    """All non-decreasing ``d``-tuples of divisors of ``n``, each ``>= min_factor``, with product ``n``."""
    if d == 1:
        return [(n,)] if n >= min_factor else []
    out: list[tuple[int, ...]] = []
    for a in divisors:
        if a < min_factor or n % a:
            continue
        if a**d > n:  # the remaining d-1 factors are >= a
            break
        out.extend((a, *rest) for rest in _factor_tuples(n // a, d - 1, a, divisors))
    return out


def _entropy(factors: Sequence[int]) -> float:
    """Shannon entropy of the factor vector normalised to sum 1 (higher = more balanced)."""
    total = float(sum(factors))
    return -sum((f / total) * math.log(f / total) for f in factors if f > 0)


def _interleave(sorted_factors: Sequence[int]) -> list[int]:
    """Canonical order: ascending list split into halves ``[:d//2]`` and ``[d//2:]``, interleaved round-robin.

    ``d=3`` gives ascending ``(a, b, c)``; ``d=4`` gives ``(a, c, b, d)``.
    """
    half = len(sorted_factors) // 2
    first, second = list(sorted_factors[:half]), list(sorted_factors[half:])
    out: list[int] = []
    for i in range(max(len(first), len(second))):
        if i < len(first):
            out.append(first[i])
        if i < len(second):
            out.append(second[i])
    return out


def _most_balanced_shape(n: int, d: int) -> list[int]:
    """The most balanced factorisation of ``n`` into ``d`` factors (maximum entropy), canonically ordered.

    As in TT-Rec/FBTT: the prime factors of ``n`` (padded with 1s to ``d`` entries) are partitioned into
    exactly ``d`` non-empty blocks, so a factor is 1 only when ``n`` has fewer than ``d`` prime factors.
    """
    primes = _prime_factors(n)
    if len(primes) < d:
        return _interleave(sorted(primes + [1] * (d - len(primes))))
    candidates = _factor_tuples(n, d, 2, _divisors(primes))
    # Ties (equal entropy) go to the lexicographically smallest ascending tuple, so the result is
    # deterministic.
    best = max(sorted(candidates), key=_entropy)
    return _interleave(best)


def suggested_tt_shapes(n: int, d: int = 3, allow_round_up: bool = True) -> list[int]:
    """Factor ``n`` into ``d`` balanced TT shapes (TT-Rec's ``suggested_tt_shapes``).

    Args:
        n: the number to factor (rows ``N`` for p-shapes, embedding dim ``D`` for q-shapes); ``n >= 1``.
        d: number of factors (TT cores), ``d >= 1``.
        allow_round_up: also try ``n`` rounded up to a multiple of ``10**k`` for ``k < len(str(n))`` and keep
            the most balanced result (so ``prod(result) >= n``); with ``False``, ``prod(result) == n``.

    Returns:
        ``d`` factors in canonical order (ascending for ``d <= 3``).

    Example:
        >>> suggested_tt_shapes(1_000_000)
        [100, 100, 100]
        >>> suggested_tt_shapes(128, allow_round_up=False)
        [4, 4, 8]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"suggested_tt_shapes: n must be a positive int, got n={n!r}")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"suggested_tt_shapes: d must be a positive int, got d={d!r}")
    if not allow_round_up:
        return _most_balanced_shape(n, d)
    best_n, best_entropy = n, -1.0
    for k in range(len(str(n))):
        step = 10**k
        rounded = -(-n // step) * step
        entropy = _entropy(_most_balanced_shape(rounded, d))
        if entropy > best_entropy:  # strict: the least rounding wins ties
            best_n, best_entropy = rounded, entropy
    return _most_balanced_shape(best_n, d)


def _as_int_list(name: str, values: Sequence[int] | int) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        return [values]
    try:
        out = [int(v) for v in values]
    except TypeError as exc:
        raise ValueError(f"TTShapes: {name} must be a sequence of ints, got {values!r}") from exc
    if any(isinstance(v, bool) or int(v) != v for v in values):
        raise ValueError(f"TTShapes: {name} must be a sequence of ints, got {values!r}")
    return out


@dataclass(frozen=True)
class TTShapes:
    """Shapes of a TT-compressed table of ``num_embeddings`` rows and ``embedding_dim`` columns.

    Attributes:
        num_embeddings: ``N``, rows addressed by indices (``<= prod(p_shapes)``).
        embedding_dim: ``D``, output columns (``<= prod(q_shapes)``; extra columns are computed and dropped).
        p_shapes: ``(p_0, ..., p_{d-1})``, row factors.
        q_shapes: ``(q_0, ..., q_{d-1})``, column factors.
        ranks: ``(1, r_1, ..., r_{d-1}, 1)``, TT ranks including the outer 1s.
    """

    num_embeddings: int
    embedding_dim: int
    p_shapes: tuple[int, ...]
    q_shapes: tuple[int, ...]
    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        p, q, r = tuple(self.p_shapes), tuple(self.q_shapes), tuple(self.ranks)
        object.__setattr__(self, "p_shapes", p)
        object.__setattr__(self, "q_shapes", q)
        object.__setattr__(self, "ranks", r)
        if self.num_embeddings < 1 or self.embedding_dim < 1:
            raise ValueError(
                f"TTShapes: num_embeddings and embedding_dim must be >= 1, got "
                f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"
            )
        if len(p) < 2:
            raise ValueError(f"TTShapes: need at least 2 cores, got p_shapes={list(p)}")
        if len(q) != len(p):
            raise ValueError(f"TTShapes: p_shapes={list(p)} and q_shapes={list(q)} must have the same length")
        if len(r) != len(p) + 1 or r[0] != 1 or r[-1] != 1:
            raise ValueError(
                f"TTShapes: ranks must be [1, r_1, ..., r_{{d-1}}, 1] with d={len(p)}, got ranks={list(r)}"
            )
        for name, values in (("p_shapes", p), ("q_shapes", q), ("ranks", r)):
            if any(v < 1 for v in values):
                raise ValueError(f"TTShapes: every entry of {name} must be >= 1, got {name}={list(values)}")
        if math.prod(p) < self.num_embeddings:
            raise ValueError(
                f"TTShapes: prod(p_shapes)={math.prod(p)} < num_embeddings={self.num_embeddings} "
                f"(p_shapes={list(p)})"
            )
        if math.prod(q) < self.embedding_dim:
            raise ValueError(
                f"TTShapes: prod(q_shapes)={math.prod(q)} < embedding_dim={self.embedding_dim} "
                f"(q_shapes={list(q)})"
            )

    @classmethod
    def from_sizes(
        cls,
        num_embeddings: int,
        embedding_dim: int,
        tt_ranks: Sequence[int] | int,
        *,
        p_shapes: Sequence[int] | None = None,
        q_shapes: Sequence[int] | None = None,
        num_cores: int | None = None,
        enforce_embedding_dim: bool = True,
        round_up_rows: bool = True,
    ) -> TTShapes:
        """Build shapes from sizes; missing p/q shapes come from :func:`suggested_tt_shapes`.

        Args:
            num_embeddings: ``N``.
            embedding_dim: ``D``.
            tt_ranks: inner ranks ``[r_1, ..., r_{d-1}]``, or one int used for every inner rank.
            p_shapes, q_shapes: explicit factors (their length fixes ``d``).
            num_cores: ``d`` when neither shape list nor a rank list fixes it (default 3).
            enforce_embedding_dim: suggested q-shapes multiply to exactly ``D`` (the artifact's setting); with
                ``False`` they may round ``D`` up and the extra columns are dropped.
            round_up_rows: suggested p-shapes may factor ``N`` rounded up to a multiple of ``10^k`` when that
                is more balanced (TT-Rec's and the artifact's setting; rows beyond ``N`` are never addressed);
                with ``False`` they are the most balanced exact factorisation, ``prod(p) == N``, and explicit
                ``p_shapes`` must multiply to exactly ``N`` too.
        """
        if not isinstance(round_up_rows, bool):
            raise ValueError(f"TTShapes: round_up_rows must be a bool, got round_up_rows={round_up_rows!r}")
        ranks_in = _as_int_list("tt_ranks", tt_ranks)
        lengths = {len(s) for s in (p_shapes, q_shapes) if s is not None}
        if not isinstance(tt_ranks, int):
            lengths.add(len(ranks_in) + 1)
        if num_cores is not None:
            lengths.add(num_cores)
        if len(lengths) > 1:
            raise ValueError(
                f"TTShapes: inconsistent number of cores: p_shapes={p_shapes}, q_shapes={q_shapes}, "
                f"tt_ranks={tt_ranks}, num_cores={num_cores}"
            )
        d = lengths.pop() if lengths else 3
        if d < 2:
            raise ValueError(f"TTShapes: need at least 2 cores, got num_cores={d}")
        inner = ranks_in * (d - 1) if isinstance(tt_ranks, int) else ranks_in
        p = (
            _as_int_list("p_shapes", p_shapes)
            if p_shapes is not None
            else suggested_tt_shapes(num_embeddings, d, allow_round_up=round_up_rows)
        )
        if not round_up_rows and math.prod(p) != num_embeddings:
            raise ValueError(
                f"TTShapes: round_up_rows=False needs prod(p_shapes) == num_embeddings={num_embeddings}, got "
                f"p_shapes={p} (prod {math.prod(p)})"
            )
        q = (
            _as_int_list("q_shapes", q_shapes)
            if q_shapes is not None
            else suggested_tt_shapes(embedding_dim, d, allow_round_up=not enforce_embedding_dim)
        )
        return cls(num_embeddings, embedding_dim, tuple(p), tuple(q), (1, *inner, 1))

    @property
    def num_cores(self) -> int:
        """``d``."""
        return len(self.p_shapes)

    @property
    def padded_dim(self) -> int:
        """``Q = prod(q)``: columns computed per row (``>= D``)."""
        return math.prod(self.q_shapes)

    @property
    def padded_rows(self) -> int:
        """``prod(p)``: rows representable (``>= N``)."""
        return math.prod(self.p_shapes)

    def core_shapes(self) -> list[tuple[int, int]]:
        """``[(p_t, r_t * q_t * r_{t+1}) for t in range(d)]``."""
        r = self.ranks
        return [(p, r[t] * q * r[t + 1]) for t, (p, q) in enumerate(zip(self.p_shapes, self.q_shapes))]

    def num_parameters(self) -> int:
        """Total entries of all cores."""
        return sum(rows * cols for rows, cols in self.core_shapes())

    def compression_ratio(self) -> float:
        """``N * D / num_parameters()``: dense table size over TT size."""
        return self.num_embeddings * self.embedding_dim / self.num_parameters()

    def prefix_divisors(self) -> list[int]:
        """``div_k = p_{k+1} * ... * p_{d-1}`` for ``k = 0..d-1``; the level-k prefix of ``idx`` is
        ``idx // div_k``.

        Level ``k`` keys the first ``k + 1`` digits; level ``d - 1`` is the row itself (``div = 1``).
        """
        out = []
        for k in range(self.num_cores):
            out.append(math.prod(self.p_shapes[k + 1 :]))
        return out

    def level_dims(self) -> list[int]:
        """``Q_k = q_0 * ... * q_k`` for ``k = 0..d-1``: columns of the level-k prefix product."""
        return [math.prod(self.q_shapes[: k + 1]) for k in range(self.num_cores)]
