"""Every shipped run config validates, and config mistakes are reported by key with a suggestion."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.planning import plan_run
from zoo.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
# configs/bench/ holds benchmark definitions and `zoo pairs` configs open with their command; both have their
# own schema
RUN_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "bench" not in p.relative_to(ROOT).parts[:2]
                     and not p.read_text(encoding="utf-8").startswith("# zoo pairs "))


def header_lines(path: Path) -> list[str]:
    """The comment lines a config opens with."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]


def test_run_configs_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in RUN_CONFIGS}
    assert {"configs/tiny/dpo.yaml", "configs/tiny/sft.yaml", "configs/tiny/rrhf.yaml", "configs/tiny/slic_hf.yaml",
            "configs/qwen2.5-0.5b/sft.yaml", "configs/qwen2.5-0.5b/dpo.yaml"} <= names


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_config_validates_and_names_its_command(path):
    config = plan_run(load_config(path)).config
    header = "\n".join(header_lines(path))
    command = f"zoo train {path.relative_to(ROOT).as_posix()}"
    assert command in header, f"{path.name} should open with a comment showing `{command}`"
    assert config.output_dir.startswith("runs/"), "shipped configs write under runs/"


def test_tiny_configs_need_no_download():
    """CPU demos run on the built-in model and data (or ones an earlier tiny step wrote under runs/tiny-*)."""
    for path in RUN_CONFIGS:
        if path.parent.name == "tiny":
            config = load_config(path)
            assert config.model.name == "tiny" or config.model.name.startswith("runs/tiny-"), path.name
            assert config.data.train.startswith(("builtin:", "runs/tiny-")), path.name


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'train.learning_rat'.*did you mean 'learning_rate'"):
        load_config(raw={"train": {"learning_rat": 1e-4}})


def test_unknown_algorithm_argument_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'algorithm_args.bta'.*did you mean 'beta'"):
        plan_run(load_config(raw={"algorithm": "dpo", "algorithm_args": {"bta": 0.1}}))


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown algorithm 'slic_fh'.*did you mean 'slic_hf'.*Available:.*rrhf"):
        plan_run(load_config(raw={"algorithm": "slic_fh"}))


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"train.batch_size = 'eight': expected an integer"):
        load_config(raw={"train": {"batch_size": "eight"}})


def test_overrides_are_parsed_as_yaml_and_applied():
    config = load_config(ROOT / "configs/tiny/rrhf.yaml",
                         ["algorithm_args.rank_weight=2", "train.max_steps=3", "data.eval=null"])
    assert config.algorithm_args == {"rank_weight": 2}
    assert config.train.max_steps == 3
    assert config.data.eval is None


def test_exponent_without_a_dot_is_a_number_not_a_string():
    """YAML 1.1 reads `3e-4` as the string '3e-4'; float keys accept it as 0.0003, other strings stay errors."""
    config = load_config(ROOT / "configs/tiny/dpo.yaml", ["train.learning_rate=3e-4"])
    assert config.train.learning_rate == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match=r"train.learning_rate = '3e-4x': expected a number"):
        load_config(ROOT / "configs/tiny/dpo.yaml", ["train.learning_rate=3e-4x"])


def test_reward_algorithms_require_a_reward_source():
    from zoo.registry import get_registry

    registry = get_registry()
    needing = [n for n in registry.names("algorithms") if registry.algorithm(n).needs_reward]
    for name in needing:
        with pytest.raises(ConfigError, match="needs a reward source"):
            plan_run(load_config(raw={"algorithm": name}))


def test_a_bare_yaml_off_gets_a_quoting_hint():
    import yaml

    from zoo.config import load_config
    from zoo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"YAML reads a bare off as false: write it in quotes, e.g. "
                                          r"reference_cache: \"off\""):
        load_config(raw=yaml.safe_load("train: {reference_cache: off}"))
    assert load_config(raw=yaml.safe_load('train: {reference_cache: "off"}')).train.reference_cache == "off"


def test_docs_and_configs_never_suggest_a_bare_reference_cache_off():
    import re

    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("docs/*.md"), *root.glob("configs/**/*.yaml"), root / "README.md"]:
        assert not re.search(r"reference_cache: off\b", path.read_text()), path


SMOLLM2_RECIPES = sorted((ROOT / "configs" / "smollm2").glob("*.yaml"))
MEASURED = re.compile(r"^# Measured: \d+\.\d min CPU time, \d+\.\d min wall(?:, peak RSS \d+\.\d GB)? "
                      r"on 2 CPU cores \(load \d+\.\d\), (?:one torch thread, )?"
                      r"(\d+) optimiser steps, \d{4}-\d\d-\d\d \(python benchmarks/recipe_times\.py(?: --threads 1)?\)\.$")
#: A recipe added since the last measurement says so, instead of borrowing another recipe's figures.
NOT_MEASURED = "# Measured: not yet (python benchmarks/recipe_times.py --write-headers measures it)."


def test_every_real_model_recipe_is_shipped():
    assert {p.stem for p in SMOLLM2_RECIPES} >= {
        "sft", "reward", "dpo", "ipo", "cdpo", "rrhf", "slic_hf", "ppo", "rejection_sampling", "grpo", "rloo",
        "online_dpo"}


@pytest.mark.parametrize("path", SMOLLM2_RECIPES, ids=lambda p: p.name)
def test_real_model_recipe_states_its_measured_time_for_what_it_runs(path):
    """Each configs/smollm2 header carries the line recipe_times.py writes, for the recipe's own step count."""
    lines = header_lines(path)
    measured = [m for m in map(MEASURED.match, lines) if m]
    unmeasured = [line for line in lines if line == NOT_MEASURED]
    assert len(measured) + len(unmeasured) == 1, \
        f"{path.name}: its header needs one `# Measured:` line (benchmarks/recipe_times.py)"
    config = load_config(path)
    assert config.train.max_steps == -1 and config.train.max_epochs == 1, "one pass over max_examples rows"
    args = config.algorithm_args
    per_batch = int(args.get("ppo_epochs", 1)) * int(args.get("num_minibatches", 1))  # PPO: updates per rollout
    # Unpaired algorithms read each HH pair as two completions (chosen desirable, rejected undesirable).
    completions = 2 if get_registry().algorithm(config.algorithm).data_shape == "unpaired" else 1
    # data.eval_fraction of the max_examples rows is held out first (zoo.data.dataset.split_off)
    held_out = max(1, round(config.data.max_examples * config.data.eval_fraction)) if config.data.eval_fraction else 0
    steps = -(-(config.data.max_examples - held_out) * completions // config.train.batch_size) * per_batch
    assert unmeasured or int(measured[0].group(1)) == steps, f"{path.name}: the measured run is not the recipe as shipped"


def test_the_config_package_knows_no_plugins():
    """zoo.config parses and checks sections only: loading a config resolves no plugin, loads no
    model and no registry (the algorithm is resolved by zoo.planning.plan_run, the step above it)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys\nfrom zoo.config import load_config\n"
            "config = load_config(raw={'algorithm': 'not_installed', 'algorithm_args': {'anything': 1}})\n"
            "print(json.dumps([config.algorithm, sorted(m for m in sys.modules if m.startswith(('zoo', 'torch')))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    algorithm, modules = json.loads(out.splitlines()[-1])
    assert algorithm == "not_installed"
    reached = [m for m in modules if m in ("zoo.registry", "zoo.models", "zoo.planning", "torch")
               or m.startswith("zoo_plugins")]
    assert reached == []
    with pytest.raises(ConfigError, match="unknown algorithm 'not_installed'"):
        plan_run(load_config(raw={"algorithm": "not_installed"}))


def test_planning_reads_capability_flags_from_the_instance():
    """GRPO with kl_coef 0 sets needs_reference = False in __init__: the plan's algorithm says so."""
    plan = plan_run(load_config(raw={"algorithm": "grpo", "algorithm_args": {"kl_coef": 0.0},
                                     "reward": {"function": "tiny_sentiment"}}))
    assert type(plan.algorithm).needs_reference and not plan.algorithm.needs_reference
    assert plan.args.kl_coef == 0.0 and plan.kind.name == "logprobs"
    with pytest.raises(ConfigError, match="needs no reference model"):
        plan_run(load_config(raw={"algorithm": "grpo", "algorithm_args": {"kl_coef": 0.0},
                                  "reward": {"function": "tiny_sentiment"},
                                  "train": {"reference_cache": "required"}}))
