"""Held-out probes given as cloze items are scored by each choice's log-likelihood, as
lm-evaluation-harness scores ARC; checked against a log-likelihood computed here by hand."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from zoo.bench.evaluate import probe_correct
from zoo_plugins.tasks.fables import Fables, FablesArgs, fables_tokenizer


def _hand_loglik(model, tokenizer, context: str, choice: str) -> float:
    context_ids = tokenizer(context)["input_ids"]
    ids = tokenizer(f"{context} {choice}")["input_ids"]
    assert ids[: len(context_ids)] == context_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(len(context_ids), len(ids)))


@pytest.fixture(scope="module")
def setting():
    tokenizer = fables_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)).eval()
    items = Fables(FablesArgs(pretraining_stories=5, fact_repeats=0, demonstrations=5, train_prompts=5)).build()
    inputs = SimpleNamespace(config=SimpleNamespace(probes=True, batch_size=7), tokenizer=tokenizer, probe_fewshot=[])
    return model, tokenizer, items.heldout_probes, inputs


def test_cloze_items_pick_the_most_likely_choice(setting):
    model, tokenizer, items, inputs = setting
    expected = []
    for item in items:
        scores = [_hand_loglik(model, tokenizer, item["context"], c) for c in item["choices"]]
        expected.append(float(max(range(4), key=scores.__getitem__) == item["answer"]))
    assert probe_correct(model, inputs, items) == expected
    # the random model gets some right and some wrong, so the comparison means something
    assert 0 < sum(expected) < len(expected)
    # with every answer moved to the model's choice, every item is correct
    moved = [{**item, "answer": max(range(4), key=lambda i: _hand_loglik(model, tokenizer, item["context"],
                                                                          item["choices"][i]))} for item in items[:6]]
    assert probe_correct(model, inputs, moved) == [1.0] * 6


def test_mixed_probe_formats_are_refused(setting):
    model, _, items, inputs = setting
    mmlu = {"subject": "animals", "question": "where does the fox live ?", "choices": ["a", "b", "c", "d"],
            "answer": 0}
    with pytest.raises(ValueError, match="mixes cloze items"):
        probe_correct(model, inputs, [items[0], mmlu])
