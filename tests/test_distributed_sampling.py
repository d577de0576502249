"""Length-grouped batches shared out among several processes (DDP), and the loaders that use them.

Every process computes the epoch's global batches (those one process would make at
``batch_size × processes``) from the seed and the epoch alone; process ``r`` takes
``sorted(global_batch)[r::processes]``. The end-to-end check, two processes matching one at the
same global batch, is in ``tests/test_ddp.py``.
"""
from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from torch.utils.data import DistributedSampler

from zoo.config import DataConfig
from zoo.data.datamodule import AlignmentDataModule
from zoo.data.order import LengthGroupedBatchSampler, _epoch_seed


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 300) for _ in range(n)]


def _ranks(lengths: list[int], batch_size: int, replicas: int, epoch: int = 0, **kwargs) -> list[list[list[int]]]:
    out = []
    for rank in range(replicas):
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=3, num_replicas=replicas, rank=rank, **kwargs)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        out.append(batches)
    return out


def _reference_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, drop_last: bool) -> list[list[int]]:
    """The one-process algorithm, written out: sort chunks of 50 batches by length, cut, shuffle."""
    import torch

    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch))).tolist()
    batches = []
    for start in range(0, len(order), batch_size * 50):
        part = sorted(order[start: start + batch_size * 50], key=lambda i: lengths[i])
        batches += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
    batches = [b for b in batches if len(b) == batch_size or not drop_last]
    random.Random(_epoch_seed(seed, epoch)).shuffle(batches)
    return batches


def test_one_process_keeps_its_batches():
    # One chunk, distinct lengths: the batches are the sorted indices cut in threes, shuffled by the seed.
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=3, seed=1)
    assert list(sampler) == [[7, 0, 8], [1, 5, 3], [9, 10], [4, 6, 2]]
    assert len(sampler) == 4
    for n, batch_size, seed, epoch, drop_last in [(400, 3, 0, 0, False), (401, 4, 2, 1, True), (97, 1, 5, 2, False),
                                                  (1000, 7, 1, 3, False)]:
        lengths = _lengths(n, seed)
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
        assert list(sampler) == _reference_batches(lengths, batch_size, seed, epoch, drop_last)
        assert sampler.global_batches(epoch) == sampler.batches(epoch)


@pytest.mark.parametrize("replicas", [2, 3])
def test_each_step_deals_out_the_one_process_batch_of_the_global_size(replicas):
    lengths = _lengths(24 * replicas * 5)  # divides evenly: no padding
    batch_size = 4
    single = LengthGroupedBatchSampler(lengths, batch_size * replicas, seed=3)
    single.set_epoch(1)
    ranks = _ranks(lengths, batch_size, replicas, epoch=1)
    assert len({len(batches) for batches in ranks}) == 1
    assert len(ranks[0]) == len(single) == len(lengths) // (batch_size * replicas)
    for step, global_batch in enumerate(single):
        shares = [batches[step] for batches in ranks]
        assert all(len(share) == batch_size for share in shares)
        assert sorted(i for share in shares for i in share) == sorted(global_batch)
        # Similar lengths: each share spans the global batch's range, dealt out from its sorted order.
        by_length = sorted(global_batch, key=lambda i: lengths[i])
        assert shares == [by_length[r::replicas] for r in range(replicas)]
    seen = Counter(i for batches in ranks for batch in batches for i in batch)
    assert sorted(seen) == list(range(len(lengths))) and set(seen.values()) == {1}


def test_shares_have_similar_lengths():
    lengths = _lengths(2000, seed=7)
    ranks = _ranks(lengths, batch_size=4, replicas=2)
    spreads = [max(lengths[i] for i in a + b) - min(lengths[i] for i in a + b) for a, b in zip(*ranks)]
    assert max(spreads) < 50  # of lengths 1..300: chunks of 400 sorted, cut in eights
    for a, b in zip(*ranks):  # dealt out alternately: neither process gets all the long ones
        assert abs(sum(lengths[i] for i in a) - sum(lengths[i] for i in b)) <= max(lengths[i] for i in a + b)


@pytest.mark.parametrize(("n", "batch_size", "replicas"), [(23, 3, 2), (25, 2, 4), (7, 2, 3), (1, 2, 2)])
def test_the_last_global_batch_is_padded_with_its_own_examples(n, batch_size, replicas):
    lengths = _lengths(n, seed=n)
    ranks = _ranks(lengths, batch_size, replicas)
    size = batch_size * replicas
    steps = -(-n // size)
    assert [len(batches) for batches in ranks] == [steps] * replicas
    assert all(len(batch) == batch_size for batches in ranks for batch in batches)
    seen = Counter(i for batches in ranks for batch in batches for i in batch)
    assert sorted(seen) == list(range(n))  # every example, some twice
    assert sum(seen.values()) == steps * size
    single = LengthGroupedBatchSampler(lengths, size, seed=3)
    last = next(b for b in single if len(b) < size)
    padded = [i for batches in ranks for batch in batches for i in batch if seen[i] > 1]
    assert set(padded) <= set(last)  # the repeats come from the incomplete batch itself


def test_drop_last_drops_the_incomplete_global_batch_on_every_process():
    lengths = _lengths(23, seed=1)
    ranks = _ranks(lengths, batch_size=3, replicas=2, drop_last=True)
    assert [len(batches) for batches in ranks] == [3, 3]
    seen = Counter(i for batches in ranks for batch in batches for i in batch)
    assert len(seen) == 18 and set(seen.values()) == {1}


@pytest.mark.parametrize("n", [40, 41])
def test_each_process_resumes_mid_epoch(n):
    lengths = _lengths(n, seed=2)
    for rank in range(2):
        full = LengthGroupedBatchSampler(lengths, 3, seed=3, num_replicas=2, rank=rank)
        full.set_epoch(2)
        expected = list(full)
        resumed = LengthGroupedBatchSampler(lengths, 3, seed=3, num_replicas=2, rank=rank)
        resumed.resume_at(2, 4)  # global steps done
        assert list(resumed) == expected[4:]
        assert len(resumed) == len(expected) == 7
        assert list(resumed) == expected  # the skip applies once
        resumed.set_epoch(3)
        assert list(resumed) != expected


def test_replicas_and_rank_are_checked():
    with pytest.raises(ValueError, match="rank 2 of 2"):
        LengthGroupedBatchSampler([1, 2, 3], 1, num_replicas=2, rank=2)
    with pytest.raises(ValueError):
        LengthGroupedBatchSampler([1, 2, 3], 1, num_replicas=0)


def _datamodule(group_by_length: bool, trainer=None) -> AlignmentDataModule:
    config = DataConfig(train="builtin:tiny_prefs", group_by_length=group_by_length)
    module = AlignmentDataModule(config, SimpleNamespace(pad_token_id=0), "pairwise", batch_size=2, eval_batch_size=2)
    module.train_examples = [SimpleNamespace(num_tokens=n) for n in _lengths(10)]
    module.eval_examples = [SimpleNamespace(num_tokens=n) for n in _lengths(5)]
    module.trainer = trainer
    return module


def test_the_datamodule_shards_length_grouped_loaders_by_process():
    trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 1})
    grouped = _datamodule(True, trainer)
    batch_sampler = grouped.train_dataloader().batch_sampler
    assert (batch_sampler.num_replicas, batch_sampler.rank, len(batch_sampler)) == (2, 1, 3)
    val = grouped.val_dataloader().sampler  # what Lightning gives the other runs' held-out loader
    assert isinstance(val, DistributedSampler) and (val.num_replicas, val.rank, val.shuffle) == (2, 1, False)
    assert list(val) == [1, 3, 0]  # 5 examples padded to 6, as DistributedSampler does

    alone = _datamodule(True, SimpleNamespace(distributed_sampler_kwargs=None)).train_dataloader().batch_sampler
    assert (alone.num_replicas, alone.rank) == (1, 0)
    assert _datamodule(True).train_dataloader().batch_sampler.num_replicas == 1  # no trainer attached
    plain = _datamodule(False, trainer)  # Lightning shards these itself
    assert not isinstance(plain.val_dataloader().sampler, DistributedSampler)
    assert plain.train_dataloader().batch_sampler.batch_size == 2
