"""The reference log-prob cache: same losses as the reference forward pass, reuse, staleness."""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest
import torch

from zoo.config import load_config
from zoo.data.collate import Collator
from zoo.errors import ConfigError, ZooError
from zoo.models import load_tokenizer
from zoo.refcache import (ReferenceCache, ReferenceTable, cache_root, describe_cache_files, fingerprint,
                          reference_logps_for_run)
from zoo.registry import get_registry
from zoo.run import build_run


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "refcache"


def _setup(config):
    """The run of ``config`` as ``zoo train`` builds it, its reference cache left alone (``off``):
    the tests below fill and read the cache themselves."""
    run = build_run(dataclasses.replace(config, train=dataclasses.replace(config.train, reference_cache="off")))
    return get_registry().algorithm(config.algorithm), run


def _forbid_reference_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the reference model was loaded although the cache covers the data")

    monkeypatch.setattr("zoo.models.load_reference", refuse)


def test_cached_and_uncached_dpo_losses_are_identical(tiny_run, tmp_path, cache_dir):
    config = load_config(raw=tiny_run("dpo", tmp_path / "run"))
    algorithm_cls, run = _setup(config)
    tokenizer, datamodule, module = run.tokenizer, run.datamodule, run.module
    examples = datamodule.train_examples + datamodule.eval_examples
    table = reference_logps_for_run(config, algorithm_cls, tokenizer, examples, datamodule.collator, module.policy)
    assert len(table) == len(examples)

    assert module.reference is not None  # a frozen copy of the starting policy
    with torch.no_grad():  # train the policy away from the reference, so the reference term matters
        for parameter in module.policy.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    uncached_collator = Collator(tokenizer.pad_token_id)
    cached_collator = Collator(tokenizer.pad_token_id)
    cached_collator.reference_logps = table
    for start in range(0, len(examples), 4):
        chunk = examples[start: start + 4]
        uncached, cached = uncached_collator(chunk), cached_collator(chunk)
        assert uncached.reference_logps is None and cached.reference_logps.shape == (len(chunk), 2)
        with torch.no_grad():
            uncached_out = module.compute_loss(uncached)
            cached_out = module.compute_loss(cached)
        # Equal up to float32 rounding: the cache ran the same rows with a different amount of padding.
        torch.testing.assert_close(cached_out.losses, uncached_out.losses, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(cached_out.metrics["reward_margin"], uncached_out.metrics["reward_margin"],
                                   atol=1e-5, rtol=1e-5)


def test_second_run_reads_the_cache_and_never_loads_the_reference(tiny_run, tmp_path, cache_dir, monkeypatch):
    from zoo.tiny import tiny_model, tiny_tokenizer
    from zoo.training_guard import train

    reference_dir = tmp_path / "reference"
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
               seed=7).save_pretrained(reference_dir)
    tokenizer.save_pretrained(reference_dir)
    model = {"reference": str(reference_dir)}
    first = train(load_config(raw=tiny_run("dpo", tmp_path / "first", model=model)))
    assert len(list(cache_dir.glob("*.safetensors"))) == 1

    _forbid_reference_loading(monkeypatch)
    second = train(load_config(raw=tiny_run("dpo", tmp_path / "second", model=model,
                                            train={"reference_cache": "required"})))
    assert second.module.reference is None
    for key in ("val/loss", "val/reward_margin"):
        assert second.metrics_before[key] == pytest.approx(first.metrics_before[key], abs=1e-6)
        assert second.metrics_after[key] == pytest.approx(first.metrics_after[key], abs=1e-5)
    # Without the cache the same run needs the reference model.
    with pytest.raises(AssertionError, match="reference model was loaded"):
        train(load_config(raw=tiny_run("dpo", tmp_path / "third", model=model, train={"reference_cache": "off"})))


def test_required_cache_that_misses_examples_names_the_key(tiny_run, tmp_path, cache_dir):
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", train={"reference_cache": "required"}))
    algorithm_cls, run = _setup(config)
    tokenizer, datamodule, policy = run.tokenizer, run.datamodule, run.module.policy
    with pytest.raises(ConfigError, match="train.reference_cache"):
        reference_logps_for_run(config, algorithm_cls, tokenizer, datamodule.train_examples, datamodule.collator,
                                policy)


def test_changed_reference_weights_are_detected_and_recomputed(tiny_run, tmp_path, cache_dir, caplog):
    from zoo.tiny import tiny_model, tiny_tokenizer

    reference_dir = tmp_path / "reference"
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
               num_key_value_heads=1).save_pretrained(reference_dir)
    tokenizer.save_pretrained(reference_dir)
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", model={"reference": str(reference_dir)}))
    algorithm_cls, run = _setup(config)
    tokenizer, datamodule, policy = run.tokenizer, run.datamodule, run.module.policy
    examples = datamodule.train_examples
    first = reference_logps_for_run(config, algorithm_cls, tokenizer, examples, datamodule.collator, policy)
    before = fingerprint(config, tokenizer)
    path = ReferenceCache.for_run(config, tokenizer).path

    # The checkpoint is overwritten in place with other weights: same path, same slot, new fingerprint.
    tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
               seed=1).save_pretrained(reference_dir)
    weights = next(reference_dir.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert fingerprint(config, tokenizer) != before
    assert ReferenceCache.for_run(config, tokenizer).path == path
    with caplog.at_level(logging.INFO, logger="zoo.refcache"):
        second = reference_logps_for_run(config, algorithm_cls, tokenizer, examples, datamodule.collator, policy)
    assert "different reference (weights changed)" in caplog.text
    some_id = examples[0].id
    assert not torch.allclose(first.rows[some_id], second.rows[some_id])
    assert len(list(cache_dir.glob("*.safetensors"))) == 1  # the stale file was replaced, not kept


def test_corrupted_file_is_recomputed_with_a_warning(tiny_run, tmp_path, cache_dir, caplog):
    config = load_config(raw=tiny_run("dpo", tmp_path / "run"))
    algorithm_cls, run = _setup(config)
    tokenizer, datamodule, policy = run.tokenizer, run.datamodule, run.module.policy
    examples = datamodule.train_examples
    good = reference_logps_for_run(config, algorithm_cls, tokenizer, examples, datamodule.collator, policy)
    path = ReferenceCache.for_run(config, tokenizer).path
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="zoo.refcache"):
        again = reference_logps_for_run(config, algorithm_cls, tokenizer, examples, datamodule.collator, policy)
    assert "unreadable" in caplog.text
    for example in examples:
        torch.testing.assert_close(again.rows[example.id], good.rows[example.id])
    assert len(ReferenceCache.for_run(config, tokenizer).load()) == len(examples)  # rewritten whole


def test_file_round_trip_and_slot_independent_of_algorithm_and_weights(tiny_run, tmp_path, cache_dir):
    config = load_config(raw=tiny_run("dpo", tmp_path / "run"))
    tokenizer = load_tokenizer(config.model)
    cache = ReferenceCache.for_run(config, tokenizer)
    assert cache.path.parent == cache_root() == cache_dir
    rows = {"ab" * 12: torch.tensor([-1.5, -2.25]), "cd" * 12: torch.tensor([-3.0, -4.0, -5.0])}
    cache.save(ReferenceTable(rows))
    loaded = cache.load()
    assert loaded.rows.keys() == rows.keys()
    for key, value in rows.items():
        assert torch.equal(loaded.rows[key], value)
    assert torch.equal(loaded.lookup(["cd" * 12, "ab" * 12], 3), torch.tensor([[-3.0, -4.0, -5.0], [-1.5, -2.25, 0.0]]))
    other_algorithm = load_config(raw=tiny_run("sft", tmp_path / "run"))
    assert ReferenceCache.for_run(other_algorithm, tokenizer).path == cache.path
    longer = load_config(raw=tiny_run("dpo", tmp_path / "run", data={"max_length": 40}))
    assert ReferenceCache.for_run(longer, tokenizer).path != cache.path


def test_cache_command_lists_and_clears(tiny_run, tmp_path, cache_dir, capsys):
    from zoo.cli import main

    config = load_config(raw=tiny_run("dpo", tmp_path / "run"))
    tokenizer = load_tokenizer(config.model)
    ReferenceCache.for_run(config, tokenizer).save(ReferenceTable({"ab" * 12: torch.tensor([-1.0, -2.0])}))
    assert main(["cache", "ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["examples"] for entry in listed] == [1]
    assert listed[0]["reference"] == "tiny" and listed[0]["max_length"] == 48
    assert describe_cache_files()[0]["key"] == listed[0]["key"]
    assert main(["cache", "clear", "--all"]) == 0
    assert not list(cache_dir.glob("*.safetensors"))
    assert main(["cache", "clear", "nonexistent-key"]) == 2


def _example(prompt: int, *responses: int):
    from zoo.data.tokenize import TokenizedExample

    return TokenizedExample(prompt_ids=[5] * prompt, response_ids=[[6] * r for r in responses], scores=None,
                            prompt="p", row=0, source="test")


def test_fill_batches_sort_by_length_and_grow_to_the_token_budget():
    from zoo.refcache import fill_batches

    # longest rows (prompt + longest response): 12, 3, 40, 7, 25, 6 (two rows per example)
    examples = [_example(10, 2, 1), _example(1, 2, 2), _example(30, 10, 5), _example(4, 3, 1), _example(20, 5, 5),
                _example(3, 3, 3)]
    # by length: 1 (3), 5 (6), 3 (7), 0 (12), 4 (25), 2 (40); area = rows so far × this row
    assert fill_batches(examples, batch_size=1, tokens=60) == [[1, 5, 3], [0], [4], [2]]
    assert fill_batches(examples, batch_size=2, tokens=60) == [[1, 5, 3], [0, 4], [2]]  # at least 2 per batch
    assert fill_batches(examples, batch_size=1, tokens=10**6) == [[1, 5, 3, 0, 4, 2]]


def test_the_fill_reports_progress_and_returns_tensors_autograd_can_use(tiny_run, tmp_path):
    from zoo.refcache import compute_reference_logps

    config = load_config(raw=tiny_run("dpo", tmp_path / "run"))
    _, run = _setup(config)
    datamodule, policy = run.datamodule, run.module.policy
    examples = datamodule.train_examples
    done: list[int] = []
    rows = compute_reference_logps(policy, examples, datamodule.collator, 2, progress=done.append, tokens=64)
    assert sum(done) == len(examples) and len(done) > 1
    with torch.no_grad():
        for example in examples[:3]:  # each example alone, unpadded: the same numbers
            batch = datamodule.collator.pad([example])
            from zoo.forward.logprobs import sequence_logprobs

            alone = sequence_logprobs(policy, batch.input_ids, batch.attention_mask, batch.loss_mask,
                                      batch.group_size).sum[0]
            torch.testing.assert_close(rows[example.id], alone, atol=1e-5, rtol=1e-5)
    weight = torch.ones(1, requires_grad=True)
    (weight * rows[examples[0].id]).sum().backward()  # an inference-mode tensor would refuse this


def test_cache_ls_keeps_paths_and_dates_whole_in_80_columns(tiny_run, tmp_path, cache_dir, capsys, monkeypatch):
    from zoo.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    reference = tmp_path / ("a-reference-model-directory-with-a-long-name-" * 3)
    reference.mkdir()
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", model={"reference": str(reference)}))
    tokenizer = load_tokenizer(config.model)
    ReferenceCache.for_run(config, tokenizer).save(ReferenceTable({"ab" * 12: torch.tensor([-1.0, -2.0])}))
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    entry = describe_cache_files()[0]
    assert f"reference: {reference.resolve()}" in out  # the whole path, on one line
    assert f"created: {entry['created']}" in out and len(entry["created"]) >= 19
    assert f"{entry['key'][:12]}  1 examples" in out and "…" not in out


class _TrainedIds:
    """Records the example ids of every training batch (a Lightning callback)."""

    def __init__(self):
        import lightning as L

        ids = self.ids = []

        class Recorder(L.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                ids.extend(batch.example_ids)

        self.callback = Recorder()


@pytest.mark.parametrize("data, train, trained", [
    ({}, {"max_steps": 2}, 8),                                    # 2 batches of 4 out of 12
    ({"group_by_length": True}, {"max_steps": 2}, 8),             # length-grouped batches
    ({}, {"max_steps": 1, "accumulate_grad_batches": 2}, 8),      # one step of two batches
    ({}, {"max_steps": 5}, 12),                                   # past the epoch: every example
])
def test_the_fill_computes_only_the_examples_training_draws(tiny_run, tmp_path, cache_dir, data, train, trained):
    """12 training and 4 held-out examples, batches of 4: a run of ``max_steps`` × accumulation
    batches draws ``4 × batches`` examples (all 12 once it reaches past the first epoch); the
    cache must hold exactly those and the held-out ones, and every trained batch must find its rows."""
    from zoo.run import fit

    recorder = _TrainedIds()
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", data=data, train=train))
    run = build_run(config, callbacks=[recorder.callback])
    assert run.module.reference is None  # the cache covers training: no reference model
    fit(run)
    cached = set(ReferenceCache.for_run(config, run.tokenizer).load().rows)
    eval_ids = {e.id for e in run.datamodule.eval_examples}
    train_ids = {e.id for e in run.datamodule.train_examples}
    assert len(train_ids) == 12 and len(eval_ids) == 4
    assert eval_ids <= cached
    assert cached - eval_ids == set(recorder.ids) & train_ids
    assert len(cached - eval_ids) == trained


def test_a_batch_example_without_reference_row_is_named_not_a_bare_key_error():
    table = ReferenceTable({"ab" * 12: torch.tensor([-1.0, -2.0])})
    assert table.lookup(["ab" * 12], 2).tolist() == [[-1.0, -2.0]]
    with pytest.raises(ZooError, match=r"no row for 1 example\(s\).*'cd.*holds 1.*reference_cache: off"):
        table.lookup(["ab" * 12, "cd" * 12], 2)
