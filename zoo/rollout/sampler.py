"""Sampling responses from a policy.

:class:`Sampler` samples with :func:`zoo.rollout.decoding.decode` for transformers causal LMs (batched
prefill, KV cache, each row dropped from the batch at its EOS; ``generate``'s tokens under greedy
decoding, its distribution under sampling) and with Hugging Face ``generate`` for other models,
and returns a :class:`Generation`, the rollout every online algorithm starts from: the sampled
sequences, which tokens are the response, whether each response ``finished`` (ended with one of the
sampler's own stop tokens rather than at ``max_new_tokens``), and, when asked for
(``record_logps=True``), the log-probability of every sampled token. EOS detection lives here
only: :func:`first_eos_mask` and :func:`ends_with_stop` read the sampler's stop set. Settings come as
one :class:`zoo.rollout.settings.Sampling` (or its fields as keywords).

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

Turning samples into training batches (:func:`generation_batch`, :func:`right_padded`, ...) lives
in :mod:`zoo.rollout.batches`, which needs no transformers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from zoo.rollout.batches import Generation, encode_prompts, select_best
from zoo.rollout.decoding import decode, supports_decoding
from zoo.rollout.packed import warn_if_unpacked
from zoo.rollout.settings import Sampling


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
    """Log-probs :func:`zoo.rollout.decoding.decode` recorded, read like a :class:`_RawLogpRecorder`'s."""

    def __init__(self, token_logps: Tensor) -> None:
        self.token_logps = token_logps

    def finish(self, last_tokens: Tensor) -> Tensor:
        return self.token_logps


class _ProgressTicker(LogitsProcessor):
    """Advances a :class:`zoo.progress.Progress` by the tokens each decoding step generates: one
    per sequence that has not ended yet (it changes no score). A finished sequence keeps being
    padded by ``generate``; those pads are not counted, so the count is the responses' real tokens
    (their EOS included, as :func:`first_eos_mask` keeps it) and the rate is tokens per second."""

    def __init__(self, progress: Any, prompt_width: int, eos_ids: Sequence[int]) -> None:
        self.progress, self.prompt_width = progress, prompt_width
        self.eos_ids = torch.tensor(list(eos_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_width:]
        ended = torch.isin(generated, self.eos_ids.to(generated.device)).any(dim=1)
        self.progress.advance(int((~ended).sum()))
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


def _is_stop(tokens: Tensor, stop_ids: Sequence[int]) -> Tensor:
    is_stop = torch.zeros_like(tokens, dtype=torch.bool)
    for token in stop_ids:
        is_stop |= tokens == token
    return is_stop


def first_eos_mask(tokens: Tensor, eos_ids: Sequence[int]) -> Tensor:
    """``[N, L]`` bool, True up to and including the first EOS of each row (all True without one).

    Computed from positions rather than ``tokens != pad`` because many tokenizers pad with EOS.
    """
    is_eos = _is_stop(tokens, eos_ids)
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return eos_before == 0


def ends_with_stop(tokens: Tensor, stop_ids: Sequence[int]) -> Tensor:
    """``[N]`` bool: whether each row of ``[N, L]`` response tokens holds a stop token, i.e. the
    response ended by itself (rows are cut after their first stop token, :func:`first_eos_mask`)."""
    return _is_stop(tokens, stop_ids).any(dim=-1)


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

        ``settings`` are :class:`zoo.rollout.settings.Sampling` fields given as keywords instead of
        ``sampling``; ``record_logps`` fills :attr:`Generation.token_logps`. ``progress`` names
        the phase for a progress report counted in generated tokens (tokens/s), which in a log
        file appears only when the sampling takes longer than the progress interval
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
        # No total: responses end when they end, so any bound would make the time left a guess.
        reporter = Progress(progress, None, "tokens", announce=False) if progress else None
        ticker = reporter and _ProgressTicker(reporter, prompt_ids.shape[1], self.eos_ids)
        processors = [p for p in (recorder, ticker) if p is not None]
        was_training = self.model.training
        self.model.eval()
        try:
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices, enabled=seed is not None), \
                    (reporter if reporter is not None else contextlib.nullcontext()):
                if seed is not None:
                    torch.manual_seed(seed)
                decodable = supports_decoding(self.model)
                if sampling.packed_weights:
                    warn_if_unpacked(device, decodable)
                if decodable:
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
        """:func:`zoo.rollout.decoding.decode` with ``generate``'s settings: (sequences, recorded log-probs or None)."""
        n = sampling.samples_per_prompt
        decoded = decode(self.model, prompt_ids, prompt_attention_mask, max_new_tokens=sampling.max_new_tokens,
                         eos_ids=self.eos_ids, pad_id=self.pad_id, temperature=float(sampling.temperature),
                         top_k=int(sampling.top_k), top_p=float(sampling.top_p), samples_per_prompt=n,
                         record_logps=record_logps, packed_weights=sampling.packed_weights,
                         tick=reporter.advance if reporter is not None else None)
        ids = prompt_ids.repeat_interleave(n, dim=0)
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
        finished = ends_with_stop(response.masked_fill(~keep, -1), self.eos_ids)
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
            finished=finished,
            stop_ids=tuple(self.eos_ids),
        )


# ----- best-of-n ------------------------------------------------------------------------------


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


def sample_texts(sampler: Sampler, prompts: Sequence[str], *, n: int, batch_size: int = 16,
                 max_prompt_length: int = 128, seed: int | None = None, **sampling: Any
                 ) -> Iterator[tuple[list[str], list[list[str]]]]:
    """``n`` sampled responses per prompt, chunk by chunk: yields ``(chunk_prompts, responses)``.

    Chunk ``j`` holds ``batch_size`` prompts and is sampled with seed ``seed + j * batch_size``, so
    a result depends on the seed and the batch size, not on who asks. ``sampling`` holds the other
    :class:`zoo.rollout.settings.Sampling` fields (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``).
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
