"""Unpaired data (``data_shape: unpaired``): one labelled completion per example, plus the mismatched
pair that a KL reference point is estimated from.

After the rows are read, tokenised and split (so that the two halves of a pair never straddle the
train / evaluation split), every example is laid out as ``k = 2`` responses:

* slot 0, the completion itself, with its label as the score (1 desirable, 0 undesirable);
* slot 1, the completion of *another* example scored after this example's prompt: the nearest
  example before it in load order (cyclically, the last before the first) whose prompt differs,
  cut to fit ``max_length`` after this prompt.

Slot 1 is what TRL's ``KTOTrainer`` builds for its KL term (the completions shifted by one against
the prompts, ``[y_n, y_1, ..., y_{n-1}]``, when the data set is prepared), so the mismatched pairs of a batch are fixed per
example rather than drawn per batch; that is also what lets the reference cache hold their
reference log-probs. Skipping prompts equal to the example's own matters for data derived from
pairs, where the chosen and rejected completions of one prompt are neighbours.
"""
from __future__ import annotations

from zoo.data.tokenize import TokenizedExample
from zoo.errors import DataError


def single_completions(examples: list[TokenizedExample]) -> list[TokenizedExample]:
    """One example per labelled completion (a pair's chosen and rejected become two)."""
    out = []
    for example in examples:
        for ids, label in zip(example.response_ids, example.scores or []):
            out.append(TokenizedExample(example.prompt_ids, [ids], [label], example.prompt, example.row,
                                        example.source, example.truncated, example.prompt_cut))
    return out


def with_mismatched_pairs(examples: list[TokenizedExample], max_length: int, where: str) -> list[TokenizedExample]:
    """Each single-completion example with its mismatched completion as a second response.

    ``where`` names the split in the error raised when it holds fewer than two distinct prompts.
    """
    if not examples:
        return []
    if len({tuple(e.prompt_ids) for e in examples}) < 2:
        raise DataError(f"{where} has {len(examples)} completion(s) of a single prompt; unpaired data needs at least "
                        f"two distinct prompts in each split, since its KL reference point scores completions after "
                        f"prompts they were not written for", source=examples[0].source)
    n, out = len(examples), []
    for i, example in enumerate(examples):
        j = next(j % n for j in range(i - 1, i - n, -1) if examples[j % n].prompt_ids != example.prompt_ids)
        mismatched = examples[j].response_ids[0][: max_length - len(example.prompt_ids)]
        out.append(TokenizedExample(example.prompt_ids, [example.response_ids[0], mismatched], example.scores,
                                    example.prompt, example.row, example.source, example.truncated,
                                    example.prompt_cut))
    return out


def unpaired_examples(examples: list[TokenizedExample], max_length: int, where: str) -> list[TokenizedExample]:
    """Tokenised unpaired (or pairwise) examples as the ``unpaired`` shape trains on them."""
    return with_mismatched_pairs(single_completions(examples), max_length, where)
