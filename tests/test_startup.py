"""Commands start fast: the CLI, plugin discovery and the light commands import none of the heavy
libraries (torch, Lightning, transformers, peft) that cost seconds at start-up; the training
commands import them when they run. Each check runs in a fresh interpreter, where ``sys.modules`` says what
was imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "transformers", "peft", "datasets", "scipy")


def _imported_after(code: str, **env_vars: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(set(m.split('.')[0] for m in sys.modules))))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env_vars}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=300, check=True).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m in HEAVY]


@pytest.mark.parametrize("code", [
    "import zoo.cli",
    "from zoo.registry import get_registry; get_registry()",
    "import zoo.cli; zoo.cli.build_parser()",
    "import zoo.cli, contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): zoo.cli.main(['plugins'])",
    "import zoo.cli, contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): zoo.cli.main(['cache', 'ls'])",
], ids=["import-cli", "plugin-discovery", "parser", "zoo-plugins", "zoo-cache-ls"])
def test_light_commands_import_no_heavy_library(code):
    assert _imported_after(code) == []


def test_listing_cache_files_imports_no_heavy_library(tmp_path):
    """`zoo cache ls` reads each file's header and one shape, never a tensor: no torch even with files there."""
    import torch
    from safetensors.torch import save_file

    (tmp_path / "refcache").mkdir()
    metadata = {"fingerprint": json.dumps({"reference": "tiny", "max_length": 48, "precision": "32-true"}),
                "created": "2026-01-01T00:00:00"}
    save_file({"example_ids": torch.zeros(3, 16, dtype=torch.uint8), "logps": torch.zeros(3, 2),
               "counts": torch.ones(3, dtype=torch.int64)}, str(tmp_path / "refcache" / "slot.safetensors"), metadata)
    code = ("import zoo.cli, contextlib, io\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): zoo.cli.main(['cache', 'ls', '--json'])\n"
            "assert json.loads(out.getvalue())[0]['examples'] == 3, out.getvalue()")
    assert _imported_after(f"import json\n{code}", ZOO_CACHE_DIR=str(tmp_path)) == []


def test_quieting_waits_for_the_library_to_be_imported():
    """The CLI's quieting imports nothing, and still takes effect when a command imports Lightning."""
    code = ("import logging, zoo.quiet\nzoo.quiet.quiet_libraries()\n"
            "assert 'lightning' not in __import__('sys').modules\n"
            "import lightning\n"
            "assert logging.getLogger('lightning.pytorch').level == logging.WARNING, "
            "logging.getLogger('lightning.pytorch').level")
    assert "lightning" in _imported_after(code)  # the asserts inside `code` ran
