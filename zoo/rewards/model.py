"""Learned reward models: a saved scalar-head model as a :class:`zoo.rewards.sources.RewardSource`,
and the score statistics stored with a trained one.

``reward: {model: PATH, args: {...}}`` selects a reward model saved by ``zoo train`` with
``algorithm: reward`` (or any ``AutoModelForSequenceClassification`` with one label). Its ``args``:
``normalize`` (default true: subtract the training-data mean score stored with the model),
``batch_size`` (32), ``max_length`` (512 tokens), ``max_prompt_length`` and ``prompt_truncation``
(see below).

A learned reward model scores the token after which nothing but padding follows (the EOS of
``prompt + response + EOS``), exactly as ``AutoModelForSequenceClassification`` pools, so the
scores seen during reward-model training and when it is used as a reward are the same numbers.

It tokenises ``(prompt, response)`` as training does (:class:`zoo.data.tokenize.ExampleTokenizer`):
the prompt fitted to ``max_prompt_length`` tokens by the one prompt truncation policy
(:mod:`zoo.data.truncation`; a prompt rendered from chat messages, a
:class:`zoo.data.examples.ChatPrompt`, loses whole turns and keeps its template), then the
response cut to the room ``max_length`` leaves. ``max_prompt_length`` and ``prompt_truncation``
come from ``reward.args`` when set there, else from the caller's policy: a training run's
``data.max_prompt_length`` and ``data.prompt_truncation`` (``drop`` cuts as ``keep_end``: the run's
data holds no longer prompt), ``zoo pairs``' ``max_prompt_length``; with neither, half of
``max_length`` and ``keep_end``. So a reward model used by a run sees the prompt ids the run's
policy was trained and sampled on.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from zoo.batch import right_padded
from zoo.errors import ConfigError
from zoo.forward import sequence_scores
from zoo.gguf import is_gguf
from zoo.rewards.sources import RewardSource

if TYPE_CHECKING:
    from zoo.data.truncation import PromptPolicy

#: Config attributes a trained reward model carries (written into its ``config.json``).
SCORE_MEAN = "zoo_score_mean"
SCORE_STD = "zoo_score_std"


def default_prompt_policy(max_length: int) -> PromptPolicy:
    """A reward model's prompt policy when neither ``reward.args`` nor its caller gives one: half of
    ``max_length``, ``keep_end``."""
    from zoo.data.truncation import PromptPolicy

    return PromptPolicy(max(1, max_length // 2), "keep_end", "reward.args.max_prompt_length")


class ModelReward(RewardSource):
    """A learned scalar reward model loaded from a directory.

    ``prompts``: the prompt truncation policy it scores with (see the module docstring); None: half
    of ``max_length``, ``keep_end``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, name: str = "reward_model", normalize: bool = True,
                 batch_size: int = 32, max_length: int = 512, prompts: PromptPolicy | None = None):
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length
        self.prompts = (prompts or default_prompt_policy(max_length)).never_dropping()
        if self.prompts.max_prompt_length >= max_length:
            raise ConfigError(f"{self.prompts.setting} = {self.prompts.max_prompt_length} leaves the reward model no "
                              f"room for a response within reward.args.max_length = {max_length}: raise "
                              f"reward.args.max_length, or set reward.args.max_prompt_length below it")
        self.offset = float(getattr(model.config, SCORE_MEAN, 0.0) or 0.0) if normalize else 0.0

    def to(self, device: torch.device | str) -> "ModelReward":
        self.model.to(device)
        return self

    def _encode(self, prompts: list[str], responses: list[str]) -> tuple[Tensor, Tensor]:
        from zoo.data.examples import Example, prompt_messages
        from zoo.data.tokenize import ExampleTokenizer

        p = self.prompts
        encode = ExampleTokenizer(self.tokenizer, self.max_length, p.max_prompt_length, p.truncation, setting=p.setting)
        rows = []
        for i, (prompt, response) in enumerate(zip(prompts, responses)):
            example = encode(Example(prompt, [response], None, i + 1, "reward",
                                     prompt_messages=prompt_messages(prompt)))
            rows.append(example.prompt_ids + example.response_ids[0])
        return right_padded(rows, self.tokenizer.pad_token_id, min_width=1)

    @torch.no_grad()
    def _score(self, prompts: list[str], responses: list[str]) -> Tensor:
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, len(responses), self.batch_size):
            ids, mask = self._encode(prompts[start: start + self.batch_size], responses[start: start + self.batch_size])
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out.append(logits[:, 0].float().cpu())
        return torch.cat(out) - self.offset


@torch.no_grad()
def record_score_statistics(model: nn.Module, batches: Iterable[Any], max_responses: int = 4096) -> dict[str, float]:
    """Store the mean and standard deviation of the model's scores on (up to ``max_responses``
    of) the training responses in ``model.config``, so they are saved with the model.

    A reward source loaded with ``normalize: true`` subtracts the mean: Bradley–Terry training
    fixes score differences only, so the raw offset is arbitrary.
    """
    from zoo.progress import Progress

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    values: list[Tensor] = []
    count = 0
    total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    try:
        with Progress("reward-model score statistics", total, "batches") as progress:
            for batch in batches:
                scores = sequence_scores(model, batch.input_ids.to(device), batch.attention_mask.to(device),
                                         batch.loss_mask.to(device), batch.group_size).sum
                values.append(scores[batch.valid.to(device)].cpu())
                count += values[-1].numel()
                progress.advance()
                if count >= max_responses:
                    break
    finally:
        model.train(was_training)
    if not values:
        return {}
    scores = torch.cat(values)[:max_responses]
    stats = {SCORE_MEAN: float(scores.mean()), SCORE_STD: float(scores.std()) if scores.numel() > 1 else 0.0}
    for key, value in stats.items():
        setattr(model.config, key, value)
    return stats


MODEL_ARGS = ("normalize", "batch_size", "max_length", "max_prompt_length", "prompt_truncation")


def load_reward_model(path: str | Path, *, tokenizer: Any = None, normalize: bool = True, batch_size: int = 32,
                      max_length: int = 512, prompts: PromptPolicy | None = None) -> ModelReward:
    """A :class:`ModelReward` from a saved ``AutoModelForSequenceClassification`` directory.

    The directory's own tokenizer is used when it has one, else ``tokenizer``. ``prompts``: the
    prompt truncation policy it scores with (None: half of ``max_length``, ``keep_end``).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if is_gguf(path):
        raise ConfigError(f"reward.model = {str(path)!r} is a GGUF language model, which has no reward head: train "
                          f"a reward model from it (`zoo train configs/smollm2/reward.yaml model.name={path}`) and "
                          f"point reward.model at that run's model/ folder.")
    from zoo.local_model import check_local_model

    check_local_model(str(path), "reward.model", only_with_recipe=True)  # else the message below
    path = Path(path)
    if not (path / "config.json").exists():
        raise ConfigError(f"reward.model = {str(path)!r}: not a saved model directory (no config.json); train one "
                          f"with `zoo train configs/tiny/reward.yaml` and point reward.model at its model/ folder.")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"reward.model = {str(path)!r}: could not load a sequence-classification model "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    try:
        own_tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        own_tokenizer = None
    tokenizer = own_tokenizer or tokenizer
    if tokenizer is None:
        raise ConfigError(f"reward.model = {str(path)!r}: the directory holds no tokenizer")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return ModelReward(model, tokenizer, name=path.parent.name if path.name == "model" else path.name,
                       normalize=normalize, batch_size=batch_size, max_length=max_length, prompts=prompts)
