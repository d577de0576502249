"""One tie rule for preference accuracy: |margin| ≤ 1e-5 counts one half, in training and evaluation."""
from __future__ import annotations

import torch

from zoo.losses import pair_accuracy
from zoo.losses.accuracy import TIE_TOLERANCE


def test_hand_worked_margins():
    margins = torch.tensor([-2e-8, 0.0, 3e-6, -9e-6, 0.01, -0.5, 2 * TIE_TOLERANCE])
    assert pair_accuracy(margins).tolist() == [0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0]
    assert [pair_accuracy(m) for m in (-2e-8, 0.2, -0.2)] == [0.5, 1.0, 0.0]


def test_dpo_reward_accuracy_before_any_update_is_one_half_despite_float_noise():
    """Rewards of ±2e-8 (a cached reference against a live policy) are ties, not wins or losses."""
    from zoo.losses import dpo_loss

    policy_chosen, policy_rejected = torch.tensor([-150.2249, -80.5]), torch.tensor([-130.9367, -99.1])
    noise = torch.tensor([2e-7, -3e-7])
    out = dpo_loss(policy_chosen, policy_rejected, policy_chosen + noise, policy_rejected - noise, beta=0.1)
    assert out.metrics["reward_accuracy"].tolist() == [0.5, 0.5]


def test_reward_model_slic_and_rrhf_metrics_count_ties_as_half():
    from zoo_plugins.algorithms.reward import pair_metrics
    from zoo_plugins.algorithms.rrhf import rrhf_loss
    from zoo_plugins.algorithms.slic_hf import slic_hf_loss

    valid = torch.ones(1, 2, dtype=torch.bool)
    scores = torch.tensor([[1.0, 0.0]])
    tied = torch.tensor([[0.3, 0.3 - 1e-7]])
    assert pair_metrics(tied, scores, valid)["accuracy"].item() == 0.5
    assert pair_metrics(torch.tensor([[0.5, 0.1]]), scores, valid)["accuracy"].item() == 1.0
    assert rrhf_loss(tied, scores, valid).metrics["ranking_accuracy"].item() == 0.5
    assert slic_hf_loss(tied, scores, valid).metrics["pair_accuracy"].item() == 0.5


def test_preference_suite_gives_a_policy_equal_to_its_reference_one_half(tmp_path):
    import json

    from zoo.eval.runner import run_suites
    from zoo.tiny import tiny_model, tiny_tokenizer

    rows = [{"prompt": f"p{i} ", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(4)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer=tokenizer)
    results = run_suites(model, tokenizer, ["preference"], reference=model,
                         options={"preference": {"data": str(path), "scorer": "implicit"}})
    assert results["preference"].metrics["accuracy"].value == 0.5
