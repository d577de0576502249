"""zoo.batch.left_padded: the prompt layout of sampling (encode_prompts) and of the collators."""
from __future__ import annotations

import torch

from zoo.batch import left_padded


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
