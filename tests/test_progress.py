"""Progress of long phases: plain lines when stdout is a file, in every phase that can take long."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.progress import Progress, format_seconds, track

ROOT = Path(__file__).resolve().parents[1]


def test_plain_lines_carry_count_rate_and_time_left():
    stream = io.StringIO()
    with Progress("filling", total=4, unit="rows", stream=stream, interval=0) as progress:
        for _ in range(4):
            progress.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "filling: 0/4 rows"
    assert re.fullmatch(r"filling: 2/4 rows, [\d.e+]+ rows/s, eta \d+s", lines[2])
    assert lines[-1].startswith("filling: done, 4 rows in ")
    assert len(lines) == 6  # start, one per advance, done


def test_a_phase_shorter_than_the_interval_leaves_no_lines():
    """No ``reading …: 0/1024 rows`` / ``done … in 0s`` pairs, no ``0/1 batches``, in a log file."""
    stream = io.StringIO()
    with Progress("quick", total=1000, stream=stream, interval=3600) as progress:
        for _ in range(1000):
            progress.advance()
    with Progress("one batch", total=1, unit="batches", stream=stream, interval=3600) as progress:
        progress.advance()
    assert stream.getvalue() == ""


def test_a_phase_still_running_after_the_interval_says_so_even_without_an_advance():
    import time

    stream = io.StringIO()
    with Progress("one long batch", total=1, unit="batches", stream=stream, interval=0.2) as progress:
        time.sleep(0.6)  # one step that takes longer than the interval: the timer reports it
        progress.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "one long batch: 0/1 batches"
    assert lines[-1].startswith("one long batch: done, 1 batches in ")
    assert len(lines) in (2, 3)  # the advance may or may not come a whole interval after the timer's line


def test_lines_are_spaced_by_the_interval():
    import time

    stream = io.StringIO()
    with Progress("slow", total=6, stream=stream, interval=0.3) as progress:
        for _ in range(6):
            time.sleep(0.11)
            progress.advance()
    lines = stream.getvalue().splitlines()
    # 0.66 s in 0.3 s intervals: the timer's line or an advance's at about 0.33 and 0.66 s, then done.
    assert 2 <= len(lines) <= 4 and lines[-1].startswith("slow: done, 6 items")
    assert all(re.fullmatch(r"slow: \d/6 items(, [\d.e+]+ items/s, eta \d+s)?", line) for line in lines[:-1])


def test_unknown_total_and_failure():
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("scan", stream=stream, interval=0) as progress:
            progress.advance(3)
            raise RuntimeError
    lines = stream.getvalue().splitlines()
    assert "eta" not in lines[1] and lines[1].startswith("scan: 3 items, ")
    assert lines[-1] == "scan: stopped after 3 items"


def test_track_and_switch_off(monkeypatch, capsys):
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    assert list(track([1, 2, 3], "three")) == [1, 2, 3]
    assert "three: done, 3 items" in capsys.readouterr().out
    monkeypatch.setenv("RANK", "1")  # another process of a multi-process run
    assert list(track([1, 2], "rank one")) == [1, 2]
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("ZOO_PROGRESS", "off")
    assert list(track([1, 2], "quiet")) == [1, 2]
    assert capsys.readouterr().out == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_eval_suites_show_progress(monkeypatch, capsys, tmp_path):
    from zoo.eval.runner import run_suites
    from zoo.tiny import tiny_model, tiny_tokenizer

    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    text = "".join(f"Q{i}?,a,b,c,d,{'ABCD'[i % 4]}\n" for i in range(4))
    for split in ("dev", "test"):
        (tmp_path / "mmlu" / split).mkdir(parents=True)
        (tmp_path / "mmlu" / split / f"anatomy_{split}.csv").write_text(text)
    tokenizer = tiny_tokenizer()
    run_suites(tiny_model(tokenizer=tokenizer), tokenizer, ["mmlu"], data_dir=tmp_path, batch_size=2,
               options={"mmlu": {"subjects": ["anatomy"]}}, num_fewshot=0)
    out = capsys.readouterr().out
    assert re.search(r"eval mmlu: \d+/16 items, ", out), out  # 4 questions x 4 choices
    assert "eval mmlu: done, 16 items" in out


def test_train_with_stdout_in_a_file_prints_progress_lines(tmp_path):
    """``zoo train > log``: reading, the reference cache fill and training each leave lines in the file."""
    env = {**os.environ, "ZOO_PROGRESS_INTERVAL": "0", "ZOO_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "zoo.cli", "train", str(ROOT / "configs/tiny/dpo.yaml"),
                               "train.max_steps=4", "data.builtin_size=48", "train.checkpoint_every_n_steps=2",
                               f"output_dir={tmp_path / 'run'}"], stdout=handle, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert "reading builtin:tiny_prefs: 0/48 rows" in text
    assert re.search(r"reading builtin:tiny_prefs: 24/48 rows, [\d.e+]+ rows/s, eta \d+s", text)
    assert re.search(r"reference log-probs: 48/48 examples, .*eta", text)
    assert "reference log-probs: done, 48 examples" in text
    assert re.search(r"training \(loss \d\.\d{4}\): 2/4 steps, [\d.e+]+ steps/s, eta \d+s", text)
    assert "training: done, 4 steps" in text
    assert "Epoch 0/-2" not in text + done.stderr
    # Checkpoints are named for their step once, not "step-step=2.ckpt".
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.suffix == ".ckpt") == \
        ["last.ckpt", "step-2.ckpt", "step-4.ckpt"]


def test_a_phase_that_does_not_announce_itself_is_silent_unless_it_takes_long():
    quick = io.StringIO()
    with Progress("sampling", total=40, unit="tokens", stream=quick, interval=3600, announce=False) as progress:
        for _ in range(40):
            progress.advance()
    assert quick.getvalue() == ""  # a short repeated phase leaves no lines
    slow = io.StringIO()
    with Progress("sampling", total=3, unit="tokens", stream=slow, interval=0, announce=False) as progress:
        for _ in range(3):
            progress.advance()
    lines = slow.getvalue().splitlines()
    assert lines[0].startswith("sampling: 1/3 tokens, ") and "eta" in lines[0]
    assert lines[-1].startswith("sampling: done, 3 tokens in ")


def test_online_sampling_reports_generated_tokens_and_samples_the_same(monkeypatch, capsys, tokenizer):
    """The sampler's progress counts the responses' real tokens (not decoding steps: 4 responses
    of up to 6 tokens are up to 24 tokens, not 6) and changes no sample."""
    from zoo.rollout.batches import encode_prompts
    from zoo.rollout.sampler import Sampler
    from zoo.tiny import tiny_model

    import torch

    torch.manual_seed(0)
    sampler = Sampler(tiny_model(tokenizer), tokenizer)
    prompts = encode_prompts(tokenizer, ["the cat", "a dog sees"])
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    reported = sampler(*prompts, max_new_tokens=6, samples_per_prompt=2, seed=3, progress="sampling 4 responses")
    lines = capsys.readouterr().out.splitlines()
    plain = sampler(*prompts, max_new_tokens=6, samples_per_prompt=2, seed=3)
    assert torch.equal(reported.sequences, plain.sequences)
    assert capsys.readouterr().out == ""  # no name, no report
    steps = reported.sequences.shape[1] - prompts[0].shape[1]
    tokens = int(reported.response_mask.sum())  # up to and including each response's EOS
    assert tokens > steps  # several responses: more tokens than decoding steps
    assert lines[0].startswith("sampling 4 responses: 4 tokens, ")  # the first step: one token per response
    assert lines[-1].startswith(f"sampling 4 responses: done, {tokens} tokens in ")
    assert len(lines) == steps + 1
    counts = [int(re.match(r"sampling 4 responses: (\d+) tokens", line).group(1)) for line in lines[:-1]]
    assert counts == sorted(counts) and counts[-1] == tokens


def test_reward_model_score_statistics_report_progress(monkeypatch, capsys):
    """The pass over the training responses after a reward model trains is not silent."""
    from types import SimpleNamespace

    import torch

    import zoo.rewards.model as rewards

    batches = [SimpleNamespace(input_ids=torch.zeros(2, 3), attention_mask=torch.ones(2, 3),
                               loss_mask=torch.ones(2, 3), group_size=2, valid=torch.tensor([True, True]),
                               scores=torch.tensor(values))
               for values in ([1.0, 3.0], [5.0, 7.0])]
    scores = iter(b.scores for b in batches)
    monkeypatch.setattr(rewards, "sequence_scores", lambda *args: SimpleNamespace(sum=next(scores)))
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    model = torch.nn.Linear(1, 1)
    model.config = SimpleNamespace()
    stats = rewards.record_score_statistics(model, batches)
    assert stats[rewards.SCORE_MEAN] == 4.0  # mean of 1, 3, 5, 7
    out = capsys.readouterr().out
    assert "reward-model score statistics: 0/2 batches" in out
    assert "reward-model score statistics: done, 2 batches in " in out


def test_the_sampling_ticker_counts_one_token_per_response_still_going():
    """Prompt width 2, EOS 9: before the first token all 3 responses generate; after [5, 9], [5, 6]
    and [9, 0] (a pad after an EOS) only the second is still going, so the step adds 1 token."""
    import torch

    from zoo.rollout.sampler import _ProgressTicker

    class Count:
        total = 0

        def advance(self, n: int = 1) -> None:
            self.total += n

    count = Count()
    ticker = _ProgressTicker(count, prompt_width=2, eos_ids=[9])
    scores = torch.zeros(3, 10)
    assert ticker(torch.tensor([[1, 2], [1, 2], [3, 4]]), scores) is scores
    assert count.total == 3
    ticker(torch.tensor([[1, 2, 5, 9], [1, 2, 5, 6], [3, 4, 9, 0]]), scores)
    assert count.total == 4


def test_online_sampling_phases_say_which_step_and_which_model(monkeypatch):
    from types import SimpleNamespace

    import torch

    import zoo.rollout.sampler
    from zoo.algorithm import ExperienceContext

    labels = []

    class Recording:
        def __init__(self, model, tokenizer):
            pass

        def __call__(self, *args, progress=None, **kwargs):
            labels.append(progress)

    monkeypatch.setattr(zoo.rollout.sampler, "Sampler", Recording)
    batch = SimpleNamespace(prompt_ids=torch.zeros(3, 2, dtype=torch.long), prompt_attention_mask=torch.ones(3, 2))
    sampling = SimpleNamespace(samples_per_prompt=4)
    ExperienceContext.for_run(torch.nn.Linear(1, 1), None, step=7).generate(batch, sampling)
    ExperienceContext.for_run(torch.nn.Linear(1, 1), None, step=2, training=False).generate(
        batch, sampling, model=torch.nn.Linear(1, 1))
    assert labels == ["training step 7: sampling 12 responses",
                      "validation step 2: sampling 12 responses from a snapshot of the policy"]


def test_on_a_terminal_the_bar_of_a_short_phase_is_cleared_and_a_long_ones_stays():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def shown(interval: float) -> str:
        screen = Terminal()
        with Progress("quick", total=3, stream=screen, interval=interval) as progress:
            for _ in range(3):
                progress.advance()
        return screen.getvalue()

    erase_line = "\x1b[1A\x1b[2K"  # cursor up one line, clear it: rich removing a transient bar
    assert shown(interval=3600).endswith(erase_line)
    assert not shown(interval=0).endswith(erase_line) and "3/3" in shown(interval=0)
