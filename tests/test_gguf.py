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
