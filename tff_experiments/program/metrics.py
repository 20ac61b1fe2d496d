"""Metrics (CSV + TensorBoard, through ``tff.program`` release managers) and per-step event logs.

Both take ``resume_step``: ``None`` starts a fresh run (old rows are dropped); an integer is
the step of the checkpoint a run resumes from, and rows logged after it (by the run that
crashed) are dropped, so nothing is repeated. Typical driver::

    state, step = checkpointer.load_latest(template)
    resume = step if state is not None else None
    metrics = MetricsLogger(out_dir, resume_step=resume)
    events = EventLog(out_dir, ["step", "time", "client", "staleness", "weight"], resume_step=resume)
    ...
    metrics.log(n, {"loss": ..., "accuracy": ...}, time=clock)   # then
    checkpointer.maybe_save(state, n)
"""
import csv
import io
import shutil
from collections.abc import Mapping

import numpy as np

from tff_experiments.program import run_dir
from tff_experiments.program.sync import run_sync


def _scalar(value):
    """A Python number (or string) from a NumPy/TF scalar, for the release managers."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    return value


class MetricsLogger:
    """Writes metric rows keyed by server step to ``metrics.csv`` and TensorBoard.

    The CSV goes through ``tff.program.CSVFileReleaseManager`` (key column ``step``), the
    TensorBoard scalars through ``tff.program.TensorBoardReleaseManager`` (at step ``step``).
    Virtual time is the ``time`` column (and the ``time`` scalar); the manager writes the
    columns after ``step`` in name order. On a resume, the TensorBoard
    folder is rewritten from the kept CSV rows, so it holds no duplicate either.

    Args:
      out_dir: the run's output folder.
      resume_step: ``None`` for a fresh run (old rows are dropped), or the step of the
        checkpoint the run resumes from (rows after it are dropped).
    """

    def __init__(self, out_dir, resume_step=None):
        import tensorflow_federated as tff

        paths = run_dir.run_paths(out_dir)
        self.csv_path, self.tensorboard_dir = paths["metrics"], paths["tensorboard"]
        _, kept = run_dir.truncate_csv(self.csv_path, resume_step)
        if self.tensorboard_dir.exists():
            shutil.rmtree(self.tensorboard_dir)
        self._csv = tff.program.CSVFileReleaseManager(
            str(self.csv_path), key_fieldname=run_dir.STEP_FIELD
        )
        self._tensorboard = tff.program.TensorBoardReleaseManager(str(self.tensorboard_dir))
        for row in kept:  # replay what the resumed run keeps
            step = int(row.pop(run_dir.STEP_FIELD))
            run_sync(self._tensorboard.release(_numeric(row), step))

    def log(self, step, values, time=None):
        """Releases ``values`` (a flat mapping of scalars) at server step ``step``.

        Args:
          step: the server step (an int; rows must come in increasing step order).
          values: e.g. ``{'loss': 0.3, 'accuracy': 0.9}``.
          time: the virtual time, written as the ``time`` column.
        """
        row = {} if time is None else {"time": float(time)}
        row.update({str(k): _scalar(v) for k, v in values.items()})
        step = int(step)
        run_sync(self._csv.release(row, step))
        run_sync(self._tensorboard.release(_numeric(row), step))

    def rows(self):
        """The rows written so far, numbers parsed (``step`` as int)."""
        return read_metrics(self.csv_path)

    def close(self):
        """Flushes TensorBoard's writer (the CSV is written at every ``log``)."""
        writer = getattr(self._tensorboard, "_summary_writer", None)
        if writer is not None:
            writer.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def _numeric(row):
    """The entries of ``row`` that TensorBoard can plot, as floats."""
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _parse(text):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def read_metrics(path):
    """The rows of a ``metrics.csv`` as dicts, numbers parsed (for plots and tests).

    Args:
      path: the ``metrics.csv`` file.
    """
    _, rows = run_dir.read_csv_rows(path)
    return [{k: _parse(v) for k, v in row.items()} for row in rows]


def _cell(value):
    """CSV text of one value: sequences become ``a;b;c`` (e.g. the clients aggregated)."""
    value = _scalar(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return ";".join(str(_scalar(v)) for v in np.asarray(value).reshape(-1).tolist())
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"event log values must be one line, got {text!r}")
    return text


class EventLog:
    """Appends rows keyed by server step to a CSV file (``events.csv`` by default).

    ``fieldnames`` lists the columns; ``step`` is added first if missing. Rows are written and
    flushed as whole lines, so a crash loses at most the lines being written, which a resume
    drops (they lie after the checkpoint). A step may have many rows (``updates.csv``: one per
    client update). Sequence values are written as ``a;b;c``.

    Args:
      out_dir: the run's output folder.
      fieldnames: the columns.
      resume_step: ``None`` for a fresh run (old rows are dropped), or the step of the
        checkpoint the run resumes from (rows after it are dropped).
      filename: the file's name in ``out_dir``.
    """

    def __init__(self, out_dir, fieldnames, resume_step=None, filename=run_dir.EVENTS_CSV):
        fieldnames = [str(f) for f in fieldnames]
        if run_dir.STEP_FIELD not in fieldnames:
            fieldnames.insert(0, run_dir.STEP_FIELD)
        self.fieldnames = fieldnames
        self.path = run_dir.run_paths(out_dir)["events"].with_name(filename)
        old_fields, _ = run_dir.read_csv_rows(self.path)
        if resume_step is not None and old_fields and old_fields != fieldnames:
            raise ValueError(
                f"{self.path} has columns {old_fields}, this run writes {fieldnames}: use another output folder"
            )
        _, kept = run_dir.truncate_csv(self.path, resume_step)
        run_dir.write_csv_rows(self.path, fieldnames, kept)
        self._file = open(self.path, "a", encoding="utf-8", newline="")

    def append(self, row=None, **fields):
        """Writes one row (a mapping and/or keyword fields); missing columns stay empty."""
        self.extend([dict(row or {}, **fields)])

    def extend(self, rows):
        """Writes the rows (mappings; missing columns stay empty), then flushes once."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for values in rows:
            unknown = set(values) - set(self.fieldnames)
            if unknown:
                raise ValueError(f"unknown event fields {sorted(unknown)}; columns are {self.fieldnames}")
            if run_dir.STEP_FIELD not in values:
                raise ValueError("every event row needs its step")
            writer.writerow([_cell(values[f]) if f in values else "" for f in self.fieldnames])
        self._file.write(buffer.getvalue())  # whole lines only: a torn last one is dropped on resume
        self._file.flush()

    def rows(self):
        """The rows written so far, as dicts of strings."""
        return run_dir.read_csv_rows(self.path)[1]

    def close(self):
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
