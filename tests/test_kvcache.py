"""zoo.rollout.kvcache: the decoding loop's cache gives attention the same numbers as DynamicCache."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from zoo.rollout.kvcache import RoomyLayer, roomy_cache
from zoo.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def model():
    return tiny_model(tiny_tokenizer(), hidden_size=32, intermediate_size=64, num_attention_heads=2,
                      num_key_value_heads=1).eval()


@torch.no_grad()
def _decode_logits(model, cache, *, steps=9, repeats=2):
    """Prefill 3 left-padded prompts, copy each prompt's cache ``repeats`` times, decode greedily,
    dropping two rows after step 4; every step's logits."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (3, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    mask[2, :5] = 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    logits = [out.logits[:, -1]]
    cache.batch_repeat_interleave(repeats)
    mask, positions = mask.repeat_interleave(repeats, 0), positions.repeat_interleave(repeats, 0)
    token, position = logits[0].repeat_interleave(repeats, 0).argmax(-1), positions[:, -1] + 1
    for step in range(steps):
        if step == 4:
            keep = torch.tensor([0, 2, 3, 5])
            cache.batch_select_indices(keep)
            token, mask, position = token[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None], cache=cache,
                    use_cache=True)
        logits.append(out.logits[:, -1])
        token, position = logits[-1].argmax(-1), position + 1
    return logits


@pytest.mark.parametrize("room", [16, 8, 1])  # 16 fits every position; 8 and 1 make the buffers grow
def test_every_steps_logits_equal_dynamic_caches_bit_for_bit(model, room):
    expected = _decode_logits(model, DynamicCache(config=model.config))
    cache = roomy_cache(model.config, room)
    assert all(isinstance(layer, RoomyLayer) for layer in cache.layers)
    got = _decode_logits(model, cache)
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected)):
        assert torch.equal(a, b), f"step {step}"
    assert cache.get_seq_length() == 7 + 9
    if room == 16:  # enough room from the start: the buffer was never replaced by a bigger one
        assert cache.layers[0]._keys.shape[-2] == 16


def test_crop_and_reset():
    layer = RoomyLayer(4)
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)
    layer.update(keys, -keys)
    layer.update(keys[..., :1, :] + 100, -keys[..., :1, :])
    assert layer.get_seq_length() == 4 and torch.equal(layer.keys[..., :3, :], keys)
    assert torch.equal(layer.keys[..., 3, :], keys[..., 0, :] + 100)
    layer.crop(-2)
    assert layer.get_seq_length() == 2 and torch.equal(layer.values, -keys[..., :2, :])
    with pytest.raises(ValueError, match="negative"):
        layer.crop(1)
    layer.reset()
    assert layer.get_seq_length() == 0
    layer.update(keys, keys)
    assert torch.equal(layer.keys, keys)
