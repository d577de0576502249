"""Collators: one for every data shape, all producing the flattened :class:`zoo.Batch` layout."""
from __future__ import annotations

from zoo.batch import Batch, left_padded, right_padded
from zoo.data.tokenize import TokenizedExample


class Collator:
    """Pads a list of tokenised examples into a :class:`Batch`.

    Responses are right-padded rows of ``prompt + response``; prompts are also returned
    left-padded (``prompt_ids``), which is what generation needs. Examples with fewer than ``k``
    responses get their first response repeated in the empty slots, marked invalid.

    With ``pack_capacity`` set (``data.padding_free``), the batch also carries the same sequences
    packed into rows of that many tokens (:mod:`zoo.forward.packing`). With ``shared_prefix``
    (``data.shared_prefix``) it carries each example's prompt once, followed by its responses
    (:mod:`zoo.forward.shared_prefix`; all in one row when ``pack_capacity`` is set too). With
    ``reference_logps`` set (a :class:`zoo.refcache.ReferenceTable`), each batch gets its cached
    reference log-probs.
    """

    def __init__(self, pad_token_id: int, *, train_on_prompt: bool = False, pack_capacity: int | None = None,
                 shared_prefix: bool = False):
        self.pad_token_id = pad_token_id
        self.train_on_prompt = train_on_prompt
        self.pack_capacity = pack_capacity
        self.shared_prefix = shared_prefix
        self.reference_logps = None

    def __call__(self, examples: list[TokenizedExample]) -> Batch:
        batch = self.pad(examples)
        if self.reference_logps is not None:
            batch.reference_logps = self.reference_logps.lookup(batch.example_ids, batch.group_size)
        if self.shared_prefix:
            from zoo.forward.shared_prefix import share_prefixes  # imports transformers' attention registry

            batch.packed = share_prefixes(batch.input_ids, batch.attention_mask.sum(-1).tolist(), batch.loss_mask,
                                          batch.group_size, self.pad_token_id, one_row=self.pack_capacity is not None)
        elif self.pack_capacity is not None:
            from zoo.forward.packing import pack_sequences  # imports transformers' attention registry

            batch.packed = pack_sequences(batch.input_ids, batch.attention_mask.sum(-1).tolist(), self.pack_capacity,
                                          self.pad_token_id)
        return batch

    def pad(self, examples: list[TokenizedExample]) -> Batch:
        """The padded batch alone (no packing, no cached reference log-probs)."""
        import torch

        k = max(1, max(len(e.response_ids) for e in examples))
        sequences, prompt_lengths, valid = [], [], []
        for example in examples:
            responses = example.response_ids or [[]]
            for j in range(k):
                response = responses[j] if j < len(responses) else responses[0]
                sequences.append(example.prompt_ids + response)
                prompt_lengths.append(len(example.prompt_ids))
                valid.append(j < len(example.response_ids))
        input_ids, attention_mask = right_padded(sequences, self.pad_token_id)
        loss_mask = torch.zeros(input_ids.shape, dtype=torch.bool)
        for i, (sequence, prompt_len) in enumerate(zip(sequences, prompt_lengths)):
            loss_mask[i, 0 if self.train_on_prompt else prompt_len: len(sequence)] = True

        prompt_ids, prompt_mask = left_padded([e.prompt_ids for e in examples], self.pad_token_id)

        scores = None
        if any(e.scores is not None for e in examples):
            scores = torch.zeros((len(examples), k), dtype=torch.float32)
            for i, example in enumerate(examples):
                if example.scores is not None:
                    scores[i, : len(example.scores)] = torch.tensor(example.scores, dtype=torch.float32)
        return Batch(
            input_ids=input_ids, attention_mask=attention_mask, loss_mask=loss_mask, group_size=k,
            valid=torch.tensor(valid, dtype=torch.bool).view(len(examples), k), scores=scores,
            example_ids=[e.id for e in examples], prompt_ids=prompt_ids, prompt_attention_mask=prompt_mask,
            prompts=[e.prompt for e in examples],
        )
