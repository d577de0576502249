"""LoRA through peft (reference = adapter disabled, merged + adapter saving) and gradient checkpointing."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from zoo.config import LoraConfig, load_config
from zoo.data.collate import Collator
from zoo.data.dataset import load_examples
from zoo.lora import AdapterDisabledReference, apply_lora, is_lora
from zoo.module import AlignmentModule
from zoo.registry import get_registry
from zoo.tiny import tiny_model

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}


def _forbid_model_copies(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a second model was loaded for the reference of a LoRA run")

    monkeypatch.setattr("zoo.models.load_reference", refuse)
    monkeypatch.setattr(torch.nn.Module, "__deepcopy__", refuse, raising=False)


def test_disabled_adapter_is_the_base_model(tokenizer):
    base = tiny_model(tokenizer, **SMALL)
    expected_model = copy.deepcopy(base)
    policy = apply_lora(base, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    with torch.no_grad():  # as after some training: the adapter is no longer a no-op
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    ids = torch.randint(4, 200, (2, 12))
    reference = AdapterDisabledReference(policy)
    policy.train()
    with torch.no_grad():
        expected = expected_model(input_ids=ids).logits
        adapted = policy(input_ids=ids).logits
        disabled = reference(input_ids=ids).logits
    torch.testing.assert_close(disabled, expected)
    assert (adapted - expected).abs().max() > 1e-3
    assert policy.training  # the reference pass restores the policy's mode
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_reference_log_probs_take_the_scored_positions_head(tokenizer, monkeypatch):
    """The adapter-disabled reference is scored like the policy: the LM head at scored positions
    only (never the ``[rows, positions, vocabulary]`` logits of the wrapper's own forward), with
    the log-probs of the base model and the policy's mode restored."""
    from zoo.batch import Batch
    from zoo.forward import batch_logprobs
    from zoo.forward.logprobs import token_logps_from_logits

    base = tiny_model(tokenizer, **SMALL)
    expected_model = copy.deepcopy(base)
    policy = apply_lora(base, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    ids = torch.randint(4, 200, (4, 12))
    loss_mask = torch.zeros_like(ids)
    loss_mask[:, 6:] = 1
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids), loss_mask=loss_mask, group_size=2,
                  valid=torch.ones((2, 2), dtype=torch.bool))
    with torch.no_grad():
        token_logps = token_logps_from_logits(expected_model(input_ids=ids).logits, ids)

    def refuse(*args, **kwargs):
        raise AssertionError("the reference was scored through full-sequence logits")

    monkeypatch.setattr("zoo.forward.logprobs.token_logps_from_logits", refuse)
    policy.train()
    with torch.no_grad():
        out = batch_logprobs(AdapterDisabledReference(policy), batch)
    scored = loss_mask.bool()
    scored[:, 0] = False
    expected = (token_logps * scored).sum(-1).view(2, 2)
    torch.testing.assert_close(out.sum, expected, rtol=1e-5, atol=1e-5)
    assert policy.training


@pytest.mark.parametrize("reference_cache", ["off", "auto"])
def test_lora_dpo_run_uses_no_second_model_and_saves_merged_and_adapter(tiny_run, tmp_path, monkeypatch,
                                                                        reference_cache):
    from zoo.training_guard import train

    _forbid_model_copies(monkeypatch)
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", steps=3,
                                      model={"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
                                      train={"reference_cache": reference_cache, "learning_rate": 5e-2}))
    result = train(config)
    module = result.module
    if reference_cache == "off":
        assert isinstance(module.reference, AdapterDisabledReference)
    else:
        assert module.reference is None  # the cache was filled from the adapter-disabled policy
    assert result.metrics_after["val/loss"] < result.metrics_before["val/loss"]

    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "adapter" / "adapter_model.safetensors").exists()
    assert (model_dir / "model.safetensors").exists()
    monkeypatch.undo()
    merged = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not is_lora(merged) and not any("lora" in n for n, _ in merged.named_parameters())
    ids = torch.randint(4, 200, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, module.policy(input_ids=ids).logits)


def test_lora_works_for_every_algorithm(tiny_run, tmp_path):
    from zoo.training_guard import train

    registry = get_registry()
    for name in registry.names("algorithms"):
        config = load_config(raw=tiny_run(name, tmp_path / name, steps=1,
                                          model={"lora": {"r": 2, "alpha": 4}},
                                          data={"eval_fraction": 0.0, "builtin_size": 8}))
        result = train(config)
        assert (tmp_path / name / "model" / "adapter" / "adapter_model.safetensors").exists(), name
        assert result.module.reference is None or isinstance(result.module.reference, AdapterDisabledReference)


def test_gradient_checkpointing_is_applied_and_changes_no_number(tiny_run, tmp_path, tokenizer):
    from zoo.training_guard import train

    config = load_config(raw=tiny_run("dpo", tmp_path / "run", steps=1, model={"gradient_checkpointing": True}))
    assert train(config).module.policy.is_activation_checkpointing

    algorithm_cls = get_registry().algorithm("dpo")
    examples, _ = load_examples("builtin:tiny_prefs", "train", "pairwise", config.data, tokenizer)
    batch = Collator(tokenizer.pad_token_id)(examples[:4])
    results = []
    for checkpointing in (False, True):
        policy = tiny_model(tokenizer, **SMALL)
        reference = copy.deepcopy(policy).eval()
        with torch.no_grad():
            for parameter in policy.parameters():
                parameter.add_(0.02 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
        if checkpointing:
            policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        policy.train()
        module = AlignmentModule(policy, algorithm_cls(), config.train, reference=reference)
        loss = module.compute_loss(batch).losses.mean()
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in policy.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0])
    for with_checkpoints, without in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(with_checkpoints, without, atol=1e-6, rtol=1e-5)


def test_a_loaded_pretrained_policy_trains_in_training_mode_and_checkpoints(tiny_run, tmp_path, tokenizer):
    """from_pretrained returns eval mode; without ``policy.train()`` checkpointing silently does nothing."""
    from zoo.model_output import output_kind
    from zoo.run import load_policy

    saved = tmp_path / "pretrained"
    tiny_model(tokenizer, **SMALL).save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    config = load_config(raw=tiny_run("dpo", tmp_path / "run", steps=1,
                                      model={"name": str(saved), "gradient_checkpointing": True}))
    policy = load_policy(config, output_kind(get_registry().algorithm("dpo")), tokenizer)
    assert all(module.training for module in policy.modules())
    layer = policy.model.layers[0]
    calls = []
    checkpoint = layer._gradient_checkpointing_func

    def counting(*args, **kwargs):
        calls.append(1)
        return checkpoint(*args, **kwargs)

    layer._gradient_checkpointing_func = counting
    ids = torch.randint(0, policy.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    policy(input_ids=ids).logits.sum().backward()
    assert calls == [1]  # the layer went through the checkpoint, which transformers skips in eval mode
