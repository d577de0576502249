"""Unpaired data (``data_shape: unpaired``): one labelled completion per example, plus the mismatched
pair that a KL reference point is estimated from.

After the rows are read, tokenised and split (so that the two halves of a pair never straddle the
train / evaluation split), every example is laid out as ``k = 2`` responses:

* slot 0, the completion itself, with its label as the score (1 desirable, 0 undesirable);
* slot 1, the completion of *another* example scored after this example's prompt, cut to fit
  ``max_length`` after it: the completions shifted cyclically by the smallest ``s`` that puts every
  one after another prompt (example ``i`` takes completion ``i − s``), so that the mismatched
  completions are the same set as the matched ones. ``s`` is 1 for data whose neighbours have
  different prompts, as in TRL's ``KTOTrainer`` (which shifts by one, ``[y_n, y_1, ..., y_{n-1}]``,
  when it prepares the data set), and 2 for pairs read as two completions, whose chosen and rejected
  completions are neighbours. When no shift up to :data:`MAX_SHIFT` works (long runs of one prompt),
  each example takes the nearest earlier completion of another prompt.

The mismatched pairs are fixed per example when the data is loaded, as in TRL, rather than drawn
per batch; that is also what lets the reference cache hold their reference log-probs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo.data.tokenize import TokenizedExample
from zoo.errors import DataError

#: The largest uniform shift tried before falling back to each example's nearest other prompt.
MAX_SHIFT = 256


def single_completions(examples: list[TokenizedExample]) -> list[TokenizedExample]:
    """One example per labelled completion (a pair's chosen and rejected become two)."""
    out = []
    for example in examples:
        for ids, label in zip(example.response_ids, example.scores or []):
            out.append(TokenizedExample(example.prompt_ids, [ids], [label], example.prompt, example.row,
                                        example.source, example.truncated, example.prompt_cut,
                                        example.prompt_messages))
    return out


def with_mismatched_pairs(examples: list[TokenizedExample], max_length: int, where: str) -> list[TokenizedExample]:
    """Each single-completion example with its mismatched completion as a second response.

    ``where`` names the split in the error raised when it holds fewer than two distinct prompts.
    """
    import torch

    if not examples:
        return []
    groups: dict[tuple[int, ...], int] = {}
    keys = torch.tensor([groups.setdefault(tuple(e.prompt_ids), len(groups)) for e in examples])
    if len(groups) < 2:
        raise DataError(f"{where} has {len(examples)} completion(s) of a single prompt; unpaired data needs at least "
                        f"two distinct prompts in each split, since its KL reference point scores completions after "
                        f"prompts they were not written for (a held-out split of one pair: raise data.eval_fraction)",
                        source=examples[0].source)
    out = []
    for example, source in zip(examples, mismatched_sources(keys)):
        mismatched = examples[source].response_ids[0][: max_length - len(example.prompt_ids)]
        out.append(TokenizedExample(example.prompt_ids, [example.response_ids[0], mismatched], example.scores,
                                    example.prompt, example.row, example.source, example.truncated,
                                    example.prompt_cut, example.prompt_messages))
    return out


def mismatched_sources(keys: torch.Tensor) -> list[int]:
    """For prompt keys ``[n]`` (at least two distinct), the index of each example's mismatched completion."""
    n = len(keys)
    for shift in range(1, min(n, MAX_SHIFT + 1)):
        if (keys != keys.roll(shift)).all():
            return [(i - shift) % n for i in range(n)]
    key = keys.tolist()
    return [next(j % n for j in range(i - 1, i - n, -1) if key[j % n] != key[i]) for i in range(n)]


def unpaired_examples(examples: list[TokenizedExample], max_length: int, where: str) -> list[TokenizedExample]:
    """Tokenised unpaired (or pairwise) examples as the ``unpaired`` shape trains on them."""
    return with_mismatched_pairs(single_completions(examples), max_length, where)
