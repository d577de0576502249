"""``zoo train``: one run, built by :func:`zoo.run.build_run` and trained by :func:`zoo.run.fit`,
guarded by the run directory's lock and the signal handlers.

The output directory ends up holding ``model/`` (``save_pretrained``: safetensors weights and the
tokenizer, loadable with ``AutoModelForCausalLM.from_pretrained``), ``config.yaml`` (the resolved
config), ``metrics.json`` (validation metrics before and after training, load reports),
``logs/metrics.csv`` (every logged value) and, when enabled, ``checkpoints/``.

Nothing in an existing output directory is replaced before the config, the data and the models
have all been checked; a resumed run (``--resume`` or ``resume: auto``) keeps the earlier logs
(``logs/resume-N/`` holds each later session's) and the "before" metrics of its first session.
"""
from __future__ import annotations

import dataclasses

from lightning.pytorch.utilities import rank_zero_only

from zoo.checkpointing import WriteError
from zoo.config import RunConfig
from zoo.errors import ConfigError
from zoo.planning import RunPlan, plan_run
from zoo.run import RunResult, build_run, fit
from zoo.run_dir import (WRITE_ERRNOS, RunLock, check_output_dir, contents, interrupted_error, is_run_dir,
                         resolve_output_dir, resume_hint)
from zoo.signals import Stop, stop_on_signals

__all__ = ["RunResult", "train"]


def train(config: RunConfig | RunPlan, *, overwrite: bool = False, resume: bool = False,
          callbacks: list | None = None) -> RunResult:
    """Run one training job as configured (a run config or its plan) and save its outputs.

    The config is planned (checked against its algorithm) before the output directory is looked
    at. ``callbacks`` are extra Lightning callbacks (e.g. the throughput meter of ``benchmarks/``).
    """
    plan = config if isinstance(config, RunPlan) else plan_run(config)
    output_dir = resolve_output_dir(plan.config.output_dir)
    plan = plan.with_config(dataclasses.replace(plan.config, output_dir=str(output_dir)))
    config = plan.config
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: --resume continues the run in output_dir, "
                          "--overwrite starts it again from scratch. Pass one of them.")
    # --overwrite, given on the command line, starts the run again even when the config says resume: auto.
    resume = resume or (config.resume == "auto" and not overwrite)
    # Lightning's launcher re-runs this command in the other processes once rank 0 has written here.
    lead = rank_zero_only.rank == 0
    if lead:
        check_output_dir(output_dir, overwrite=overwrite, resume=resume)
    seen = contents(output_dir)
    lock = RunLock(output_dir)
    try:
        if lead and is_run_dir(output_dir):
            lock.acquire()  # a second run into a run directory is refused before anything loads
        with stop_on_signals():
            run = build_run(plan, overwrite=overwrite, resume=resume, callbacks=callbacks, lock=lock, seen=seen)
            return fit(run)
    except Stop as stop:
        raise interrupted_error(output_dir, stop.signum, wrote=lock.held and lead) from None
    except WriteError as exc:
        raise WriteError(f"{exc}{resume_hint(output_dir)}") from None
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = exc.filename or output_dir
        raise WriteError(f"file system error on {str(where)!r}: {exc.strerror or exc}. Files written before "
                         f"(earlier checkpoints included) are intact.{resume_hint(output_dir)}") from None
    finally:
        lock.release()
