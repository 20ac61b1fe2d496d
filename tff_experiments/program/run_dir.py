"""The layout of a run's output folder, and the CSV truncation that makes resumes exact.

A run writes, under ``out_dir``::

    metrics.csv       one row per evaluation, keyed by server step, with virtual time (MetricsLogger)
    events.csv        one row per server step, e.g. clients aggregated, their staleness (EventLog)
    updates.csv       one row per client update of a step: client, version sent, staleness, weight
    tensorboard/      the metrics as TensorBoard scalars (MetricsLogger)
    checkpoints/      step_<n>/ SavedModels of the whole run state (Checkpointer)
    model/            the final model: model.keras and saved_model/ (export_keras_and_savedmodel)

Rows are logged before the checkpoint of their step is saved, so after a crash the CSV files may
hold rows beyond the last checkpoint (and a half-written last line): a resumed run truncates
them to the checkpointed step before it goes on, so no row is lost or repeated.
"""
import csv
import io
import math
import os
from pathlib import Path

METRICS_CSV = "metrics.csv"
EVENTS_CSV = "events.csv"
UPDATES_CSV = "updates.csv"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
STEP_FIELD = "step"


def run_paths(out_dir):
    """``{name: Path}`` of the files and folders above, under ``out_dir``."""
    out = Path(out_dir)
    return {
        "metrics": out / METRICS_CSV,
        "events": out / EVENTS_CSV,
        "updates": out / UPDATES_CSV,
        "tensorboard": out / TENSORBOARD_DIR,
        "checkpoints": out / CHECKPOINTS_DIR,
        "model": out / MODEL_DIR,
    }


def read_csv_rows(path):
    """``(fieldnames, rows)`` of a CSV file, ignoring an incomplete last line; ``([], [])`` if absent."""
    path = Path(path)
    if not path.exists():
        return [], []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a write cut short by a crash
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    rows = [row for row in reader if None not in row and None not in row.values()]
    return list(reader.fieldnames or []), rows


def write_csv_rows(path, fieldnames, rows):
    """Writes a CSV file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames))  # \r\n, as TFF's CSV manager
    writer.writeheader()
    writer.writerows(rows)
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
    os.replace(temp, path)


def truncate_csv(path, after_step, step_field=STEP_FIELD):
    """Keeps the complete rows with ``step <= after_step`` (none if ``after_step`` is None).

    Returns ``(fieldnames, kept_rows)``; the file is rewritten only if it exists.
    """
    fieldnames, rows = read_csv_rows(path)
    if not fieldnames:
        return [], []
    if step_field not in fieldnames:
        raise ValueError(f"{path} has no {step_field!r} column: not a file of this program")
    kept = [] if after_step is None else [r for r in rows if _as_int(r[step_field]) <= after_step]
    write_csv_rows(path, fieldnames, kept)
    return fieldnames, kept


def _as_int(text):
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def json_safe(value):
    """``value`` with NaN and infinities as ``None`` (JSON has no NaN), through dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
