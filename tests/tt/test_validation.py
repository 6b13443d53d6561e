"""Every bad input raises a ValueError that names the argument and the bad value."""

from __future__ import annotations

import pytest
import torch

from ecorec.tt import TTEmbeddingBag
from ecorec.tt.ops import resolve_backend


@pytest.fixture
def bag() -> TTEmbeddingBag:
    return TTEmbeddingBag(100, 8, 2, include_last_offset=True)


@pytest.fixture
def bag_without_last() -> TTEmbeddingBag:
    return TTEmbeddingBag(100, 8, 2)


IDX = torch.tensor([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.tensor([1, 100, 3, -2]), torch.tensor([0, 2, 4])),
         r"indices must be in \[0, num_embeddings=100\), got min\(indices\)=-2, max\(indices\)=100"),
        (lambda m: m(torch.tensor([1, 100]), torch.tensor([0, 2])), r"max\(indices\)=100"),
        (lambda m: m(IDX, torch.tensor([0, 2, 3])),
         r"offsets must end at len\(indices\)=4 .* offsets\[-1\]=3"),
        (lambda m: m(IDX, torch.tensor([1, 2, 4])), r"offsets must start at 0, got offsets\[0\]=1"),
        (lambda m: m(IDX, torch.tensor([0, 3, 2, 4])),
         r"non-decreasing, got offsets\[1\]=3 > offsets\[2\]=2"),
        (lambda m: m(IDX, torch.tensor([], dtype=torch.int64)), "at least one entry"),
        (lambda m: m(IDX, lengths=torch.tensor([3, -1, 2])), r"lengths must be >= 0, got lengths\[1\]=-1"),
        (lambda m: m(IDX, lengths=torch.tensor([3, 2])), r"lengths must sum to len\(indices\)=4, got sum"),
        (lambda m: m(IDX, torch.tensor([0, 2, 4]), lengths=torch.tensor([2, 2])),
         "exactly one of offsets or lengths"),
        (lambda m: m(IDX), "exactly one of offsets or lengths with 1-D indices, got neither"),
        (lambda m: m(IDX.view(2, 2), torch.tensor([0, 2, 4])), "must be None when indices is 2-D"),
        (lambda m: m(IDX.view(1, 2, 2)), r"indices must be 1-D \(nnz,\) or 2-D"),
        (lambda m: m(IDX.float(), torch.tensor([0, 4])),
         r"indices must be int32 or int64, got indices.dtype=torch.float32"),
        (lambda m: m(IDX, torch.tensor([0.0, 4.0])), "offsets must be int32 or int64"),
        (lambda m: m(IDX, lengths=torch.tensor([4.0])), "lengths must be int32 or int64"),
        (lambda m: m(IDX, torch.tensor([[0, 4]])), "offsets must be 1-D"),
        (lambda m: m(IDX, torch.tensor([0, 4]), per_sample_weights=torch.ones(3)),
         r"per_sample_weights must have the shape of indices \(4,\)"),
        (lambda m: m(IDX, torch.tensor([0, 4]), per_sample_weights=torch.ones(4, dtype=torch.float64)),
         "per_sample_weights must have the dtype of the TT cores"),
        (lambda m: m(IDX, torch.tensor([0, 4]), per_sample_weights=torch.ones(4, device="meta")),
         "per_sample_weights is on meta"),
        (lambda m: m(IDX.to("meta"), torch.tensor([0, 4])), "indices is on meta but the TT cores are on cpu"),
        (lambda m: m(IDX, torch.tensor([0, 4], device="meta")), "offsets is on meta"),
        (lambda m: m(IDX, torch.tensor([0, 4]), per_sample_weights=torch.ones(4, requires_grad=True)),
         "requires_grad=True is not supported"),
        (lambda m: m([1, 2], torch.tensor([0, 2])), "indices must be a torch.Tensor"),
    ],
)  # fmt: skip
def test_bad_lookup_arguments(bag: TTEmbeddingBag, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(bag)


def test_offsets_without_last_offset(bag_without_last: TTEmbeddingBag) -> None:
    with pytest.raises(ValueError, match=r"offsets must not exceed len\(indices\)=4, got offsets\[-1\]=5"):
        bag_without_last(IDX, torch.tensor([0, 5]))
    assert bag_without_last(IDX, torch.tensor([0, 4])).shape == (2, 8)  # the last bag may be empty


def test_per_sample_weights_with_mean_mode() -> None:
    bag = TTEmbeddingBag(100, 8, 2, mode="mean")
    with pytest.raises(
        ValueError, match="per_sample_weights is only supported with mode='sum', got mode='mean'"
    ):
        bag(IDX, torch.tensor([0]), per_sample_weights=torch.ones(4))


def test_validate_indices_false_skips_value_checks_only() -> None:
    bag = TTEmbeddingBag(100, 8, 2, include_last_offset=True, validate_indices=False)
    bag(IDX, torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError, match="indices must be int32 or int64"):  # cheap checks stay
        bag(IDX.float(), torch.tensor([0, 4]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mode="max"), "mode must be one of \\('sum', 'mean'\\), got mode='max'"),
        (dict(algorithm="ttrec"), "algorithm must be one of"),
        (dict(backend="triton"), "backend must be one of"),
        (dict(weight_init="xavier"), "weight_init must be one of"),
        (dict(micro_batches=0), "micro_batches must be an int >= 1, got micro_batches=0"),
        (dict(max_micro_uniques=0), "max_micro_uniques must be >= 1 or None"),
        (dict(fbtt_chunk_size=-1), "fbtt_chunk_size must be >= 0"),
        (dict(algorithm="fbtt", micro_batches=2), "apply to algorithm='ecorec' only"),
        (dict(optimizer="sgd"), "optimizer must be a TTOptimizerConfig or None"),
        (dict(dtype=torch.int64), "dtype must be a floating point dtype"),
        (dict(product_strategy="fast"), "product_strategy must be one of"),
        (dict(weight_init="uniform", init_std=0.1), "init_std=0.1 is not used by weight_init='uniform'"),
        (dict(init_std=-1.0), "init_std must be > 0"),
        (dict(tt_p_shapes=[2, 2, 2]), "prod\\(p_shapes\\)=8 < num_embeddings=100"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TTEmbeddingBag(100, 8, 2, **kwargs)


def test_cuda_backend_on_cpu_tensors_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend='cuda' cannot run this lookup: the TT cores are on cpu"):
        resolve_backend("cuda", torch.device("cpu"))
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    bag = TTEmbeddingBag(100, 8, 2, include_last_offset=True, backend="cuda")
    with pytest.raises(ValueError, match="backend='cuda'"):
        bag(IDX, torch.tensor([0, 4]))
