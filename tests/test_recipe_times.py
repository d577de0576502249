"""benchmarks/recipe_times.py: the header line it writes, and its check against a recipe's header."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_times.py"


@pytest.fixture(scope="module")
def recipe_times():
    spec = importlib.util.spec_from_file_location("recipe_times", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(cpu_s: float, peak_rss_gb: float) -> dict:
    return {"recipe": "dpo", "returncode": 0, "cpu_s": cpu_s, "wall_s": 100.0, "peak_rss_gb": peak_rss_gb,
            "load_before": 0.4, "load_after": 0.5, "steps": 8, "log": "dpo.log"}


def test_the_header_line_states_what_the_check_reads(recipe_times, tmp_path):
    from tests.test_configs import MEASURED

    line = recipe_times.header_line(_result(212.0, 1.63))
    assert MEASURED.match(line.rstrip("\n")), line  # the line the configs test requires of every recipe
    path = tmp_path / "recipe.yaml"
    path.write_text("# zoo train recipe.yaml\n" + line + "algorithm: dpo\n")
    assert recipe_times.header_figures(path) == {"cpu_s": pytest.approx(3.5 * 60), "peak_rss_gb": 1.6}


def test_an_older_header_states_no_memory(recipe_times, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("# Measured: 3.5 min CPU time, 1.9 min wall on 2 CPU cores (load 2.4), 8 optimiser steps, "
                    "2026-12-02 (python benchmarks/recipe_times.py).\nalgorithm: dpo\n")
    stated = recipe_times.header_figures(path)
    assert stated == {"cpu_s": pytest.approx(210.0), "peak_rss_gb": None}
    problems = recipe_times.check(_result(210.0, 1.6), stated, 0.25, 0.15)
    assert problems == ["its header states no peak RSS (write one with --write-headers)"]


@pytest.mark.parametrize("cpu_s, peak, off", [
    (265.0, 1.6, []),                 # 3.5 min × 1.25 = 262.5 s, + 3 s of rounding = 265.5 s
    (266.0, 1.6, ["CPU time 4.43 min is above the header's 3.5 min ± 25%"]),
    (155.0, 1.6, []),                 # 210 s × 0.75 − 3 s = 154.5 s
    (154.0, 1.6, ["CPU time 2.57 min is below the header's 3.5 min ± 25%"]),
    (210.0, 1.88, []),                # 1.6 GB × 1.15 + 0.05 = 1.89 GB
    (210.0, 1.90, ["peak RSS 1.90 GB is above the header's 1.6 GB ± 15%"]),
    (210.0, 1.30, ["peak RSS 1.30 GB is below the header's 1.6 GB ± 15%"]),  # 1.6 × 0.85 − 0.05 = 1.31
])
def test_the_check_fails_outside_the_tolerance_either_way(recipe_times, cpu_s, peak, off):
    assert recipe_times.check(_result(cpu_s, peak), {"cpu_s": 210.0, "peak_rss_gb": 1.6}, 0.25, 0.15) == off


@pytest.mark.parametrize("peak, code", [(1.6, 0), (3.0, 1)])
def test_the_check_exit_code(recipe_times, monkeypatch, tmp_path, capsys, peak, code):
    """``--check`` exits 1 when a recipe is off its header (the run itself replaced by its figures)."""
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text("# Measured: 3.5 min CPU time, 1.9 min wall, peak RSS 1.6 GB on 2 CPU cores (load 0.4), "
                      "8 optimiser steps, 2026-12-02 (python benchmarks/recipe_times.py).\nalgorithm: dpo\n")
    monkeypatch.setattr(recipe_times, "RECIPES", tmp_path)
    monkeypatch.setattr(recipe_times, "run", lambda path, data, output, reward, threads: _result(212.0, peak))
    monkeypatch.setattr("zoo.gguf.resolve", lambda name: name)
    monkeypatch.setattr(sys, "argv", ["recipe_times.py", "--data", "x.jsonl", "--output", str(tmp_path / "out"),
                                      "--check"])
    assert recipe_times.main() == code
    output = capsys.readouterr().out
    assert ("off their headers: dpo" in output) == bool(code)
    assert re.search(r"peak RSS \d\.\d\d GB", output)


@pytest.mark.parametrize("threads", [None, 1])
def test_written_headers_replace_the_measured_line(recipe_times, tmp_path, threads):
    from tests.test_configs import MEASURED

    path = tmp_path / "dpo.yaml"
    path.write_text("# zoo train dpo.yaml\n# Measured: not yet (python benchmarks/recipe_times.py --write-headers "
                    "measures it).\nalgorithm: dpo\n")
    recipe_times.write_header(path, {**_result(212.0, 1.63), "threads": threads})
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == "# zoo train dpo.yaml" and lines[2] == "algorithm: dpo"
    assert MEASURED.match(lines[1]) and ("one torch thread" in lines[1]) == (threads == 1)
    assert recipe_times.header_figures(path) == {"cpu_s": pytest.approx(3.5 * 60), "peak_rss_gb": 1.6}
