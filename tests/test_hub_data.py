"""Hub data set names: ``OWNER/NAME`` and ``OWNER/NAME/DIR`` (a folder of the repository)."""
from __future__ import annotations

import pytest

from zoo.data.sources import read_rows
from zoo.errors import ConfigError


@pytest.fixture
def calls(monkeypatch):
    import datasets

    seen = []

    def fake_load_dataset(name, split, **kwargs):
        seen.append((name, split, kwargs))
        return [{"prompt": "p", "chosen": "a", "rejected": "b"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return seen


def test_a_folder_of_a_hub_repository_is_its_data_dir(calls):
    rows = read_rows("Anthropic/hh-rlhf/harmless-base", split="test")
    assert calls == [("Anthropic/hh-rlhf", "test", {"data_dir": "harmless-base"})]
    assert rows.source == "Anthropic/hh-rlhf/harmless-base[test]" and len(rows.rows) == 1


def test_a_plain_hub_name_has_no_data_dir(calls):
    read_rows("trl-lib/ultrafeedback_binarized", split="train")
    assert calls == [("trl-lib/ultrafeedback_binarized", "train", {})]


def test_an_unreachable_hub_data_set_is_a_config_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match=r"could not load data set 'Anthropic/hh-rlhf/harmless-base'.*local file"):
        read_rows("Anthropic/hh-rlhf/harmless-base", split="train")


def test_max_examples_streams_a_hub_data_set(monkeypatch):
    import datasets

    from zoo.data.sources import stream_rows

    calls = []

    def fake_load_dataset(name, split, **kwargs):
        calls.append((name, split, kwargs))
        return iter([{"prompt": "p", "chosen": "a", "rejected": "b"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    stream = stream_rows("trl-lib/ultrafeedback_binarized", limit=10)
    assert calls == [("trl-lib/ultrafeedback_binarized", "train", {"streaming": True})]
    assert stream.total is None and [row for _, row in stream] == [{"prompt": "p", "chosen": "a", "rejected": "b"}]
