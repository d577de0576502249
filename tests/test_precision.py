"""bf16 precision (Lightning's ``bf16-mixed`` and ``bf16-true``), on CPU as it would run on a GPU."""
from __future__ import annotations

import json

import pytest
import torch

from zoo.config import load_config
from zoo.forward.logprobs import sequence_logprobs
from zoo.tiny import tiny_model


def test_log_probs_are_float32_under_bf16_autocast(tokenizer):
    """The log-softmax runs on upcast logits: a bf16 log-softmax over the vocabulary loses ~1e-2 per token."""
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    ids = torch.randint(4, 200, (2, 12))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        exact = sequence_logprobs(model, ids, mask, mask.bool(), 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = sequence_logprobs(model, ids, mask, mask.bool(), 1)
    assert mixed.token_logps.dtype == torch.float32 and mixed.sum.dtype == torch.float32
    # bf16 matmuls (8-bit mantissa) move each token's log-prob by ~1e-2, not by whole nats
    torch.testing.assert_close(mixed.token_logps, exact.token_logps, atol=0.1, rtol=0.02)


@pytest.mark.parametrize("padding_free", [False, True])
@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", "float32"), ("bf16-true", "bfloat16")])
def test_dpo_trains_in_bf16_and_saves_finite_weights(tiny_run, tmp_path, precision, dtype, padding_free):
    from safetensors.torch import load_file

    from zoo.training_guard import train

    raw = tiny_run("dpo", tmp_path / "run", steps=3, train={"precision": precision, "learning_rate": 1e-2},
                   model={"dtype": dtype}, data={"padding_free": padding_free})
    train(load_config(raw=raw))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 3
    before, after = metrics["before"]["val/loss"], metrics["after"]["val/loss"]
    assert abs(before - 0.6931) < 0.02  # policy == reference before training, in any precision
    assert after == after and after < before  # finite, and three steps at lr 1e-2 lower it
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert all(torch.isfinite(w.float()).all() for w in weights.values())
    expected = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    assert weights["model.embed_tokens.weight"].dtype == expected
