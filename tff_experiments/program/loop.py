"""The run loop of ``python -m tff_experiments.robust``: resume, metrics at step 0, step /
evaluate / checkpoint under a progress bar, export. (The asynchronous command line runs
``tff_experiments.program.async_program.train_asynchronous_model`` instead.)

A *track* (``tff_experiments.robust.driver.MonnaRun``) supplies only what differs:

- ``run_config``: the JSON-able settings that determine the result (a resume must match them);
- ``num_steps``; ``initial_state()``; ``checkpoint_template()``, ``to_checkpoint(state)`` and
  ``from_checkpoint(saved)`` (the state as one fixed structure of arrays);
- ``step(state) -> (state, record)``: one server step;
- ``evaluation_due(step) -> bool`` and ``metrics(step, state, record, step_seconds) -> dict``
  (the row logged at ``step``; ``record`` is ``None`` at step 0);
- ``clock(step)``: where the progress bar stands after ``step`` (virtual time, or ``step``),
  ``horizon`` its end and ``progress_unit`` its label; ``progress_fields(row)`` its postfix;
- ``event_fields`` (``None``: no ``events.csv``) and ``event(step, record) -> dict``;
- ``export(state, model_dir)``.

Everything a step needs is in the checkpointed state, so a run killed at any moment and
restarted with the same command ends exactly where an uninterrupted run ends.
"""
import time

from tff_experiments.program.checkpoints import Checkpointer
from tff_experiments.program.metrics import EventLog, MetricsLogger
from tff_experiments.program.progress import VirtualTimeProgress
from tff_experiments.program.run_dir import run_paths


def run_loop(track, out, *, checkpoint_every, progress=None):
    """Runs (or resumes) ``track`` into ``out``; returns ``(final state, metric rows)``."""
    checkpointer = Checkpointer(out, every=checkpoint_every, config=track.run_config)
    saved, step = checkpointer.load_latest(track.checkpoint_template())
    resume = step if saved is not None else None
    state = track.from_checkpoint(saved) if saved is not None else track.initial_state()
    metrics = MetricsLogger(out, resume_step=resume)
    events = EventLog(out, track.event_fields, resume_step=resume) if track.event_fields else None
    if resume is None:
        metrics.log(0, track.metrics(0, state, None, 0.0))
        checkpointer.save(track.to_checkpoint(state), 0)
    row, seconds, timed = {}, 0.0, 0
    with metrics, VirtualTimeProgress(track.horizon, initial=track.clock(step), desc=track.progress_unit,
                                      force=progress) as bar:
        try:
            while step < track.num_steps:
                start = time.perf_counter()
                state, record = track.step(state)
                seconds, timed, step = seconds + time.perf_counter() - start, timed + 1, step + 1
                if events is not None:
                    events.append(track.event(step, record))
                if track.evaluation_due(step):
                    row = track.metrics(step, state, record, seconds / timed)
                    metrics.log(step, row)
                    seconds, timed = 0.0, 0
                checkpointer.maybe_save(track.to_checkpoint(state), step)
                bar.advance_to(track.clock(step), **track.progress_fields(row))
        finally:
            if events is not None:
                events.close()
    checkpointer.save(track.to_checkpoint(state), step)
    track.export(state, run_paths(out)["model"])
    return state, metrics.rows()
