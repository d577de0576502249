"""The training optimiser: torch's fused AdamW on CPU, with the single-tensor AdamW's update."""
from __future__ import annotations

import pytest
import torch

from zoo.optimizer import adamw, can_fuse


def _parameters(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(64, 48), (48,), (7, 3, 5)]
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]


def test_fused_steps_equal_the_single_tensor_adamw():
    """Three steps of AdamW (lr 1e-2, weight decay 0.1, betas (0.8, 0.95)) on the same parameters
    and gradients: fused and the single-tensor loop (``foreach=False``, torch's CPU default) agree
    to float32 rounding, and both moved the parameters far more than that tolerance."""
    fused_params, plain_params = _parameters(0), _parameters(0)
    fused = adamw(fused_params, lr=1e-2, weight_decay=0.1, betas=(0.8, 0.95))
    plain = torch.optim.AdamW(plain_params, lr=1e-2, weight_decay=0.1, betas=(0.8, 0.95), foreach=False)
    assert fused.defaults["fused"] is True and plain.defaults["fused"] in (None, False)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for a, b in zip(fused_params, plain_params):
            grad = torch.randn(a.shape, generator=generator)
            a.grad, b.grad = grad.clone(), grad.clone()
        fused.step()
        plain.step()
    for a, b, start in zip(fused_params, plain_params, _parameters(0)):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-6)
        assert (a.detach() - start).abs().max() > 1e-3
    for a, b in zip(fused_params, plain_params):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(fused.state[a][key], plain.state[b][key], rtol=1e-6, atol=1e-7)


def test_parameters_without_gradient_are_left_alone():
    params = _parameters(2)
    before = [p.detach().clone() for p in params]
    optimizer = adamw(params, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.999))
    params[0].grad = torch.ones_like(params[0])
    optimizer.step()
    assert not torch.equal(params[0].detach(), before[0])
    assert torch.equal(params[1].detach(), before[1]) and torch.equal(params[2].detach(), before[2])


def test_fused_only_where_torch_and_lightning_take_it():
    params = _parameters(3)
    assert can_fuse(params)
    assert not can_fuse(params, scales_gradients=True)  # a GradScaler unscales inside a fused step
    assert not can_fuse([])
    assert not can_fuse([torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))])
    optimizer = adamw(params, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), scales_gradients=True)
    assert not optimizer.defaults["fused"]


def test_a_training_run_steps_with_the_fused_adamw(tiny_run, tmp_path):
    """The run's optimiser is the fused AdamW with the config's learning rate, betas and weight decay."""
    from zoo.config import load_config
    from zoo.run import build_run, fit

    config = load_config(raw=tiny_run("dpo", tmp_path / "run", steps=1,
                                      train={"weight_decay": 0.05, "adam_betas": [0.85, 0.97],
                                             "learning_rate": 2e-3, "warmup_steps": 0,
                                             "reference_cache": "off"}))
    run = build_run(config)
    fit(run)
    (optimizer,) = run.trainer.optimizers
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == pytest.approx(0.05) and tuple(group["betas"]) == pytest.approx((0.85, 0.97))
    assert group["initial_lr"] == pytest.approx(2e-3)
    trainable = {id(p) for p in run.module.parameters() if p.requires_grad}
    assert {id(p) for p in group["params"]} == trainable
