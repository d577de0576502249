"""The ``zoo`` command line: user mistakes exit 2 with one paragraph, a tiny DPO run improves."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, **raw) -> Path:
    base = {"algorithm": "sft", "model": {"name": "tiny"},
            "data": {"train": "builtin:tiny_sft", "builtin_size": 8, "max_length": 48, "max_prompt_length": 24},
            "train": {"max_steps": 1, "progress_bar": False}, "output_dir": str(path.parent / "run")}
    for key, value in raw.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


def assert_user_error(err: str, *fragments: str) -> None:
    """One paragraph on stderr, no traceback, containing every fragment (line wrapping ignored)."""
    assert "Traceback" not in err
    text = err.strip()
    assert text.startswith("error:"), err
    assert "\n\n" not in text, "the message should be a single paragraph"
    flat = " ".join(text.split())
    for fragment in fragments:
        assert " ".join(fragment.split()) in flat, (fragment, flat)


def test_unknown_algorithm(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", algorithm="rrfh")
    assert main(["train", str(path)]) == 2
    captured = capsys.readouterr()
    assert_user_error(captured.err, "unknown algorithm 'rrfh'", "did you mean 'rrhf'?", "Available:", "slic_hf")
    assert not (tmp_path / "run").exists()


def test_unknown_key_with_suggestion(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", data={"max_lenght": 64})
    assert main(["train", str(path)]) == 2
    assert_user_error(capsys.readouterr().err, "unknown config key 'data.max_lenght'", "did you mean 'max_length'?")


def test_unknown_override_key(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml")
    assert main(["train", str(path), "train.batchsize=4"]) == 2
    assert_user_error(capsys.readouterr().err, "'train.batchsize'", "did you mean 'batch_size'?")


def test_malformed_data_row(tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    good = {"prompt": "Review the soup:", "chosen": " It was great.", "rejected": " It was awful."}
    rows = [good, {"prompt": "Review the soup:", "chosen": " It was great."}, good]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = write_config(tmp_path / "c.yaml", algorithm="dpo", data={"train": str(data)})
    assert main(["train", str(path)]) == 2
    assert_user_error(capsys.readouterr().err, f"{data}, row 2, field 'rejected': missing field",
                      "data.on_bad_rows: skip")
    assert not (tmp_path / "run" / "model").exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert_user_error(capsys.readouterr().err, "does not exist")


def test_console_script_reports_without_traceback(tmp_path):
    """The installed ``zoo`` script, in a real process: exit status 2 and the message on stderr."""
    script = shutil.which("zoo", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert script, "the `zoo` console script is not installed (pip install -e .)"
    path = write_config(tmp_path / "c.yaml", algorithm="dpoo")
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([script, "train", str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert_user_error(result.stderr, "unknown algorithm 'dpoo'", "did you mean 'dpo'?")
    assert result.stdout.strip() == ""


def test_plugins_json_lists_the_core_algorithms(capsys):
    assert main(["plugins", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    algorithms = {name for p in payload for name in p["registers"].get("algorithms", [])}
    assert {"sft", "dpo", "rrhf", "slic_hf"} <= algorithms
    by_name = {p["name"]: p for p in payload}
    assert by_name["slic_hf"]["builtin"] is True and by_name["slic_hf"]["distribution"] == "alignment-zoo"


def test_plugins_table(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "rrhf" in out and "slic_hf" in out
    # each algorithm's description is shown
    from zoo.registry import get_registry

    for name in ("dpo", "ppo"):
        words = get_registry().algorithm(name).description.split()[:3]
        assert " ".join(words) in out


def test_tiny_dpo_run_learns_the_preference(tmp_path, capsys):
    """configs/tiny/dpo.yaml, shortened: held-out reward accuracy rises and the model reloads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "dpo"
    status = main(["train", str(ROOT / "configs/tiny/dpo.yaml"), f"output_dir={out}", "train.progress_bar=false",
                   "train.max_steps=15", "data.builtin_size=200", "train.val_check_interval=null"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((out / "metrics.json").read_text())
    before, after = summary["before"]["val/reward_accuracy"], summary["after"]["val/reward_accuracy"]
    assert after > before, (before, after)
    assert after >= 0.75
    assert summary["after"]["val/loss"] < summary["before"]["val/loss"]

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    ids = tokenizer("Review the soup: It was great.", return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert bool(logits.isfinite().all())
    # the saved weights are the trained ones, not the tiny model's fresh initialisation
    from zoo.tiny import tiny_model

    fresh = tiny_model(tokenizer)
    assert any(not (p.detach() == q.detach()).all() for p, q in zip(model.parameters(), fresh.parameters()))
