"""The one LightningDataModule: configured data → tokenised examples → batches of any shape."""
from __future__ import annotations

import random
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import PreTrainedTokenizerBase

from zoo.config import DataConfig
from zoo.data.collate import Collator
from zoo.data.dataset import LoadReport, load_examples, split_off
from zoo.data.tokenize import TokenizedExample


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar-length examples, in random order (less padding per batch).

    Indices are shuffled, cut into chunks of ``batch_size * 50``, each chunk sorted by length and
    cut into batches; the batches are then shuffled. Deterministic for a given seed and epoch.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, drop_last: bool = False):
        self.lengths, self.batch_size, self.seed, self.drop_last = lengths, batch_size, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 10007 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        chunk = self.batch_size * 50
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start: start + chunk], key=lambda i: self.lengths[i])
            batches += [part[i: i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size


class AlignmentDataModule(L.LightningDataModule):
    def __init__(self, config: DataConfig, tokenizer: PreTrainedTokenizerBase, shape: str, batch_size: int,
                 eval_batch_size: int | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.shape = shape
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.train_examples: list[TokenizedExample] = []
        self.eval_examples: list[TokenizedExample] = []
        self.reports: list[LoadReport] = []
        self.collator = Collator(tokenizer.pad_token_id,
                                 train_on_prompt=config.train_on_prompt and shape == "sft")

    def setup(self, stage: str | None = None) -> None:
        if self.train_examples:
            return
        c = self.config
        train, report = load_examples(c.train, c.train_split, self.shape, c, self.tokenizer)
        self.reports = [report]
        if c.max_examples is not None:
            train = train[: c.max_examples]
        if c.eval is not None:
            self.eval_examples, eval_report = load_examples(c.eval, c.eval_split, self.shape, c, self.tokenizer)
            self.reports.append(eval_report)
        else:
            train, self.eval_examples = split_off(train, c.eval_fraction, c.seed)
        self.train_examples = train

    def train_dataloader(self) -> DataLoader:
        if self.config.group_by_length:
            sampler = LengthGroupedBatchSampler([e.num_tokens for e in self.train_examples], self.batch_size,
                                                seed=self.config.seed)
            return DataLoader(self.train_examples, batch_sampler=sampler, collate_fn=self.collator,
                              num_workers=self.config.num_workers)
        generator = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(self.train_examples, batch_size=self.batch_size, shuffle=True, generator=generator,
                          collate_fn=self.collator, num_workers=self.config.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if not self.eval_examples:
            return []
        return DataLoader(self.eval_examples, batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.collator, num_workers=self.config.num_workers)
