"""Training-set orders that a resumed run can reproduce exactly.

The order of an epoch depends only on ``(seed, epoch)``, never on how many times a sampler was
iterated before, so a run restarted from a checkpoint rebuilds the same order and skips the
batches it had already trained on (:meth:`resume_at`). Lightning sets the epoch through
``dataloader.sampler.set_epoch`` / ``dataloader.batch_sampler.sampler.set_epoch``; both samplers
here sit where it looks.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


class EpochSampler(Sampler[int]):
    """A permutation of ``range(size)`` (or the identity when ``shuffle`` is False) per epoch."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, items to skip in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=generator).tolist()

    def resume_at(self, epoch: int, items_done: int) -> None:
        """Start at ``epoch`` and leave out its first ``items_done`` indices (once)."""
        self.epoch = epoch
        self._skip = (epoch, items_done)

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = (self._skip[1] if self._skip and self._skip[0] == self.epoch else 0), None
        return iter(self.order(self.epoch)[skip:])

    def __len__(self) -> int:
        # The full epoch, also when resuming: Lightning counts the skipped batches as done.
        return self.size


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar-length examples, in random order (less padding per batch).

    The epoch's permutation (from :class:`EpochSampler`) is cut into chunks of
    ``batch_size * 50``, each chunk sorted by length and cut into batches; the batches are then
    shuffled. Deterministic for a given seed and epoch.

    With ``num_replicas`` processes (DDP), the sampler of process ``rank`` yields that process's
    share of each global step. The global batches are the ones a single process would make at
    ``batch_size * num_replicas`` (:meth:`global_batches`); every process computes the same list
    from the seed and the epoch, with no communication. Each global batch is sorted by length and
    dealt out in turn: process ``rank`` gets ``global_batch[rank::num_replicas]``, so all
    processes see similar lengths and nearly the same token count in a step. The last, incomplete
    global batch is dropped with ``drop_last``; otherwise it is filled up by repeating its own
    examples from its start (as torch's ``DistributedSampler`` pads), so that every process yields
    the same number of batches of ``batch_size`` examples.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} of {num_replicas} replicas: need num_replicas >= 1 and "
                             f"0 <= rank < num_replicas")
        self.lengths, self.batch_size, self.seed, self.drop_last = lengths, batch_size, seed, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.sampler = EpochSampler(len(lengths), seed)
        self._skip: tuple[int, int] | None = None  # (epoch, batches to skip in it)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _grouped(self, epoch: int, batch_size: int) -> list[list[int]]:
        order = self.sampler.order(epoch)
        chunk = batch_size * 50
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start: start + chunk], key=lambda i: self.lengths[i])
            batches += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == batch_size]
        random.Random(_epoch_seed(self.seed, epoch)).shuffle(batches)
        return batches

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches across all processes: ``batch_size * num_replicas`` examples each."""
        return self._grouped(epoch, self.batch_size * self.num_replicas)

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch``, one per global step."""
        if self.num_replicas == 1:
            return self._grouped(epoch, self.batch_size)
        size = self.batch_size * self.num_replicas
        batches = []
        for batch in self.global_batches(epoch):
            if len(batch) < size:  # only the last one (drop_last removed it already)
                batch = (batch * -(-size // len(batch)))[:size]
            batch = sorted(batch, key=lambda i: self.lengths[i])
            batches.append(batch[self.rank::self.num_replicas])
        return batches

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Start at ``epoch`` and leave out its first ``batches_done`` batches (global steps), once."""
        self.sampler.set_epoch(epoch)
        self._skip = (epoch, batches_done)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.sampler.epoch
        skip, self._skip = (self._skip[1] if self._skip and self._skip[0] == epoch else 0), None
        return iter(self.batches(epoch)[skip:])

    def __len__(self) -> int:
        # Per process: the number of global steps in an epoch.
        n, size = len(self.lengths), self.batch_size * self.num_replicas
        return n // size if self.drop_last else (n + size - 1) // size
