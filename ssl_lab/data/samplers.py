"""Index samplers: an infinite, resumable training stream and an even inference split."""

import torch
from torch.utils.data import Sampler

from ssl_lab.utils import comm


class TrainingSampler(Sampler):
    """Infinite stream of indices, reshuffled every epoch with `seed + epoch`, sharded by rank.

    The global stream is a pure function of (size, seed), so `start` (the number
    of indices this rank already consumed) resumes exactly mid-epoch. With
    `with_positions`, it yields (index, position in the global stream) pairs.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, start: int = 0, with_positions: bool = False):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty dataset, got size {size}")
        self._size = size
        self._shuffle = shuffle
        self._seed = seed
        self._start = start
        self._with_positions = with_positions
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def _epoch_indices(self, epoch: int):
        if not self._shuffle:
            return torch.arange(self._size)
        generator = torch.Generator().manual_seed(self._seed + epoch)
        return torch.randperm(self._size, generator=generator)

    def __iter__(self):
        global_start = self._start * self._world_size + self._rank
        epoch, offset = divmod(global_start, self._size)
        while True:
            indices = self._epoch_indices(epoch).tolist()
            # Position in the global stream p belongs to rank p % world_size.
            for position in range(offset, self._size):
                stream_position = epoch * self._size + position
                if stream_position % self._world_size == self._rank:
                    yield (indices[position], stream_position) if self._with_positions else indices[position]
            epoch, offset = epoch + 1, 0


class InferenceSampler(Sampler):
    """Each rank gets a contiguous, disjoint slice of [0, size) (the slices cover everything)."""

    def __init__(self, size: int):
        per_rank = (size - 1) // comm.get_world_size() + 1
        begin = per_rank * comm.get_rank()
        self._indices = range(begin, min(begin + per_rank, size))

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)
