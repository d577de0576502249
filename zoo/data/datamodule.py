"""The one LightningDataModule: configured data → tokenised examples → batches of any shape, with the
reference log-probs of the reference cache attached when the run uses it."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from transformers import PreTrainedTokenizerBase

from zoo.algorithm import DataSummary
from zoo.config import DataConfig, RunConfig
from zoo.data.collate import Collator
from zoo.data.dataset import LoadReport, arrange, load_examples, split_off
from zoo.data.order import EpochSampler, LengthGroupedBatchSampler
from zoo.data.tokenize import TokenizedExample


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
        #: (epoch, batches already trained on in it) when resuming; see :meth:`resume_at`.
        self.resume_position: tuple[int, int] | None = None
        self.collator = Collator(tokenizer.pad_token_id,
                                 train_on_prompt=config.train_on_prompt and shape == "sft",
                                 pack_capacity=config.max_length if config.padding_free else None,
                                 shared_prefix=config.shared_prefix)

    def setup(self, stage: str | None = None) -> None:
        if self.train_examples:
            return
        c = self.config
        # data.max_examples stops the reading: the rest of the file is neither read nor checked.
        train, report = load_examples(c.train, c.train_split, self.shape, c, self.tokenizer, limit=c.max_examples)
        self.reports = [report]
        if c.eval is not None:
            self.eval_examples, eval_report = load_examples(c.eval, c.eval_split, self.shape, c, self.tokenizer)
            self.reports.append(eval_report)
        else:
            train, self.eval_examples = split_off(train, c.eval_fraction, c.seed)
            report.held_out = len(self.eval_examples)
        # After the split, so that the completions of one pair land in the same split.
        self.train_examples = arrange(train, self.shape, c.max_length, "the training data (data.train)")
        self.eval_examples = arrange(self.eval_examples, self.shape, c.max_length,
                                     "the evaluation data (data.eval, or data.eval_fraction of data.train)")
        if self.shape == "unpaired":
            summary = self.summary()
            report.labelled = (summary.desirable, summary.undesirable)

    def summary(self) -> DataSummary:
        """The training data as :meth:`zoo.Algorithm.check_data` sees it."""
        labels = [e.scores[0] for e in self.train_examples] if self.shape == "unpaired" else []
        desirable = sum(1 for label in labels if label > 0)
        return DataSummary(self.shape, len(self.train_examples), desirable, len(labels) - desirable)

    def attach_reference_cache(self, config: RunConfig, algorithm: Any, policy: nn.Module,
                               trainer: L.Trainer | None = None) -> bool:
        """Make every batch carry the reference's log-probs of its examples, read from the reference
        cache and computed for the examples it lacks (:func:`zoo.refcache.reference_logps_for_run`,
        on ``trainer``'s device and at its precision), so that no reference model runs in training.

        False when the cache does not apply to the run (``train.reference_cache: off``, an online
        algorithm); the run then needs a reference model.
        """
        from zoo.refcache import reference_logps_for_run

        world_size = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
        train = config.train
        batches = None if train.max_steps == -1 else train.max_steps * train.accumulate_grad_batches
        needed = self.examples_for_batches(batches, world_size) + self.eval_examples
        table = reference_logps_for_run(config, algorithm, self.tokenizer, needed, self.collator, policy,
                                        trainer=trainer)
        if table is None:
            return False
        self.collator.reference_logps = table
        return True

    def examples_for_batches(self, batches: int | None, world_size: int = 1) -> list[TokenizedExample]:
        """The training examples that the first ``batches`` global batches of a run draw.

        A run capped by ``train.max_steps`` trains on a prefix of its first epoch's order, which
        depends only on the seed (:mod:`zoo.data.order`), so work per example (the reference
        cache) can be limited to those. All examples when ``batches`` is None or reaches past the
        first epoch, and when several processes share the data without length grouping: Lightning
        then re-deals the sampler's order through its own distributed sampler.
        """
        examples = self.train_examples
        if batches is None:
            return list(examples)
        if self.config.group_by_length:
            sampler = LengthGroupedBatchSampler([e.num_tokens for e in examples], self.batch_size,
                                                seed=self.config.seed, num_replicas=world_size)
            chosen = sampler.global_batches(0)
            if batches >= len(chosen):
                return list(examples)
            keep = {i for batch in chosen[:batches] for i in batch}
        else:
            if world_size != 1 or batches * self.batch_size >= len(examples):
                return list(examples)
            keep = set(EpochSampler(len(examples), seed=self.config.seed).order(0)[: batches * self.batch_size])
        return [e for i, e in enumerate(examples) if i in keep]

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Make the next training loader start in ``epoch`` after its first ``batches_done`` batches."""
        self.resume_position = (epoch, batches_done)

    def train_dataloader(self) -> DataLoader:
        # The position applies to the loader that continues the run, not to later ones.
        (epoch, done), self.resume_position = self.resume_position or (0, 0), None
        if self.config.group_by_length:
            # Sharded here, by process: Lightning cannot shard a batch sampler, so a run that groups
            # by length builds its Trainer with use_distributed_sampler=False (zoo.trainer.build_trainer).
            num_replicas, rank = self._replicas()
            batch_sampler = LengthGroupedBatchSampler([e.num_tokens for e in self.train_examples], self.batch_size,
                                                      seed=self.config.seed, num_replicas=num_replicas, rank=rank)
            batch_sampler.resume_at(epoch, done)
            return DataLoader(self.train_examples, batch_sampler=batch_sampler, collate_fn=self.collator,
                              num_workers=self.config.num_workers, generator=self._loader_generator())
        sampler = EpochSampler(len(self.train_examples), seed=self.config.seed)
        sampler.resume_at(epoch, done * self.batch_size)
        return DataLoader(self.train_examples, batch_size=self.batch_size, sampler=sampler,
                          collate_fn=self.collator, num_workers=self.config.num_workers,
                          generator=self._loader_generator())

    def _replicas(self) -> tuple[int, int]:
        """(processes that share the data, this process's rank among them); (1, 0) without a Trainer."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if not kwargs:
            return 1, 0
        return int(kwargs.get("num_replicas", 1)), int(kwargs.get("rank", 0))

    def _loader_generator(self) -> torch.Generator:
        # Worker seeds come from this generator rather than the global RNG, so starting a loader
        # (each epoch, each validation) leaves the global RNG stream of the training step untouched.
        return torch.Generator().manual_seed(self.config.seed)

    def val_dataloader(self) -> DataLoader | list:
        if not self.eval_examples:
            return []
        num_replicas, rank = self._replicas() if self.config.group_by_length else (1, 0)
        if num_replicas > 1:
            # Lightning shards nothing in such a run (see train_dataloader); this is the sampler it
            # would have put here, so held-out metrics do not depend on data.group_by_length.
            sampler = DistributedSampler(self.eval_examples, num_replicas=num_replicas, rank=rank, shuffle=False)
            return DataLoader(self.eval_examples, batch_size=self.eval_batch_size, sampler=sampler,
                              collate_fn=self.collator, num_workers=self.config.num_workers,
                              generator=self._loader_generator())
        return DataLoader(self.eval_examples, batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.collator, num_workers=self.config.num_workers,
                          generator=self._loader_generator())
