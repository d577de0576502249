"""``stage k of N, about M min left``: the count of a bench config's units and the estimate."""
from __future__ import annotations

from zoo.bench.schedule import Schedule


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_scales_the_mean_unit_and_pipeline_time_to_what_is_left():
    clock = Clock()
    schedule = Schedule([("sft", 0), ("dpo", 0), ("sft", 1), ("dpo", 1)], pipelines=2, clock=clock)
    assert schedule.prefix() == "stage 1 of 4"
    schedule.start(("sft", 0))
    with schedule.pipeline():
        clock.now += 600  # the first seed's pipeline: 10 min
    clock.now += 60  # the unit itself: 1 min
    assert schedule.prefix() == "stage 1 of 4"  # nothing finished, nothing to scale from
    schedule.start(("dpo", 0))
    clock.now += 30
    # Units: 60 s for one finished, 3 not finished = 180 s, minus the 30 s the current one has run;
    # pipelines: one of two left at 600 s each. 150 + 600 = 750 s = 12.5 min.
    assert schedule.seconds_left() == 750
    assert schedule.prefix() == "stage 2 of 4, about 12 min left"
    schedule.start(("sft", 0))  # a unit met again (a cached baseline) is not counted twice
    assert schedule.current == 2
    schedule.start(("sft", 1))
    with schedule.pipeline():
        clock.now += 500
    clock.now += 10
    # Units: (60 + 30) / 2 = 45 s each, 2 left: 90 − 10 = 80 s; no pipeline left.
    assert schedule.seconds_left() == 80
    assert schedule.prefix() == "stage 3 of 4, about 1m20s left"


def test_the_plan_counts_every_unit_the_runner_will_run():
    """configs/bench/tiny.yaml: 22 table rows x 5 seeds on the test prompts = 110; 19 selected sweeps
    of 4 settings each on the one tuning seed (1004, not a reported seed) = 76; the SFT model on the
    validation prompts of that seed, once for all sweeps = 1; FLOPs are matched, so each of the 76
    distinct trained settings first gets a calibration run on the first seed (0) = 76. 263 units,
    and one pipeline per seed: 5 reported + 1 tuning = 6."""
    from pathlib import Path

    from zoo.bench.loading import load_bench_config
    from zoo.bench.runner import plan

    config = load_bench_config(str(Path(__file__).resolve().parents[1] / "configs/bench/tiny.yaml"), [])
    schedule = plan(config)
    assert len(schedule.units) == 263 and schedule.pipelines == 6
    kinds = [split for _, _, split in schedule.units]
    assert kinds.count("calibrate") == 76 and kinds.count("validation") == 77 and kinds.count("test") == 110
    assert schedule.units[0] == ("rejection sampling (samples_per_prompt=4, learning_rate=0.0001)", 0, "calibrate")
    assert schedule.units[76] == ("SFT", 1004, "validation")
    assert schedule.units[-1] == ("ORPO", 4, "test")
    steps = load_bench_config(str(Path(__file__).resolve().parents[1] / "configs/bench/tiny.yaml"),
                              ["budget.matched=steps"])
    assert len(plan(steps).units) == 187  # no calibration when steps are what is matched


def test_a_unit_the_plan_missed_is_counted_rather_than_overrun():
    schedule = Schedule(["a"], pipelines=1, clock=Clock())
    schedule.start("a")
    schedule.start("b")
    assert schedule.prefix().startswith("stage 2 of 2")
