"""The prompt truncation policy: how a prompt is fitted to its token budget, in one place for
training, sampling and reward-model scoring.

A :class:`PromptPolicy` is the configured policy: a budget (``max_prompt_length``), what happens to a
longer prompt (``truncation``) and the config key that set the budget (named in errors). Its
:meth:`PromptPolicy.encoder` binds it to a tokenizer; the :class:`PromptEncoder` turns a prompt into
``[BOS] prompt`` ids that fit:

* ``keep_end`` (the default) keeps the end (the last turns matter most), ``keep_start`` the
  beginning; ``drop`` leaves a training row out (:class:`DroppedRow`, as TRL does). Where a prompt
  cannot be left out (a sampler or a reward model is given it) ``drop`` cuts as ``keep_end``
  (:meth:`PromptPolicy.never_dropping`): a run with ``drop`` has left every longer prompt out of its
  data already, so nothing it samples or scores is cut.
* A prompt rendered from chat messages is never cut through the template: it loses whole turns
  (the oldest first for ``keep_end``, keeping a system message and starting the kept part at a user
  turn; the newest first for ``keep_start``), and only when one turn alone is too long is that
  turn's *content* cut, its role header and the generation prompt kept. So every prompt still
  opens with the template's header (for SmolLM2, its default system prompt).
* A plain string prompt is cut token by token.

Who applies it: training (:class:`zoo.data.tokenize.ExampleTokenizer`, with ``data.max_prompt_length``
and ``data.prompt_truncation``; ``zoo pairs`` reads its prompts the same way); online algorithms
sample from the prompt ids training built (``batch.prompt_ids``); :func:`zoo.rollout.encode_prompts`
(the ``generation`` suite, best-of-n, the benchmark's samplers) and reward models
(:class:`zoo.rewards.model.ModelReward`, with the policy of the run or of ``zoo pairs``) encode through
it. Prompt texts reach the latter two as strings; one rendered from messages is a
:class:`zoo.data.examples.ChatPrompt`, which carries them, so the turn-aware cut applies there too.
The messages are used only when they render to the prompt's text with the encoding tokenizer's
template (a reward model with another template cuts the text as a plain prompt, as before).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from zoo.errors import DataError

if TYPE_CHECKING:  # transformers is imported by whoever passes a tokenizer
    from transformers import PreTrainedTokenizerBase

#: ``render_chat(messages, add_generation_prompt) -> text``: the chat template as a function.
RenderChat = Callable[[list[dict[str, str]], bool], str]

#: The values of ``data.prompt_truncation``.
TRUNCATIONS = ("keep_end", "keep_start", "drop")


class DroppedRow(DataError):
    """A row left out by ``prompt_truncation: drop`` (counted apart from malformed rows)."""


def chat_renderer(tokenizer: PreTrainedTokenizerBase) -> RenderChat | None:
    """The tokenizer's chat template as a :data:`RenderChat` (None when it has none)."""
    if getattr(tokenizer, "chat_template", None) is None:
        return None

    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    return render


def bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] if the tokenizer adds it by default, else []."""
    with_special = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and len(with_special) > len(plain) and with_special[0] == bos:
        return [bos]
    return []


@dataclass(frozen=True)
class PromptPolicy:
    """How prompts are fitted to a token budget (see the module docstring)."""

    #: The longest prompt, in tokens (BOS included).
    max_prompt_length: int
    #: ``keep_end``, ``keep_start`` or ``drop``.
    truncation: str = "keep_end"
    #: The config key that sets ``max_prompt_length``, for error messages.
    setting: str = "data.max_prompt_length"

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"prompt truncation {self.truncation!r}: expected one of {', '.join(TRUNCATIONS)}")

    @classmethod
    def from_data(cls, data: Any) -> PromptPolicy:
        """The policy of a run's ``data`` config section (:class:`zoo.config.DataConfig`)."""
        return cls(data.max_prompt_length, data.prompt_truncation, "data.max_prompt_length")

    def never_dropping(self) -> PromptPolicy:
        """The policy where a prompt cannot be left out (sampling, reward scoring): ``drop`` cuts as ``keep_end``."""
        return replace(self, truncation="keep_end") if self.truncation == "drop" else self

    def encoder(self, tokenizer: PreTrainedTokenizerBase, render_chat: RenderChat | None = None) -> PromptEncoder:
        """This policy bound to ``tokenizer`` (``render_chat``: its chat template, by default)."""
        return PromptEncoder(self, tokenizer, render_chat)


class PromptEncoder:
    """``[BOS] prompt`` ids under a :class:`PromptPolicy`, for one tokenizer."""

    def __init__(self, policy: PromptPolicy, tokenizer: PreTrainedTokenizerBase, render_chat: RenderChat | None = None):
        self.policy = policy
        self.tokenizer = tokenizer
        self.render_chat = render_chat if render_chat is not None else chat_renderer(tokenizer)
        self.bos = bos_prefix(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def __call__(self, prompt: str, messages: list[dict[str, str]] | None = None, *, source: str | None = None,
                 row: int | None = None) -> tuple[list[int], str | None]:
        """The prompt's ids and how it was cut: None (it fits), ``turns`` (whole chat turns dropped,
        template kept), ``message`` (the content of one chat message cut, template kept) or ``tokens``
        (tokens cut off one end of a plain prompt).

        ``messages``: what ``prompt`` was rendered from (None: a plain string). Raises
        :class:`DroppedRow` for a prompt the ``drop`` policy leaves out, and a DataError (naming
        ``source`` and ``row``) when the template's own text is longer than the budget.
        """
        limit, how = self.policy.max_prompt_length, self.policy.truncation
        prompt_ids = self.bos + self.encode(prompt)
        if len(prompt_ids) <= limit:
            return prompt_ids, None
        if how == "drop":
            raise DroppedRow(f"prompt of {len(prompt_ids)} tokens is longer than {self.policy.setting} = {limit} "
                             f"(data.prompt_truncation: drop)", source=source, row=row)
        if messages is not None and self.render_chat is not None and self.render_chat(messages, True) == prompt:
            fitted = self._fit_turns(messages, keep_end=how == "keep_end")
            if fitted is not None:
                return fitted
            raise DataError(f"the chat template's own text takes more than {self.policy.setting} = {limit} tokens; "
                            f"raise {self.policy.setting}", source=source, row=row, field="prompt")
        if how == "keep_end":
            return prompt_ids[len(prompt_ids) - limit:], "tokens"
        return prompt_ids[:limit], "tokens"

    def _rendered(self, messages: list[dict[str, str]]) -> list[int]:
        return self.bos + self.encode(self.render_chat(messages, True))

    def _fit_turns(self, messages: list[dict[str, str]], keep_end: bool) -> tuple[list[int], str] | None:
        """The prompt with whole turns dropped (``turns``), else one turn's content cut (``message``), to
        fit; None if impossible."""
        limit = self.policy.max_prompt_length
        system = messages[:1] if messages and messages[0]["role"] == "system" else []
        turns = list(messages[len(system):])
        while len(turns) > 1:
            turns = turns[1:] if keep_end else turns[:-1]
            if keep_end:
                while len(turns) > 1 and turns[0]["role"] != "user":  # a kept exchange starts with the user
                    turns = turns[1:]
            ids = self._rendered(system + turns)
            if len(ids) <= limit:
                return ids, "turns"
        if not turns:
            return None
        # One turn is left and too long: cut its content (from its start for keep_end), keep its header.
        content = self.encode(turns[0]["content"])

        def render_with(k: int) -> list[int]:
            kept = content[len(content) - k:] if keep_end else content[:k]
            text = self.tokenizer.decode(kept) if k else ""
            # A cut through a multi-byte character decodes to U+FFFD at the cut: not part of the message.
            text = text.lstrip("\ufffd") if keep_end else text.rstrip("\ufffd")
            return self._rendered(system + [{**turns[0], "content": text}])

        low, high = 0, len(content)  # the most content tokens that fit, by bisection
        if len(render_with(0)) > limit:
            return None
        while low < high:
            middle = (low + high + 1) // 2
            if len(render_with(middle)) <= limit:
                low = middle
            else:
                high = middle - 1
        return render_with(low), "message"
