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


def _vote_shares(scores):
    """Each query's class scores as shares of its whole vote (Q, C), float64: the same whatever
    constant the weights of one query are scaled by, e.g. 1 / exp(cos_max / T)."""
    scores = scores.double()
    return scores / scores.sum(dim=1, keepdim=True)


def _use_thread_ranks(world, monkeypatch):
    ranks = _ThreadRanks(world)
    for name in ("get_rank", "get_world_size", "all_gather_tensor"):
        monkeypatch.setattr(comm, name, getattr(ranks, name))
    return ranks


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
    ranks = _use_thread_ranks(len(shard_sizes), monkeypatch)
    mem_parts, lab_parts = memory.split(list(shard_sizes)), memory_labels.split(list(shard_sizes))
    query_parts = queries.split(list(query_sizes))
    scores = ranks.run(
        sharded_knn_predict, lambda r: (mem_parts[r], lab_parts[r], query_parts[r], k, temperature, num_classes, 2, 1)
    )  # query_chunk 2, memory_chunk 1
    expected = _brute_force(memory, memory_labels, queries, min(k, memory.shape[0]), temperature, num_classes)
    torch.testing.assert_close(_vote_shares(torch.cat(scores)), _vote_shares(expected), rtol=1e-5, atol=1e-7)
    assert torch.cat(scores)[:, 0].eq(0).all()  # no vote for a class without memory rows


def _near_neighbours(seed=0, spread=0.03, num_memory=60, num_queries=12, dim=16, num_classes=4):
    """Memory rows and queries around 8 centres, each coordinate off by N(0, spread^2), labels at
    random: the nearest similarities are about 0.98 (exp(cos / T) overflows float32 for T < 0.0113)
    and a query's neighbours differ by about 0.01, so at T = 0.005 several of them carry weight."""
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(8, dim, generator=gen), dim=1)
    memory = F.normalize(
        centres[torch.randint(8, (num_memory,), generator=gen)] + spread * torch.randn(num_memory, dim, generator=gen), dim=1
    )
    labels = torch.randint(num_classes, (num_memory,), generator=gen)
    queries = F.normalize(
        centres[torch.randint(8, (num_queries,), generator=gen)] + spread * torch.randn(num_queries, dim, generator=gen), dim=1
    )
    return memory, labels, queries


def _both_paths(memory, labels, queries, k, temperature, num_classes, monkeypatch):
    """Scores of `sharded_knn_predict` on one process and on 2 thread ranks (uneven shards)."""
    single = sharded_knn_predict(memory, labels, queries, k, temperature, num_classes, 5, 16)
    ranks = _use_thread_ranks(2, monkeypatch)
    mem, lab, que = memory.split([37, 23]), labels.split([37, 23]), queries.split([5, 7])
    sharded = ranks.run(sharded_knn_predict, lambda r: (mem[r], lab[r], que[r], k, temperature, num_classes, 4, 16))
    return single, torch.cat(sharded)


@pytest.mark.parametrize("temperature", [0.07, 0.005])
def test_votes_at_small_temperatures_match_float64_brute_force(temperature, monkeypatch):
    k, num_classes = 10, 4
    memory, labels, queries = _near_neighbours()
    assert (queries @ memory.T).max() > 0.99  # exp(0.99 / 0.005) = 1e86 > float32's 3.4e38
    expected = _brute_force(memory, labels, queries, k, temperature, num_classes)
    assert expected.isfinite().all()  # float64 holds it
    for scores in _both_paths(memory, labels, queries, k, temperature, num_classes, monkeypatch):
        assert scores.isfinite().all()
        torch.testing.assert_close(_vote_shares(scores), _vote_shares(expected), rtol=1e-4, atol=1e-7)
        assert torch.equal(scores.argmax(dim=1), expected.argmax(dim=1))


def test_votes_at_the_lowest_accepted_temperature_are_the_nearest_neighbours_class(monkeypatch):
    """As T -> 0 every weight exp((cos - cos_max) / T) but the nearest one's goes to 0: 1-NN."""
    from ssl_lab.config.checks import MIN_KNN_TEMPERATURE

    k, num_classes = 10, 4
    memory, labels, queries = _near_neighbours(seed=2, spread=0.1)
    sim = queries.double() @ memory.double().T
    top2 = sim.topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1] > 1e-3).all()  # one nearest row per query, in float32 too
    nearest_class = F.one_hot(labels[sim.argmax(dim=1)], num_classes).double()
    for scores in _both_paths(memory, labels, queries, k, MIN_KNN_TEMPERATURE, num_classes, monkeypatch):
        assert torch.equal(_vote_shares(scores), nearest_class)
