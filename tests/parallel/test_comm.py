"""The collectives wrapper on 2 gloo ranks, against hand-built expectations."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ecorec.parallel import GradientAllReduce, PooledAllToAll, all_gather_equal, all_reduce_sum
from tests.parallel.harness import run_ranks

WIDTHS = [3, 5]  # columns rank 0 and rank 1 contribute
B = 2


def _block(rank: int) -> torch.Tensor:
    # x_r: [R*b, w_r]; entry (row i, col j) = 100*r + 10*i + j
    rows = torch.arange(2 * B).unsqueeze(1) * 10
    return (100 * rank + rows + torch.arange(WIDTHS[rank])).float()


def _worker(rank: int, world: int, out: str) -> None:
    exchange = PooledAllToAll(WIDTHS)
    # forward: rank s receives rows [s*b, (s+1)*b) of every x_r
    blocks = exchange.forward_blocks(exchange.start_forward(_block(rank)).wait(), B)
    for source, block in enumerate(blocks):
        assert torch.equal(block, _block(source)[rank * B : (rank + 1) * B]), (rank, source)
    # backward is the transpose: sending back what we received restores our own x
    back = exchange.start_backward([b.clone() for b in blocks]).wait().view(2 * B, WIDTHS[rank])
    assert torch.equal(back, _block(rank))
    # async exchanges in flight together complete independently
    first, second = exchange.start_forward(_block(rank)), exchange.start_forward(_block(rank) * 2)
    assert torch.equal(second.wait(), first.wait() * 2)
    # bucketed all-reduce sums; a parameter without a gradient contributes zeros
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    params[0].grad = torch.full((3,), float(rank + 1))
    if rank == 1:
        params[1].grad = torch.ones(2, 2)
    reducer = GradientAllReduce(params, bucket_bytes=16)
    assert len(reducer.buckets) == 2
    reducer.start()
    reducer.wait()
    assert torch.equal(params[0].grad, torch.full((3,), 3.0))
    assert torch.equal(params[1].grad, torch.ones(2, 2))
    assert float(all_reduce_sum(torch.tensor(rank + 1.0))) == 3.0
    assert all_gather_equal(torch.tensor([rank, rank])).tolist() == [0, 0, 1, 1]
    dist.barrier()


def test_collectives_on_two_gloo_ranks(tmp_path):
    run_ranks(_worker, 2, str(tmp_path))
