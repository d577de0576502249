"""Log-likelihoods of continuations given contexts, scored the way lm-evaluation-harness does.

Tokenisation replicates lm-evaluation-harness 0.4's ``hf`` model exactly:

* trailing whitespace of the context moves to the front of the continuation
  (``"Answer: "`` + ``"A"`` is scored as ``"Answer:"`` + ``" A"``);
* ``context + continuation`` is encoded as a whole and the context alone; the continuation's
  tokens are the whole's tokens past the context's length (so a BPE merge across the boundary
  is scored as the tokenizer would produce it);
* both are encoded with the tokenizer's default special tokens (a BOS for tokenizers that add
  one, none otherwise), except that a text already starting with the BOS text gets none;
  an empty context is replaced by the BOS token (EOS when there is no BOS);
* the model sees ``(context + continuation)[:-1]``, cut from the left to the model's maximum
  length (``n_positions`` / ``max_position_embeddings`` / ``n_ctx`` of its config, else the
  tokenizer's ``model_max_length``, else 2048), right-padded in batches.

A continuation's log-likelihood is ``Σ_t log p(cont_t | ...)`` with the log-softmax in float32,
and ``is_greedy`` tells whether every continuation token is the argmax.

Speed, without changing a number beyond float rounding:

* requests whose model input is the same (the four one-token answers ``" A"``…``" D"`` of an
  MMLU question) share one forward pass and read their tokens from the same logits;
* inputs that start with the same long token prefix (a subject's few-shot examples, a question
  shared by its answer choices) run that prefix once and reuse its key/value cache for every
  suffix in the group;
* only the logits of scored positions are computed (``logits_to_keep``) when the model supports it;
* on a GPU the forward passes run under bf16 (fp16 where bf16 is unsupported) autocast;
* ``layout="blocks"`` (the default for sdpa models): a batch's suffixes run end to end in one row
  after the shared prefix's cache, each attending to the prefix and to itself only
  (:mod:`zoo.forward.attention`'s prompt-sharing blocks), so no position is padding and no mask is
  built. ``"batched"`` right-pads the suffixes into rows, each with its own copy of the prefix
  cache; the two agree to float rounding, not bit for bit (the benchmark's evaluation stages keep
  ``"batched"``, the layout their committed results were computed with).

The one scorer every multiple-choice suite shares, from request building to scoring in either
layout; about 400 lines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch
    from torch import Tensor, nn

DEFAULT_MAX_LENGTH = 2048
#: transformers' sentinel for "no limit" in ``tokenizer.model_max_length``.
TOKENIZER_INFINITY = 1000000000000000019884624838656
#: A shared prefix shorter than this is not worth a separate forward pass and cache copy.
MIN_SHARED_PREFIX = 32
#: How a batch of inputs runs (see the module docstring).
LAYOUTS = ("blocks", "batched")


@dataclass(frozen=True)
class Request:
    """Token ids of a context and of the continuation scored after it."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


def resolve_max_length(model: nn.Module, tokenizer=None, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The context window lm-evaluation-harness assumes for ``model``."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attribute in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attribute, None)
        if value is not None:
            return int(value)
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if model_max_length is not None and model_max_length != TOKENIZER_INFINITY:
        return int(model_max_length)
    return default


def prefix_token_id(tokenizer) -> int:
    """The token an empty context is replaced by: BOS, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode(tokenizer, text: str) -> list[int]:
    """``text`` encoded with the tokenizer's default special tokens, unless it starts with BOS text."""
    bos_text = tokenizer.decode(prefix_token_id(tokenizer))
    if bos_text and text.startswith(bos_text):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def make_request(tokenizer, context: str, continuation: str) -> Request:
    """The token ids lm-evaluation-harness scores for ``(context, continuation)``."""
    return make_requests(tokenizer, context, [continuation])[0]


def make_requests(tokenizer, context: str, continuations: Sequence[str]) -> list[Request]:
    """:func:`make_request` for several continuations of one context, encoding the context once."""
    if context == "":
        prefix = prefix_token_id(tokenizer)
        out = []
        for continuation in continuations:
            continuation_ids = tokenizer.encode(continuation, add_special_tokens=False)
            if continuation_ids and continuation_ids[0] == prefix:
                out.append(Request(tuple(continuation_ids[:1]), tuple(continuation_ids[1:])))
            else:
                out.append(Request((prefix,), tuple(continuation_ids)))
        return out
    n_spaces = len(context) - len(context.rstrip())
    moved = context[len(context) - n_spaces:] if n_spaces else ""
    context = context[: len(context) - n_spaces]
    context_ids = tuple(encode(tokenizer, context))
    return [Request(context_ids, tuple(encode(tokenizer, context + moved + continuation)[len(context_ids):]))
            for continuation in continuations]


@contextlib.contextmanager
def inference(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode, no gradients and, on a GPU, half-precision autocast; restores the mode after."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        autocast = torch.autocast("cuda", dtype=dtype)
    else:
        autocast = contextlib.nullcontext()
    try:
        with torch.no_grad(), autocast:
            yield device
    finally:
        model.train(was_training)


def _accepts(model: nn.Module, argument: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return argument in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class _Row:
    """One distinct model input and the requests read from its logits."""

    tokens: tuple[int, ...]
    requests: list[int]
    longest_continuation: int


class LoglikScorer:
    """Scores :class:`Request` lists on one model (see the module docstring).

    Args:
        model: a causal LM returning ``.logits``.
        batch_size: rows per forward pass.
        max_length: the model's context window (default: :func:`resolve_max_length`).
        share_prefix: run long shared prefixes once and reuse their key/value cache.
        layout: ``"blocks"`` or ``"batched"`` (see the module docstring); ``"blocks"`` falls back to
            ``"batched"`` for a model whose attention cannot take blocks (not sdpa, sliding windows).
        progress: called with the number of requests finished after each forward pass.
    """

    def __init__(self, model: nn.Module, tokenizer=None, *, batch_size: int = 16, max_length: int | None = None,
                 share_prefix: bool = True, layout: str = "blocks", progress: Callable[[int], None] | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length or resolve_max_length(model, tokenizer)
        # transformers 5 names the key/value cache argument ``cache``; earlier versions ``past_key_values``
        self.cache_argument = next((a for a in ("cache", "past_key_values") if _accepts(model, a)), None)
        self.share_prefix = share_prefix and self.cache_argument is not None
        self.keep_logits = _accepts(model, "logits_to_keep")
        self.blocks = layout == "blocks" and _takes_blocks(model)
        self.progress = progress
        self.pad_id = 0

    # ----- public ------------------------------------------------------------------------------
    def __call__(self, requests: Sequence[Request]) -> list[tuple[float, bool]]:
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        rows = self._rows(requests)
        with inference(self.model) as device:
            for prefix, group in self._groups(rows):
                self._score_group(prefix, group, requests, results, device)
        return results  # type: ignore[return-value]

    # ----- planning ----------------------------------------------------------------------------
    def _rows(self, requests: Sequence[Request]) -> list[_Row]:
        by_input: dict[tuple[int, ...], _Row] = {}
        for index, request in enumerate(requests):
            n = len(request.continuation)
            if not request.context or n == 0:
                raise ValueError(f"request {index} has an empty context or continuation")
            if n > self.max_length:
                raise ValueError(f"request {index}: a continuation of {n} tokens does not fit the model's "
                                 f"{self.max_length}-token window")
            tokens = (request.context + request.continuation)[-(self.max_length + 1):][:-1]
            row = by_input.get(tokens)
            if row is None:
                row = by_input[tokens] = _Row(tokens, [], 0)
            row.requests.append(index)
            row.longest_continuation = max(row.longest_continuation, n)
        return list(by_input.values())

    def _groups(self, rows: list[_Row]) -> Iterator[tuple[int, list[_Row]]]:
        """Rows grouped by a shared token prefix of the given length (0: no sharing)."""
        if not self.share_prefix:
            yield 0, rows
            return
        # Lexicographic order puts inputs with a common prefix next to each other.
        rows = sorted(rows, key=lambda r: r.tokens)
        loners: list[_Row] = []
        start = 0
        while start < len(rows):
            end, shared = start + 1, 0
            while end < len(rows):
                common = min(_common_prefix(rows[start].tokens, rows[end].tokens), self._room(rows[start]),
                             self._room(rows[end]), shared or len(rows[start].tokens))
                # Stop before the shared part collapses to a generic opening (every MMLU subject's
                # prompt starts with the same sentence) instead of the group's real common prefix.
                if common < MIN_SHARED_PREFIX or 2 * common < shared:
                    break
                shared, end = common, end + 1
            if end - start > 1:
                yield shared, rows[start:end]
            else:
                loners.append(rows[start])
            start = end
        if loners:
            yield 0, loners

    @staticmethod
    def _room(row: _Row) -> int:
        # The prefix must stop before the first position whose logits a request reads.
        return len(row.tokens) - row.longest_continuation

    # ----- running -----------------------------------------------------------------------------
    def _score_group(self, prefix_length: int, rows: list[_Row], requests: Sequence[Request],
                     results: list, device: torch.device) -> None:
        import torch

        cache = None
        if prefix_length:
            prefix = torch.tensor([rows[0].tokens[:prefix_length]], dtype=torch.long, device=device)
            keep = {"logits_to_keep": 1} if self.keep_logits else {}  # no prefix position is scored
            out = self.model(input_ids=prefix, use_cache=True, **keep)
            cache = out.get("cache", None) if out.get("cache", None) is not None else out.get("past_key_values")
        rows = sorted(rows, key=lambda r: -len(r.tokens))  # longest first: memory errors surface at once
        forward = self._forward_blocks if self.blocks else self._forward
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start: start + self.batch_size]
            outputs = forward(batch, prefix_length, cache, device)
            for row, (logits, positions) in zip(batch, outputs):
                for index in row.requests:
                    continuation = requests[index].continuation
                    first = len(row.tokens) - len(continuation)
                    columns = [positions[p] for p in range(first - prefix_length, len(row.tokens) - prefix_length)]
                    logp = logits[columns].float().log_softmax(-1)
                    targets = torch.tensor(continuation, device=logp.device)
                    total = float(logp.gather(-1, targets[:, None]).sum())
                    greedy = bool((logp.argmax(-1) == targets).all())
                    results[index] = (total, greedy)
            if self.progress is not None:
                self.progress(sum(len(row.requests) for row in batch))

    def _forward(self, batch: list[_Row], offset: int, cache, device: torch.device
                 ) -> list[tuple[Tensor, dict[int, int]]]:
        """Logits of the scored positions of right-padded ``batch`` suffixes (from ``offset`` on).

        Returns, per row, its logits ``[K, V]`` and a map from a suffix position to its column in ``K``.
        """
        import torch

        suffixes = [row.tokens[offset:] for row in batch]
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        for b, suffix in enumerate(suffixes):
            ids[b, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
        needed = sorted({p for row, suffix in zip(batch, suffixes)
                         for p in range(len(suffix) - row.longest_continuation, len(suffix))})
        # Right padding needs no attention mask: causal attention never lets a real token see a
        # later pad, which is how lm-evaluation-harness batches too.
        logits, columns = self._logits_at(ids.to(device), needed, **self._cache_kwargs(cache, len(batch)))
        return [(logits[b], columns) for b in range(len(batch))]

    def _forward_blocks(self, batch: list[_Row], offset: int, cache, device: torch.device
                        ) -> list[tuple[Tensor, dict[int, int]]]:
        """:meth:`_forward` with the suffixes end to end in one row after the prefix cache, each seeing
        the prefix and itself only (``layout="blocks"``)."""
        import torch

        from zoo.forward.attention import PREFIX_BLOCKS, packed_call

        suffixes = [row.tokens[offset:] for row in batch]
        starts = [0]
        for suffix in suffixes:
            starts.append(starts[-1] + len(suffix))
        ids = torch.tensor([[token for suffix in suffixes for token in suffix]], dtype=torch.long, device=device)
        positions = torch.tensor([[offset + i for suffix in suffixes for i in range(len(suffix))]], device=device)
        needed = [start + p for row, suffix, start in zip(batch, suffixes, starts)
                  for p in range(len(suffix) - row.longest_continuation, len(suffix))]
        with packed_call():  # no mask: the blocks say who sees whom
            logits, column = self._logits_at(ids, needed, position_ids=positions, **self._cache_kwargs(cache, 1),
                                             **{PREFIX_BLOCKS: [[(0, tuple(len(s) for s in suffixes))]]})
        return [(logits[0], {p - start: column[p] for p in range(start, start + len(suffix)) if p in column})
                for suffix, start in zip(suffixes, starts)]

    def _cache_kwargs(self, cache, rows: int) -> dict:
        """The forward keywords that give ``rows`` rows the prefix ``cache`` (or no cache at all)."""
        if cache is None:
            return {"use_cache": False}
        return {self.cache_argument: _repeated(cache, rows), "use_cache": True}

    def _logits_at(self, ids: Tensor, needed: list[int], **kwargs) -> tuple[Tensor, dict[int, int]]:
        """The model's logits at the flat positions ``needed`` of ``ids`` (only those when the model
        takes ``logits_to_keep``), and each position's column in them."""
        import torch

        if self.keep_logits:
            keep = torch.tensor(needed, dtype=torch.long, device=ids.device)
            return self.model(input_ids=ids, logits_to_keep=keep, **kwargs).logits, {p: j for j, p in enumerate(needed)}
        return self.model(input_ids=ids, **kwargs).logits, {p: p for p in needed}


def _takes_blocks(model: nn.Module) -> bool:
    """Whether ``model`` runs prompt-sharing blocks: its forward passes ``position_ids`` and further
    keywords on to attention that can be ``zoo_varlen`` (this switches sdpa to it; it is sdpa for every
    other call)."""
    from zoo.forward.attention import enable_varlen_attention

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    passes_keywords = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return passes_keywords and _accepts(model, "position_ids") and enable_varlen_attention(base)


def _repeated(cache, rows: int):
    """``cache`` for ``rows`` rows: each layer's prefix keys and values expanded along the batch (views, no copy).

    A transformers ``DynamicLayer`` appends new keys with ``torch.cat``, which reads the expanded
    view once into its new tensor; the deep copy and ``batch_repeat_interleave`` this replaces
    wrote the whole prefix cache ``rows + 1`` times per batch for the same values. Other cache
    layers (sliding windows, quantised caches) take that copying path.
    """
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(rows)
        return past
    past = copy.copy(cache)
    past.layers = [copy.copy(layer) for layer in layers]
    for layer in past.layers:
        if layer.is_initialized:
            layer.keys = layer.keys.expand(rows, *layer.keys.shape[1:])
            layer.values = layer.values.expand(rows, *layer.values.shape[1:])
    return past


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Length of the common prefix, by binary search over slice comparisons (which run in C)."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def loglikelihoods(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 16,
                   max_length: int | None = None, share_prefix: bool = True, layout: str = "blocks",
                   progress: Callable[[int], None] | None = None) -> list[tuple[float, bool]]:
    """``(log p(continuation | context), is_greedy)`` for each ``(context, continuation)`` text pair."""
    scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, max_length=max_length,
                          share_prefix=share_prefix, layout=layout, progress=progress)
    return scorer([make_request(tokenizer, context, continuation) for context, continuation in pairs])
