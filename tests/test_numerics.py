"""Non-finite losses and gradients: the run stops with one paragraph, or skips within a budget, and
no checkpoint or model with NaN weights is ever written.

NaNs are injected by a test-only algorithm, registered on the fly by a plugin added to a fresh
plugin manager.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from zoo import Algorithm, Hyperparameters, LossOutput, cli, hookimpl, registry as registry_module
from zoo.config import load_config
from zoo.module import NonFiniteLossError
from zoo.registry import PluginInfo, reset_registry
from zoo.training_guard import train


@dataclass
class NaNArgs(Hyperparameters):
    #: Training calls of the loss (0-based) that produce a NaN.
    nan_calls: list[int] = field(default_factory=list)
    #: ``loss``: the loss itself is NaN; ``grad``: the loss is finite but its gradient is NaN.
    where: Literal["loss", "grad"] = "loss"


class NaNInjection(Algorithm):
    """A reference-free pairwise logistic loss that turns NaN on chosen training calls."""

    name = "nan_injection"
    Args = NaNArgs
    data_shape = "pairwise"

    def __init__(self, args=None):
        super().__init__(args)
        self.training_calls = 0

    def loss(self, policy, reference, batch) -> LossOutput:
        margin = policy.sum[:, 0] - policy.sum[:, 1]
        if torch.is_grad_enabled():  # validation runs without gradients and is left alone
            call, self.training_calls = self.training_calls, self.training_calls + 1
            if call in self.args.nan_calls:
                if self.args.where == "loss":
                    margin = margin * float("nan")
                else:
                    margin = margin.clone()
                    margin.register_hook(lambda grad: torch.full_like(grad, float("nan")))
        return LossOutput(-F.logsigmoid(margin), {"margin": margin.detach()})


class NaNOnline(NaNInjection):
    """The same loss through the manual-optimisation path of online algorithms."""

    name = "nan_online"
    generates_online = True

    def make_experience(self, ctx, batch):
        return batch


class TestPlugin:
    @staticmethod
    @hookimpl
    def zoo_register_algorithms(register):
        register(NaNInjection)
        register(NaNOnline)


@pytest.fixture
def with_nan_plugin(monkeypatch):
    build = registry_module.build_plugin_manager

    def build_with_test_plugin():
        pm, infos = build()
        pm.register(TestPlugin, name="nan_test_plugin")
        infos["nan_test_plugin"] = PluginInfo("nan_test_plugin", "tests", "0", builtin=False)
        return pm, infos

    monkeypatch.setattr(registry_module, "build_plugin_manager", build_with_test_plugin)
    reset_registry()
    yield
    monkeypatch.undo()
    reset_registry()


def _raw(tiny_run, output_dir, algorithm="nan_injection", steps=8, **args):
    raw = tiny_run("dpo", output_dir, steps=steps, train={"checkpoint_every_n_steps": 2})
    raw["algorithm"] = algorithm
    raw["algorithm_args"] = args
    return raw


def _all_checkpoints_finite(run) -> list[int]:
    steps = []
    for path in sorted((run / "checkpoints").glob("*.ckpt")):
        checkpoint = torch.load(path, weights_only=True)
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
        steps.append(checkpoint["global_step"])
    return steps


def test_nan_loss_stops_the_run_with_one_paragraph_and_keeps_finite_checkpoints(tmp_path, tiny_run, capsys,
                                                                                with_nan_plugin):
    run = tmp_path / "run"
    config_path = tmp_path / "nan.yaml"
    config_path.write_text(yaml.safe_dump(_raw(tiny_run, run, nan_calls=[5])))

    assert cli.main(["train", str(config_path)]) == 2
    err = capsys.readouterr().err
    (message,) = [line for line in err.splitlines() if line.startswith("error:")]  # one paragraph
    assert "the training loss became NaN or inf at step 5" in message
    assert "train.max_nonfinite_steps" in message and "Traceback" not in err
    assert max(_all_checkpoints_finite(run)) == 4
    assert not (run / "model").exists()
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "running"  # the "before" metrics of the stopped run are kept
    assert summary["before"]
    assert yaml.safe_load((run / "config.yaml").read_text())["algorithm"] == "nan_injection"


def test_nan_gradient_stops_the_run(tmp_path, tiny_run, with_nan_plugin):
    with pytest.raises(NonFiniteLossError, match="a gradient became NaN or inf at step 3"):
        train(load_config(raw=_raw(tiny_run, tmp_path / "run", nan_calls=[3], where="grad")))
    assert max(_all_checkpoints_finite(tmp_path / "run")) == 2


# Automatic optimisation with a NaN gradient is covered by test_skipped_step_leaves_the_weights_untouched.
@pytest.mark.parametrize(("algorithm", "where"), [("nan_injection", "loss"), ("nan_online", "loss"),
                                                  ("nan_online", "grad")])
def test_nonfinite_steps_within_the_budget_are_skipped_and_reported(tmp_path, tiny_run, with_nan_plugin,
                                                                     algorithm, where):
    raw = _raw(tiny_run, tmp_path / "run", algorithm=algorithm, steps=6, nan_calls=[1, 3], where=where)
    raw["train"]["max_nonfinite_steps"] = 2
    result = train(load_config(raw=raw))
    assert result.nonfinite_steps == 2
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["status"] == "finished" and summary["nonfinite_steps_skipped"] == 2
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    _all_checkpoints_finite(tmp_path / "run")


def test_skipped_step_leaves_the_weights_untouched(tmp_path, tiny_run, with_nan_plugin):
    """A skipped step is no step: weights equal those of a run that never saw the bad batch's update."""
    raw = _raw(tiny_run, tmp_path / "skip", steps=1, nan_calls=[0], where="grad")
    raw["train"].update(max_nonfinite_steps=1, checkpoint_every_n_steps=None)
    result = train(load_config(raw=raw))
    assert result.nonfinite_steps == 1
    from zoo.models import load_causal_lm, load_tokenizer

    config = load_config(raw=raw)
    untouched = load_causal_lm(config.model, load_tokenizer(config.model)).state_dict()
    trained = load_file(str(tmp_path / "skip" / "model" / "model.safetensors"))
    assert all(torch.equal(trained[k], untouched[k]) for k in trained)


def test_budget_is_exceeded_by_one_more_nonfinite_step(tmp_path, tiny_run, with_nan_plugin):
    raw = _raw(tiny_run, tmp_path / "run", steps=6, nan_calls=[1, 2])
    raw["train"]["max_nonfinite_steps"] = 1
    with pytest.raises(NonFiniteLossError, match=r"max_nonfinite_steps = 1"):
        train(load_config(raw=raw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradient_check_is_exact_where_sums_overflow_or_cancel(dtype):
    from zoo.module import gradients_finite

    big = torch.finfo(dtype).max
    assert gradients_finite([torch.ones(3, dtype=dtype), torch.tensor([big, big], dtype=dtype)])  # the sum overflows
    for bad in (float("nan"), float("inf"), -float("inf")):
        grads = [torch.ones(4, dtype=dtype), torch.tensor([1.0, bad, 2.0], dtype=dtype)]
        assert not gradients_finite(grads)
    # +inf and -inf in one tensor sum to NaN, and a NaN beside finite values stays NaN
    assert not gradients_finite([torch.tensor([float("inf"), -float("inf")], dtype=dtype)])
    assert gradients_finite([torch.zeros(0, dtype=dtype), torch.full((5,), -3.0, dtype=dtype)])
