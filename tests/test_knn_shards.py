"""Sharded kNN with shards smaller than k and negative similarities, against brute force in float64.

The ranks are threads sharing one all_gather (a barrier), so the collective code path of
`sharded_knn_predict` runs for several ranks in one process, in milliseconds.
"""
import threading

import pytest
import torch
import torch.nn.functional as F

from ssl_lab.evaluation.knn import sharded_knn_predict
from ssl_lab.utils import comm


class _ThreadRanks:
    """get_rank / get_world_size / all_gather_tensor for `world` threads of one process."""

    def __init__(self, world: int):
        self.world, self.local = world, threading.local()
        self.barrier, self.slots = threading.Barrier(world), [None] * world

    def get_rank(self):
        return self.local.rank

    def get_world_size(self):
        return self.world

    def all_gather_tensor(self, tensor):
        self.slots[self.local.rank] = tensor
        self.barrier.wait()
        gathered = torch.cat(self.slots)
        self.barrier.wait()  # everyone has read the slots before the next gather fills them
        return gathered

    def run(self, fn, args_of_rank):
        results, errors = [None] * self.world, []

        def target(rank):
            self.local.rank = rank
            try:
                results[rank] = fn(*args_of_rank(rank))
            except BaseException as e:  # noqa: BLE001 (re-raised below)
                errors.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


def _brute_force(memory, memory_labels, queries, k, temperature, num_classes):
    """Float64 weighted kNN (Wu et al. 2018): the k most similar memory rows vote exp(cos / T)."""
    sim = queries.double() @ memory.double().T
    top_sim, top_idx = sim.topk(k, dim=1)
    scores = torch.zeros(queries.shape[0], num_classes, dtype=torch.float64)
    return scores.scatter_add_(1, memory_labels[top_idx], (top_sim / temperature).exp())


@pytest.mark.parametrize("shard_sizes,query_sizes", [((5, 1, 2), (3, 2, 2)), ((1, 1, 1), (2, 0, 1)), ((6, 0), (2, 2))])
def test_shards_smaller_than_k_with_negative_similarities_match_brute_force(shard_sizes, query_sizes, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    k, temperature, num_classes, dim = 4, 0.5, 3, 8
    direction = F.normalize(torch.randn(dim, generator=gen), dim=0)
    # every memory row points away from every query: all similarities are negative
    memory = F.normalize(-direction + 0.3 * torch.randn(sum(shard_sizes), dim, generator=gen), dim=1)
    queries = F.normalize(direction + 0.3 * torch.randn(sum(query_sizes), dim, generator=gen), dim=1)
    assert (queries @ memory.T).max() < 0
    memory_labels = torch.randint(1, num_classes, (memory.shape[0],), generator=gen)  # class 0 has no memory row
    ranks = _ThreadRanks(len(shard_sizes))
    for name in ("get_rank", "get_world_size", "all_gather_tensor"):
        monkeypatch.setattr(comm, name, getattr(ranks, name))
    mem_parts, lab_parts = memory.split(list(shard_sizes)), memory_labels.split(list(shard_sizes))
    query_parts = queries.split(list(query_sizes))
    scores = ranks.run(sharded_knn_predict, lambda r: (mem_parts[r], lab_parts[r], query_parts[r], k, temperature,
                                                       num_classes, 2, 1))  # query_chunk 2, memory_chunk 1
    expected = _brute_force(memory, memory_labels, queries, min(k, memory.shape[0]), temperature, num_classes)
    torch.testing.assert_close(torch.cat(scores).double(), expected, rtol=1e-5, atol=1e-7)
    assert torch.cat(scores)[:, 0].eq(0).all()  # no vote for a class without memory rows
