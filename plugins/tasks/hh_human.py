"""``hh_human``: align a pretrained chat model on Anthropic HH's human preference labels.

The real-model track of the benchmark. The HH pairs (``chosen`` / ``rejected`` dialogues that
share their prefix up to the last ``Assistant:`` turn) are split **by prompt** into train,
validation and test, deterministically from ``split_seed``; no prompt is in two splits:

* train: the pairs the proxy reward model and the offline algorithms (DPO, IPO, cDPO, RRHF,
  SLiC-HF, ...) train on, with the human labels as they are; their prompts are what the online
  algorithms (PPO, rejection sampling, ...) sample on;
* validation: prompts that hyperparameter selection reads; never reported;
* test: prompts every reported number is measured on, and their human pairs for held-out
  preference accuracy.

There is no gold reward: every model is judged by the pipeline's reward model, trained on the
train pairs (the one the online contenders optimise), so its win rate measures agreement with
what the human labels taught it, not the labels themselves; held-out human-preference accuracy
and the knowledge suites are the judge-free measures.

Dialogues are rendered with the chat template of ``template`` (a model name as ``model.name``
takes it: the bench config's model), so an instruct model sees its own turn format: the prompt
ends with the template's assistant header and a response is the assistant's text, ended by the
tokenizer's EOS (the template's end-of-turn token). ``template: null`` keeps HH's own
``Human:`` / ``Assistant:`` text. Dialogues longer than ``max_prompt_tokens`` /
``max_response_tokens`` are dropped (CPU budgets), never cut.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from zoo import ConfigError, hookimpl
from zoo.bench import Task, TaskData
from zoo.data import read_rows

TURN = re.compile(r"\n\n(Human|Assistant): ?")


@dataclass
class HHHumanArgs:
    #: HH-style pairs: a hub data set (``OWNER/NAME`` or ``OWNER/NAME/DIR``), or a local file or directory.
    data: str = "Anthropic/hh-rlhf/harmless-base"
    #: The split of ``data`` to read (all three benchmark splits are cut from it, by prompt).
    split: str = "train"
    train_pairs: int = 256
    validation_prompts: int = 32
    test_prompts: int = 64
    split_seed: int = 0
    #: The model whose chat template renders the dialogues; null: HH's plain text.
    template: str | None = "smollm2"
    max_prompt_tokens: int = 96
    max_response_tokens: int = 64
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        for key in ("train_pairs", "validation_prompts", "test_prompts", "max_prompt_tokens", "max_response_tokens",
                    "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"task.args.{key} = {getattr(self, key)!r}: must be >= 1")


def dialogue_turns(text: str) -> list[dict[str, str]]:
    """``\\n\\nHuman: a\\n\\nAssistant: b ...`` as chat messages (``user`` / ``assistant``)."""
    parts = TURN.split(text)
    if parts[0].strip():
        raise ValueError("text before the first Human: turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[speaker], "content": body.strip()} for speaker, body in zip(parts[1::2], parts[2::2])]


def _order(prompt: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{prompt}".encode()).hexdigest()


class HHHuman(Task):
    name = "hh_human"
    description = "Anthropic HH human preference pairs on a pretrained chat model, judged by the learnt reward model"
    version = "1"
    Args = HHHumanArgs

    def _renderer(self):
        from zoo import ModelConfig, load_tokenizer

        a = self.args
        if a.template is None:
            return None, None
        tokenizer = load_tokenizer(ModelConfig(name=a.template), key="task.args.template")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"task.args.template = {a.template!r}: its tokenizer has no chat template; "
                              f"set task.args.template: null for HH's plain text")

        def render(messages: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

        return render, tokenizer

    def build(self) -> TaskData:
        from zoo.data import normalise

        a = self.args
        render, tokenizer = self._renderer()

        def tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer else len(text.split())

        raw = read_rows(a.data, split=a.split, skip_bad=True)
        by_prompt: dict[str, dict[str, str]] = {}
        for row_no, row in raw.rows:
            try:
                example = normalise(row, row_no, raw.source, "pairwise")
                turns = dialogue_turns(example.prompt.rsplit("\n\nAssistant:", 1)[0])
            except Exception:  # a malformed pair is not a benchmark item (counted below)
                continue
            if not turns or turns[-1]["role"] != "user":
                continue
            prompt = render(turns) if render else example.prompt
            chosen, rejected = (r.strip() for r in example.responses)
            if not chosen or not rejected or chosen == rejected:
                continue
            if tokens(prompt) > a.max_prompt_tokens or max(tokens(chosen), tokens(rejected)) > a.max_response_tokens:
                continue
            by_prompt.setdefault(prompt, {"prompt": prompt, "chosen": chosen, "rejected": rejected})
        prompts = sorted(by_prompt, key=lambda p: _order(p, a.split_seed))
        need = a.test_prompts + a.validation_prompts + 1
        if len(prompts) < need:
            raise ConfigError(f"task.args.data = {a.data!r}: {len(prompts)} distinct prompts fit "
                              f"task.args.max_prompt_tokens / max_response_tokens; the splits need at least {need}")
        test = prompts[: a.test_prompts]
        validation = prompts[a.test_prompts: a.test_prompts + a.validation_prompts]
        train = prompts[a.test_prompts + a.validation_prompts:][: a.train_pairs]
        pairs = [by_prompt[p] for p in train]
        return TaskData(
            pretraining=None,
            demonstrations=[{"prompt": p["prompt"], "completion": p["chosen"]} for p in pairs],
            train_prompts=train, validation_prompts=validation, test_prompts=test,
            max_new_tokens=a.max_new_tokens,
            preference_pairs=pairs,
            heldout_pairs=[by_prompt[p] for p in test],
        )

    def gold_reward(self) -> None:
        return None


@hookimpl
def zoo_register_tasks(register):
    register(HHHuman)
