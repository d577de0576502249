"""zoo.batch.left_padded / right_padded: the prompt layout of sampling (encode_prompts, the collators) and the
sequence layout of training and scoring (the collators, the reward model)."""
from __future__ import annotations

import torch

from zoo.batch import left_padded, right_padded


def test_rows_are_aligned_right_with_their_mask():
    ids, mask = left_padded([[5, 6], [7], []], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7], [0, 0]]
    assert mask.tolist() == [[1, 1], [0, 1], [0, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_min_width_pads_further():
    ids, mask = left_padded([[], [3]], pad_id=9, min_width=3)
    assert ids.tolist() == [[9, 9, 9], [9, 9, 3]]
    assert mask.tolist() == [[0, 0, 0], [0, 0, 1]]
    empty_ids, _ = left_padded([[]], pad_id=1, min_width=1)
    assert empty_ids.tolist() == [[1]]


def test_right_padding_aligns_rows_left():
    ids, mask = right_padded([[5, 6], [7], []], pad_id=0)
    assert ids.tolist() == [[5, 6], [7, 0], [0, 0]]
    assert mask.tolist() == [[1, 1], [1, 0], [0, 0]]
    ids, mask = right_padded([[4]], pad_id=2, min_width=3)
    assert ids.tolist() == [[4, 2, 2]] and mask.tolist() == [[1, 0, 0]]
