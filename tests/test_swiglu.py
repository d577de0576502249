"""The gated-SiLU MLP that keeps fewer activations: same values, same gradients, fewer saved bytes."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.forward.swiglu import SiluMul, enable_lean_swiglu, silu_mul
from zoo.tiny import tiny_model

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}


def test_silu_mul_gradients_match_autograd_of_the_plain_product():
    g = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    u = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SiluMul.apply, (g, u))
    weights = torch.randn(5, 7, dtype=torch.float64)
    (silu_mul(g, u) * weights).sum().backward()
    lean = g.grad.clone(), u.grad.clone()
    g.grad = u.grad = None
    (F.silu(g) * u * weights).sum().backward()
    torch.testing.assert_close(lean[0], g.grad)
    torch.testing.assert_close(lean[1], u.grad)


def _saved_bytes(fn) -> int:
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_lean_mlp_gives_the_same_model_with_fewer_saved_activations(tokenizer):
    plain = tiny_model(tokenizer, **SMALL)
    lean = tiny_model(tokenizer, **SMALL)
    assert enable_lean_swiglu(lean) == plain.config.num_hidden_layers
    assert enable_lean_swiglu(lean) == 0  # already switched
    ids = torch.randint(0, plain.config.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0))

    def step(model):
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        logits.float().log_softmax(-1).mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    (plain_logits, plain_grads), (lean_logits, lean_grads) = step(plain), step(lean)
    assert torch.equal(plain_logits, lean_logits)
    for a, b in zip(lean_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    mlp_plain = plain.model.layers[0].mlp
    mlp_lean = lean.model.layers[0].mlp
    x = torch.randn(3, 11, SMALL["hidden_size"], requires_grad=True)
    width = 3 * 11 * SMALL["intermediate_size"] * 4
    saved_plain, saved_lean = _saved_bytes(lambda: mlp_plain(x)), _saved_bytes(lambda: mlp_lean(x))
    # gate, up and down's input kept, not silu(gate) as well
    assert saved_plain - saved_lean == width


def test_other_mlps_are_left_alone(tokenizer):
    model = tiny_model(tokenizer, **SMALL)
    for layer in model.model.layers:
        layer.mlp.act_fn = nn.GELU()
    assert enable_lean_swiglu(model) == 0

    class Shifted(nn.Module):  # SiLU gate and the right names, but a forward that is not the product
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj, self.down_proj = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(8, 4)
            self.act_fn = nn.SiLU()

        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x) + 1)

    assert enable_lean_swiglu(Shifted()) == 0
