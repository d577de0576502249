"""Input that used to be taken silently the wrong way, or refused with a misleading message."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from zoo import cli
from zoo.cli import build_parser
from zoo.config import load_config
from zoo.config.yaml_dialect import load as load_yaml
from zoo.data.sources import read_rows
from zoo.errors import ConfigError
from zoo.training_guard import train


def test_a_data_folder_with_two_files_for_a_split_is_refused_naming_them(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"prompt": "new", "completion": "x"}\n')
    (tmp_path / "train-old.jsonl").write_text('{"prompt": "old", "completion": "x"}\n')
    with pytest.raises(ConfigError, match=r"has 2 files for split 'train' \(train-old.jsonl, train.jsonl\)"):
        read_rows(str(tmp_path))
    (tmp_path / "train-old.jsonl").unlink()
    assert read_rows(str(tmp_path)).rows[0][1]["prompt"] == "new"


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes("\ufeffprompt,chosen,rejected\nhi,good,bad\n".encode("utf-8"))
    row = read_rows(str(path)).rows[0][1]
    assert row == {"prompt": "hi", "chosen": "good", "rejected": "bad"}


def test_home_is_expanded_in_every_path_key(tmp_path, monkeypatch, tiny_run):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    config = load_config(raw=tiny_run("sft", "~/run", steps=1, data={"train": "~/x.jsonl", "eval": "~/x.jsonl"}))
    assert config.data.train == str(tmp_path / "x.jsonl") and config.output_dir == str(tmp_path / "run")
    assert read_rows("~/x.jsonl").rows[0][1]["prompt"] == "p"


def test_a_yaml_merge_key_followed_by_an_override_is_not_a_duplicate():
    text = "base: &b\n  beta: 0.1\n  lr: 1\nrun:\n  <<: *b\n  beta: 0.5\n"
    assert load_yaml(text)["run"] == {"beta": 0.5, "lr": 1}
    with pytest.raises(Exception, match="duplicated key 'beta'"):
        load_yaml("run:\n  beta: 0.1\n  beta: 0.5\n")


def test_overrides_may_follow_a_flag():
    args = cli._parse(build_parser(), ["train", "c.yaml", "a=1", "--overwrite", "output_dir=X"])
    assert args.overrides == ["a=1", "output_dir=X"] and args.overwrite
    with pytest.raises(SystemExit):
        cli._parse(build_parser(), ["train", "c.yaml", "--overwrite", "--bogus"])


def test_a_malformed_progress_interval_is_refused_when_the_command_starts(monkeypatch, capsys):
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "abc")
    assert cli.main(["eval", "--list"]) == 2
    assert "ZOO_PROGRESS_INTERVAL = 'abc'" in capsys.readouterr().err


def _run_with_checkpoints(tmp_path, tiny_run) -> tuple[Path, dict]:
    run = tmp_path / "run"
    raw = tiny_run("sft", run, steps=3, train={"checkpoint_every_n_steps": 1})
    train(load_config(raw=raw))
    return run, raw


def test_resume_checks_that_refuse_instead_of_silently_doing_something_else(tmp_path, tiny_run):
    run, raw = _run_with_checkpoints(tmp_path, tiny_run)
    with pytest.raises(ConfigError, match="at step 3 already, so nothing would be trained"):
        train(load_config(raw=raw, overrides=["train.max_steps=2"]), resume=True)
    with pytest.raises(ConfigError, match="--resume and --overwrite contradict each other"):
        train(load_config(raw=raw), resume=True, overwrite=True)
    for name in ("config.yaml", "metrics.json"):
        copy = tmp_path / f"without-{name}"
        shutil.copytree(run, copy)
        (copy / name).unlink()
        changed = {**raw, "output_dir": str(copy)}
        with pytest.raises(ConfigError, match=f"its {name} is missing"):
            train(load_config(raw=changed, overrides=["train.max_steps=5"]), resume=True)


def test_resume_auto_gives_way_to_an_explicit_overwrite(tmp_path, tiny_run):
    run, raw = _run_with_checkpoints(tmp_path, tiny_run)
    result = train(load_config(raw={**raw, "resume": "auto"}), overwrite=True)
    assert result.resumed_from is None and result.output_dir == run


def test_warmup_longer_than_the_run_and_no_held_out_rows_are_warned_about(tmp_path, tiny_run, caplog):
    one_row = tmp_path / "one.jsonl"
    one_row.write_text('{"prompt": "p", "completion": "c"}\n')
    with caplog.at_level(logging.WARNING, logger="zoo.run"):
        train(load_config(raw=tiny_run("sft", tmp_path / "run", steps=2, data={"train": str(one_row)},
                                       train={"warmup_steps": 8})))
    text = caplog.text
    assert "train.warmup_steps = 8 is more than train.max_steps = 2" in text and "25%" in text
    assert "no held-out examples (1 training example(s)" in text
