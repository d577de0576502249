"""docs/python-api.md's example runs as written (from the repository root, as the page assumes)."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_example_trains_and_reports(tmp_path, monkeypatch, capsys):
    page = (ROOT / "docs" / "python-api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    # Same example, its run directory moved out of the checkout.
    code = code.replace("output_dir=runs/api-dpo", f"output_dir={tmp_path / 'api-dpo'}")
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    result, run = namespace["result"], namespace["run"]
    summary = json.loads((tmp_path / "api-dpo" / "metrics.json").read_text())
    assert summary["steps"] == 4 and summary["after"] == result.metrics_after
    printed = capsys.readouterr().out
    assert f"{result.metrics_before['val/loss']} -> {result.metrics_after['val/loss']}" in printed
    assert (tmp_path / "api-dpo" / "model" / "README.md").is_file()
    assert namespace["policy"] is run.module.policy
