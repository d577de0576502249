"""A plugin loss that breaks the contract stops the run on its first step, naming the plugin and the rule."""
from __future__ import annotations

import pytest
import torch

from zoo import cli
from zoo.batch import LossOutput
from zoo.config import load_config
from zoo.errors import PluginError
from zoo.registry import get_registry
from zoo.training_guard import train

BROKEN = {
    "per-token losses (B, 3)": (lambda out: LossOutput(out.losses[:, None].expand(-1, 3), out.metrics),
                                r"shape \[B\] = \(4,\).*got shape \(4, 3\)"),
    "0-dim loss": (lambda out: LossOutput(out.losses.mean(), out.metrics), r"got shape \(\)"),
    "None": (lambda out: None, "must return a zoo.batch.LossOutput, got NoneType"),
    "detached loss": (lambda out: LossOutput(out.losses.detach(), out.metrics), "does not require grad"),
    "integer loss": (lambda out: LossOutput(out.losses.detach().long(), out.metrics), "floating-point tensor"),
    "metric of the wrong shape": (lambda out: LossOutput(out.losses, {"margin": torch.zeros(4, 2)}),
                                  "metric 'margin' must be a tensor of shape"),
    # requires grad, right shape: only the gradient that never reaches a parameter gives it away
    "no path to the model": (lambda out: LossOutput(torch.zeros(out.losses.shape[0], requires_grad=True), out.metrics),
                             "no trainable parameter has a gradient"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_loss_is_named_with_its_plugin_and_rule(tmp_path, tiny_run, monkeypatch, case):
    breaks, rule = BROKEN[case]
    dpo = get_registry().algorithm("dpo")
    real_loss = dpo.loss
    monkeypatch.setattr(dpo, "loss", lambda self, *args: breaks(real_loss(self, *args)))
    raw = tiny_run("dpo", tmp_path / "run", steps=2, data={"eval_fraction": 0.0})
    with pytest.raises(PluginError, match=rule) as error:
        train(load_config(raw=raw))
    assert "algorithm 'dpo' of the plugin dpo (alignment-zoo" in str(error.value)
    assert "broke the loss contract" in str(error.value)
    assert not (tmp_path / "run" / "model").exists()


def test_a_broken_loss_through_the_cli_is_one_paragraph(tmp_path, tiny_run, monkeypatch, capsys):
    import yaml

    dpo = get_registry().algorithm("dpo")
    real_loss = dpo.loss
    monkeypatch.setattr(dpo, "loss", lambda self, *args: LossOutput(real_loss(self, *args).losses.sum(), {}))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_run("dpo", tmp_path / "run", steps=1)))
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "broke the loss contract" in err and "Traceback" not in err


def test_a_token_mean_becomes_one_mean_over_every_devices_tokens(tokenizer):
    """Device A holds 4 of the 10 tokens of a step on 2 devices and its token mean is 2 (sum 8). DDP
    averages gradients, so A's loss must be 2 · 4 · 2 / 10 = 1.6: (1.6 + B's share) / 2 is then
    Σ sums / 10. One device, or a loss without a token count, is left as the plain mean."""
    from types import SimpleNamespace

    from zoo.batch import LossOutput
    from zoo.config import TrainConfig
    from zoo.module import AlignmentModule
    from zoo.tiny import tiny_model
    from zoo_plugins.algorithms.sft import SFT

    module = AlignmentModule(tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                        num_key_value_heads=1), SFT(), TrainConfig())
    out = LossOutput(torch.tensor([1.0, 3.0]), tokens=torch.tensor(4.0))
    module._trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=lambda t, reduce_op: t * 0 + 10))
    assert module._training_loss(out).item() == pytest.approx(1.6)
    assert module._training_loss(LossOutput(torch.tensor([1.0, 3.0]))).item() == 2.0
    module._trainer = SimpleNamespace(world_size=1)
    assert module._training_loss(out).item() == 2.0


def test_a_nan_loss_names_the_plugin_and_blames_a_third_party_loss_first(tmp_path, tiny_run, monkeypatch):
    from zoo.module import NonFiniteLossError

    dpo = get_registry().algorithm("dpo")
    real_loss = dpo.loss
    monkeypatch.setattr(dpo, "loss", lambda self, *args: LossOutput(real_loss(self, *args).losses * float("nan"), {}))
    raw = tiny_run("dpo", tmp_path / "run", steps=2, data={"eval_fraction": 0.0})
    with pytest.raises(NonFiniteLossError, match=r"at step 0 \(algorithm 'dpo' of the plugin dpo \(alignment-zoo"):
        train(load_config(raw=raw))
    monkeypatch.setattr(get_registry().plugins["dpo"], "builtin", False)
    with pytest.raises(NonFiniteLossError, match="Check the loss of algorithm 'dpo' of the plugin dpo") as error:
        train(load_config(raw=raw), overwrite=True)
    assert "Lower train.learning_rate, check" not in str(error.value)
