"""Sampling responses from a policy, and turning samples into training batches.

:class:`Sampler` samples with :func:`zoo.decoding.decode` for transformers causal LMs (batched
prefill, KV cache, each row dropped from the batch at its EOS; ``generate``'s tokens under greedy
decoding, its distribution under sampling) and with Hugging Face ``generate`` for other models,
and returns a :class:`Generation`: the sampled sequences, which tokens are the response, and,
when asked for (``record_logps=True``), the log-probability of every sampled token. Settings come as
one :class:`zoo.sampling.Sampling` (or its fields as keywords).

What ``token_logps`` means: ``log π(y_t | x, y_<t)`` under the model's *own* distribution, the
raw logits at temperature 1 with no top-k / top-p truncation, even when the tokens were drawn
with another temperature or truncation. That is the quantity PPO ratios and KL penalties are
defined on; the sampling distribution itself is π^(1/T) renormalised (and truncated), so at
T ≠ 1 these are not the probabilities the tokens were drawn with. They are read from the logits
``generate`` computes anyway, so no second forward pass is needed; they agree with a separate
forward pass up to floating-point error. Recording costs a full-vocabulary log-softmax per
generated token, so it is off unless a caller uses the values.

Sampling is deterministic for a given ``seed`` (the global RNG is forked, so the caller's random
stream is left untouched); ``seed=None`` draws from the global RNG. ``temperature=0`` is greedy
decoding.

One module because every sampler caller (online algorithms, ``zoo pairs``, the benchmark's
evaluation, best-of-n) shares both halves, the sampler and the conversion of its samples into
training batches; hence its length (~390 lines).
"""
from __future__ import annotations

import contextlib

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from zoo.batch import Batch
from zoo.decoding import decode, supports_decoding
from zoo.sampling import Sampling


@dataclass
class Generation:
    """Sampled responses for a batch of prompts.

    Attributes:
        sequences: ``[N, P+L]`` the left-padded prompt, then the right-padded response.
        attention_mask: ``[N, P+L]`` 1 on real prompt tokens and on response tokens up to and
            including the first EOS.
        response_mask: ``[N, P+L]`` bool, True on the generated tokens (EOS included).
        token_logps: ``[N, P+L]`` float32, ``log π(sequences[:, t] | sequences[:, <t])`` on the
            response tokens (see the module docstring), 0 elsewhere; None unless the sampler was
            asked to record them.
        texts: the ``N`` decoded responses (special tokens removed).
        prompt_index: ``[N]`` the prompt each row was sampled for; row ``i * n + j`` is sample ``j``
            of prompt ``i`` when ``n`` samples are drawn per prompt.
        prompt_length: ``P``, the padded prompt width.
    """

    sequences: Tensor
    attention_mask: Tensor
    response_mask: Tensor
    token_logps: Tensor | None
    texts: list[str]
    prompt_index: Tensor
    prompt_length: int = 0

    @property
    def response_lengths(self) -> Tensor:
        return self.response_mask.sum(-1)


class _RawLogpRecorder(LogitsProcessor):
    """Records ``log_softmax`` of the unprocessed logits at each step.

    ``generate`` calls processors before it samples, so the token chosen at step ``t`` is only
    visible at step ``t + 1``; the recorder keeps one step of log-probs pending and gathers it
    then. Keeping one ``[N, V]`` tensor instead of every step's logits (``output_logits``) keeps
    memory flat for large vocabularies and long responses.
    """

    def __init__(self) -> None:
        self.gathered: list[Tensor] = []
        self.pending: Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._gather(input_ids[:, -1])
        self.pending = scores.float().log_softmax(-1)
        return scores

    def _gather(self, tokens: Tensor) -> None:
        if self.pending is not None:
            self.gathered.append(self.pending.gather(-1, tokens[:, None]).squeeze(-1))
            self.pending = None

    def finish(self, last_tokens: Tensor) -> Tensor:
        """``[N, L]`` log-probs of the ``L`` generated tokens."""
        self._gather(last_tokens)
        return torch.stack(self.gathered, dim=1)


class _Recorded:
    """Log-probs :func:`zoo.decoding.decode` recorded, read like a :class:`_RawLogpRecorder`'s."""

    def __init__(self, token_logps: Tensor) -> None:
        self.token_logps = token_logps

    def finish(self, last_tokens: Tensor) -> Tensor:
        return self.token_logps


class _ProgressTicker(LogitsProcessor):
    """Advances a :class:`zoo.progress.Progress` once per generated position (it changes no score)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.progress.advance()
        return scores


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids of the tokenizer plus those the model's generation config stops at (chat models
    often end turns with a token other than the tokenizer's EOS)."""
    from zoo.data.tokenize import response_end_id

    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = [configured] if isinstance(configured, int) else list(configured or [])
    # ...and the token training ends responses with (the chat template's end of turn).
    for token in configured + [response_end_id(tokenizer)]:
        if token is not None and token not in ids:
            ids.append(token)
    return ids


def first_eos_mask(tokens: Tensor, eos_ids: Sequence[int]) -> Tensor:
    """``[N, L]`` bool, True up to and including the first EOS of each row (all True without one).

    Computed from positions rather than ``tokens != pad`` because many tokenizers pad with EOS.
    """
    is_eos = torch.zeros_like(tokens, dtype=torch.bool)
    for token in eos_ids:
        is_eos |= tokens == token
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return eos_before == 0


#: Responses and response tokens every :class:`Sampler` in this process has generated, so a caller
#: can report what a run sampled (:func:`count_generation`).
GENERATED = {"sequences": 0, "tokens": 0}


class count_generation:
    """``with count_generation() as counted: ...`` then ``counted["sequences"]``, ``counted["tokens"]``:
    what the samplers generated inside the block."""

    def __enter__(self) -> dict[str, int]:
        self._start = dict(GENERATED)
        self.counted = {"sequences": 0, "tokens": 0}
        return self.counted

    def __exit__(self, *exc) -> None:
        for key in self.counted:
            self.counted[key] = GENERATED[key] - self._start[key]


class Sampler:
    """Samples responses from ``model`` for left-padded prompts. See the module docstring."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def _generation_config(self, sampling: Sampling) -> GenerationConfig:
        # Every knob that changes what is sampled is set explicitly: generate() fills unset ones from
        # the model's own generation_config (e.g. a chat model's top_p or repetition_penalty).
        s = sampling
        knobs = {} if s.temperature == 0 else {
            "temperature": float(s.temperature), "top_k": int(s.top_k), "top_p": float(s.top_p), "min_p": 0.0,
            "typical_p": 1.0}
        return GenerationConfig(
            max_new_tokens=s.max_new_tokens, do_sample=s.temperature != 0, num_beams=1, repetition_penalty=1.0,
            no_repeat_ngram_size=0, min_new_tokens=0, num_return_sequences=s.samples_per_prompt,
            eos_token_id=self.eos_ids, pad_token_id=self.pad_id, return_dict_in_generate=True, use_cache=True,
            **knobs,
        )

    @torch.no_grad()
    def __call__(self, prompt_ids: Tensor, prompt_attention_mask: Tensor, sampling: Sampling | None = None, *,
                 seed: int | None = None, record_logps: bool = False, progress: str | None = None,
                 **settings: Any) -> Generation:
        """Sample ``sampling.samples_per_prompt`` responses per prompt.

        ``settings`` are :class:`zoo.sampling.Sampling` fields given as keywords instead of
        ``sampling``; ``record_logps`` fills :attr:`Generation.token_logps`. ``progress`` names
        the phase for a progress report counted in generated positions, which in a log file
        appears only when the sampling takes longer than the progress interval
        (:class:`zoo.progress.Progress` with ``announce=False``).
        """
        from zoo.progress import Progress

        if sampling is None:
            sampling = Sampling(**settings)
        elif settings:
            raise TypeError(f"give the sampling settings either as a Sampling or as keywords, not both: {settings}")
        device = next(self.model.parameters()).device
        prompt_ids, prompt_attention_mask = prompt_ids.to(device), prompt_attention_mask.to(device)
        config = self._generation_config(sampling)
        recorder = _RawLogpRecorder() if record_logps else None
        reporter = Progress(progress, sampling.max_new_tokens, "tokens", announce=False) if progress else None
        processors = [p for p in (recorder, reporter and _ProgressTicker(reporter)) if p is not None]
        was_training = self.model.training
        self.model.eval()
        try:
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices, enabled=seed is not None), \
                    (reporter if reporter is not None else contextlib.nullcontext()):
                if seed is not None:
                    torch.manual_seed(seed)
                if supports_decoding(self.model):
                    sequences, recorder = self._decode(prompt_ids, prompt_attention_mask, sampling, record_logps,
                                                       reporter)
                else:
                    sequences = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_attention_mask,
                                                    generation_config=config,
                                                    logits_processor=LogitsProcessorList(processors)).sequences
        finally:
            self.model.train(was_training)
        return self._assemble(sequences, prompt_attention_mask, recorder, sampling.samples_per_prompt)

    def _decode(self, prompt_ids: Tensor, prompt_attention_mask: Tensor, sampling: Sampling, record_logps: bool,
                reporter: Any) -> tuple[Tensor, Any]:
        """:func:`zoo.decoding.decode` with ``generate``'s settings: (sequences, recorded log-probs or None)."""
        n = sampling.samples_per_prompt
        ids, mask = prompt_ids.repeat_interleave(n, dim=0), prompt_attention_mask.repeat_interleave(n, dim=0)
        decoded = decode(self.model, ids, mask, max_new_tokens=sampling.max_new_tokens, eos_ids=self.eos_ids,
                         pad_id=self.pad_id, temperature=float(sampling.temperature), top_k=int(sampling.top_k),
                         top_p=float(sampling.top_p), record_logps=record_logps,
                         tick=reporter.advance if reporter is not None else None)
        recorded = None if decoded.token_logps is None else _Recorded(decoded.token_logps)
        return torch.cat([ids, decoded.tokens], dim=1), recorded

    def _assemble(self, sequences: Tensor, prompt_attention_mask: Tensor, recorder: _RawLogpRecorder | None,
                  n: int) -> Generation:
        prompt_width = prompt_attention_mask.shape[1]
        response = sequences[:, prompt_width:]
        keep = first_eos_mask(response, self.eos_ids)
        GENERATED["sequences"] += int(response.shape[0])
        GENERATED["tokens"] += int(keep.sum())
        logps = None if recorder is None else recorder.finish(response[:, -1]) * keep
        response = response.masked_fill(~keep, self.pad_id)
        prompt_mask = prompt_attention_mask.repeat_interleave(n, dim=0)
        full_sequences = torch.cat([sequences[:, :prompt_width], response], dim=1)
        zeros = torch.zeros_like(prompt_mask, dtype=torch.bool)
        texts = self.tokenizer.batch_decode([row[mask].tolist() for row, mask in zip(response, keep)],
                                            skip_special_tokens=True)
        return Generation(
            sequences=full_sequences,
            attention_mask=torch.cat([prompt_mask, keep.long()], dim=1),
            response_mask=torch.cat([zeros, keep], dim=1),
            token_logps=None if logps is None else
            torch.cat([torch.zeros_like(prompt_mask, dtype=torch.float32), logps], dim=1),
            texts=texts,
            prompt_index=torch.arange(prompt_attention_mask.shape[0], device=sequences.device).repeat_interleave(n),
            prompt_length=prompt_width,
        )


# ----- from samples to training batches -------------------------------------------------------


def encode_prompts(tokenizer: Any, prompts: Sequence[str], max_prompt_length: int = 128) -> tuple[Tensor, Tensor]:
    """Left-padded ``[B, P]`` prompt ids and mask, tokenised the way the data pipeline does it."""
    from zoo.data.examples import Example
    from zoo.data.tokenize import ExampleTokenizer

    encode = ExampleTokenizer(tokenizer, max_prompt_length + 1, max_prompt_length)
    rows = [encode(Example(prompt, [], None, i, "prompts")).prompt_ids for i, prompt in enumerate(prompts)]
    width = max(1, max(len(row) for row in rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row)
            mask[i, width - len(row):] = 1
    return ids, mask


def right_padded(generation: Generation, rows: Tensor | None = None, *, pad_id: int = 0
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Re-lay generated rows as the collators do: ``prompt + response`` from position 0, right-padded.

    Returns ``input_ids``, ``attention_mask``, ``loss_mask`` (the response tokens) and
    ``token_logps`` (the generation's recorded log-probs moved along with their tokens, or None
    when none were recorded). Training forward
    passes then see the same positions as ``generate`` did (which counts positions from the
    first real prompt token), for any kind of position embedding.
    """
    index = torch.arange(generation.sequences.shape[0], device=generation.sequences.device) if rows is None else rows
    sequences = generation.sequences[index]
    real = generation.attention_mask[index].bool()
    response = generation.response_mask[index]
    logps = None if generation.token_logps is None else generation.token_logps[index]
    lengths = real.sum(-1)
    width = max(1, int(lengths.max())) if lengths.numel() else 1
    # A stable sort moves the real tokens to the front in their original order.
    order = torch.sort((~real).long(), dim=1, stable=True).indices[:, :width]
    input_ids = sequences.gather(1, order)
    attention_mask = real.gather(1, order)
    loss_mask = response.gather(1, order) & attention_mask
    token_logps = None if logps is None else logps.gather(1, order) * loss_mask
    input_ids = input_ids.masked_fill(~attention_mask, pad_id)
    return input_ids, attention_mask.long(), loss_mask, token_logps


def generation_batch(generation: Generation, prompts: Sequence[str] | None, *, rows: Tensor | None = None,
                     group_size: int = 1, pad_id: int = 0, extras: dict[str, Any] | None = None) -> Batch:
    """A :class:`Batch` of generated responses (right-padded rows, response tokens in ``loss_mask``).

    ``rows`` selects which generated rows to keep (all by default); ``group_size`` is ``k`` of the
    batch layout (consecutive rows form one example). ``prompts`` are the texts of the original
    prompts, indexed by ``generation.prompt_index``.
    """
    index = torch.arange(generation.sequences.shape[0], device=generation.sequences.device) if rows is None else rows
    input_ids, attention_mask, loss_mask, _ = right_padded(generation, index, pad_id=pad_id)
    n = input_ids.shape[0]
    if n % group_size:
        raise ValueError(f"{n} rows do not split into groups of {group_size}")
    prompt_index = generation.prompt_index[index]
    prompt_texts = None
    if prompts is not None:
        prompt_texts = [prompts[int(i)] for i in prompt_index[::group_size]]
    return Batch(input_ids=input_ids, attention_mask=attention_mask, loss_mask=loss_mask, group_size=group_size,
                 valid=torch.ones((n // group_size, group_size), dtype=torch.bool, device=input_ids.device),
                 prompts=prompt_texts, extras=dict(extras or {}))


def take_rows(batch: Batch, index: Tensor) -> Batch:
    """The examples ``index`` of a ``group_size = 1`` batch (tensors in ``extras`` included).

    Tensors whose first dimension is the number of rows are indexed; everything else is kept.
    """
    if batch.group_size != 1:
        raise ValueError("take_rows needs a batch with one response per example")
    n = batch.input_ids.shape[0]
    positions = index.tolist()

    def pick(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim and value.shape[0] == n:
            return value[index.to(value.device)]
        if isinstance(value, list) and len(value) == n:
            return [value[i] for i in positions]
        if isinstance(value, dict):
            return {key: pick(item) for key, item in value.items()}
        return value

    fields = {name: pick(getattr(batch, name)) for name in batch.__dataclass_fields__ if name != "group_size"}
    # Widths shrink to the longest kept row, so minibatches do not pay for padding of others.
    width = max(1, int(fields["attention_mask"].sum(-1).max())) if len(positions) else 1
    for name in ("input_ids", "attention_mask", "loss_mask"):
        fields[name] = fields[name][:, :width]
    for name, value in list(fields["extras"].items()):
        if isinstance(value, Tensor) and value.ndim == 2 and value.shape[1] == batch.input_ids.shape[1]:
            fields["extras"][name] = value[:, :width]
    return Batch(group_size=1, **fields)


@dataclass
class BestOfN:
    """Best-of-n decoding results for ``B`` prompts.

    ``texts``/``scores``: the best response of each prompt and its reward; ``all_texts`` and
    ``all_scores`` (``[B, n]``) hold every sample.
    """

    texts: list[str]
    scores: Tensor
    all_texts: list[list[str]]
    all_scores: Tensor
    index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


def select_best(scores: Tensor, min_score: float | None = None) -> tuple[Tensor, Tensor]:
    """The best sample of each prompt.

    Args:
        scores: ``[B, n]`` rewards of ``n`` samples per prompt.
        min_score: keep a prompt only when its best reward is at least this (None: keep all).
    Returns:
        ``index`` ``[B]`` of the best sample (the first one on ties) and ``keep`` ``[B]`` bool.
    """
    best, index = scores.max(dim=1)
    keep = torch.ones_like(best, dtype=torch.bool) if min_score is None else best >= min_score
    return index, keep


def sample_texts(sampler: Sampler, prompts: Sequence[str], *, n: int, batch_size: int = 16,
                 max_prompt_length: int = 128, seed: int | None = None, **sampling: Any
                 ) -> Iterator[tuple[list[str], list[list[str]]]]:
    """``n`` sampled responses per prompt, chunk by chunk: yields ``(chunk_prompts, responses)``.

    Chunk ``j`` holds ``batch_size`` prompts and is sampled with seed ``seed + j * batch_size``, so
    a result depends on the seed and the batch size, not on who asks. ``sampling`` holds the other
    :class:`zoo.sampling.Sampling` fields (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``).
    """
    settings = Sampling(samples_per_prompt=n, **sampling)
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start: start + batch_size])
        ids, mask = encode_prompts(sampler.tokenizer, chunk, max_prompt_length)
        generation = sampler(ids, mask, settings, seed=None if seed is None else seed + start)
        yield chunk, [generation.texts[b * n:(b + 1) * n] for b in range(len(chunk))]


def best_of_n(sampler: Sampler, reward: Any, prompts: Sequence[str], *, n: int = 4, batch_size: int = 16,
              max_prompt_length: int = 128, seed: int | None = None, **sampling: Any) -> BestOfN:
    """Best-of-n decoding (no training): sample ``n`` responses per prompt, return the highest-reward one.

    ``reward`` is any reward source (``reward.score(prompts, responses) -> [N]``); ``sampling``
    goes to the sampler (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``). Its KL to
    the sampling policy is at most ``log n − (n − 1)/n`` nats (Stiennon et al. 2020).
    """
    from zoo.progress import track

    texts, all_texts, best_scores, all_scores, indices = [], [], [], [], []
    chunks = sample_texts(sampler, prompts, n=n, batch_size=batch_size, max_prompt_length=max_prompt_length,
                          seed=seed, **sampling)
    for chunk, groups in track(chunks, f"best-of-{n}", -(-len(prompts) // batch_size), "batches"):
        repeated = [prompt for prompt in chunk for _ in range(n)]
        scores = reward.score(repeated, [text for group in groups for text in group]).view(len(chunk), n)
        index, _ = select_best(scores)
        all_texts += groups
        texts += [group[int(i)] for group, i in zip(groups, index)]
        best_scores.append(scores.gather(1, index[:, None]).squeeze(1))
        all_scores.append(scores)
        indices.append(index)
    return BestOfN(texts, torch.cat(best_scores), all_texts, torch.cat(all_scores), torch.cat(indices))
