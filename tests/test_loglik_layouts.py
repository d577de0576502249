"""The log-likelihood scorer's two layouts: "blocks" (one unpadded row after the prefix cache) against
"batched" (right-padded rows), on real MMLU questions and on requests with nothing shared."""
from __future__ import annotations

import pytest
import torch

from zoo.eval.loglik import LoglikScorer, make_requests
from zoo.eval.mmlu import load_split, score_multiple_choice
from zoo.tiny import tiny_model


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return tiny_model(tokenizer, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096).eval()


@pytest.fixture
def mmlu(shared_data):
    subjects = ["abstract_algebra", "virology"]
    test, _ = load_split(subjects, "test", shared_data, limit=5)
    dev, _ = load_split(subjects, "dev", shared_data)
    return [item for subject in subjects for item in test[subject]], dev


@pytest.mark.parametrize("batch_size", [3, 16])
def test_blocks_score_real_questions_as_the_padded_batches_do(model, tokenizer, mmlu, batch_size):
    items, dev = mmlu
    batched = score_multiple_choice(model, tokenizer, items, dev, num_fewshot=2, batch_size=batch_size,
                                    layout="batched")
    blocks = score_multiple_choice(model, tokenizer, items, dev, num_fewshot=2, batch_size=batch_size,
                                   layout="blocks")
    for a, b in zip(blocks, batched):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4, rel=1e-5)
        assert a["prediction"] == b["prediction"] and a["is_greedy"] == b["is_greedy"]


def test_blocks_without_a_shared_prefix_and_with_long_continuations(model, tokenizer):
    """Unrelated contexts (no prefix group: each request alone in its block) and continuations of
    several tokens, so several positions of every block are read."""
    pairs = [("The capital of France is", " Paris, a city on the Seine."), ("1 2 3 4", " 5 6 7"),
             ("Once upon a time there lived a very old king who had three daughters", " and no son."),
             ("Q: What is two plus two?\nA:", " four")]
    requests = [r for context, continuation in pairs for r in make_requests(tokenizer, context, [continuation])]
    batched = LoglikScorer(model, tokenizer, batch_size=4, layout="batched")(requests)
    blocks = LoglikScorer(model, tokenizer, batch_size=4, layout="blocks")(requests)
    alone = [LoglikScorer(model, tokenizer, batch_size=1, layout="batched", share_prefix=False)([r])[0]
             for r in requests]
    for (b, greedy_b), (p, greedy_p), (a, _) in zip(blocks, batched, alone):
        assert b == pytest.approx(p, abs=1e-4) and b == pytest.approx(a, abs=1e-4)
        assert greedy_b == greedy_p


def test_a_model_that_cannot_take_blocks_is_scored_batched(tokenizer):
    eager = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                       num_key_value_heads=1).eval()
    eager.set_attn_implementation("eager")
    assert not LoglikScorer(eager, tokenizer, layout="blocks").blocks
    with pytest.raises(ValueError, match="layout must be one of blocks, batched"):
        LoglikScorer(eager, tokenizer, layout="rows")
