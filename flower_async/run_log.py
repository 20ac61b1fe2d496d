"""The server's output folder: its checkpoint (a restarted ServerApp resumes from it), one row
per aggregated update (``updates.csv``), one row of metrics per aggregation (``metrics.csv`` and
TensorBoard), and the final model.

    checkpoint.npz   the global weights and the server optimizer's state, after the last step
    state.json       the model version, the run's clock, and the version history: every step's
                     time and contributions (node, version sent, staleness, weight)
    updates.csv      step, time, node, partition, sent_version, staleness, weight, round_trip
    metrics.csv      step, time, loss, accuracy, updates (the held-out loss after each step)
    tensorboard/     loss and accuracy per step (written when TensorFlow is installed)
    model.keras, saved_model/   the final model (``export``)

Each step appends its rows, then replaces the checkpoint atomically; a resumed run drops the
rows of steps after the checkpoint, so nothing is logged twice.
"""
import csv
import json
import os
import pathlib
import shutil

import numpy as np

UPDATE_COLUMNS = ("step", "time", "node", "partition", "sent_version", "staleness", "weight", "round_trip")
METRIC_COLUMNS = ("step", "time", "loss", "accuracy", "updates")


class RunLog:
    """The output folder of a run.

    Args:
      out: the folder (created).
    """

    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.updates_path = self.out / "updates.csv"
        self.metrics_path = self.out / "metrics.csv"
        self._tensorboard = None

    def load(self):
        """``(weights, optimizer state, state dict)`` of the checkpoint, or ``None`` without one.
        The CSV rows of steps after it are dropped, and TensorBoard rewritten from the rest."""
        path = self.out / "checkpoint.npz"
        if not path.exists():
            for stale in (self.updates_path, self.metrics_path):
                stale.unlink(missing_ok=True)
            shutil.rmtree(self.out / "tensorboard", ignore_errors=True)
            return None
        with np.load(path) as arrays:
            count = int(arrays["num_weights"])
            weights = [arrays[f"weight_{k}"] for k in range(count)]
            optimizer = {k: arrays[k] for k in arrays.files if k.startswith("optimizer_")}
        state = json.loads((self.out / "state.json").read_text())
        for csv_path in (self.updates_path, self.metrics_path):
            _keep_rows(csv_path, state["version"])
        shutil.rmtree(self.out / "tensorboard", ignore_errors=True)
        for row in _rows(self.metrics_path):
            self._scalars(int(row["step"]), {"loss": float(row["loss"]), "accuracy": float(row["accuracy"])})
        return weights, optimizer, state

    def save(self, weights, optimizer_state, state):
        """Replaces the checkpoint.

        Args:
          weights: the global weights.
          optimizer_state: the server optimizer's ``state()``.
          state: the JSON state (``version``, ``clock``, ``history``).
        """
        tmp = self.out / "checkpoint.tmp.npz"
        np.savez(tmp, num_weights=len(weights), **{f"weight_{k}": w for k, w in enumerate(weights)},
                 **optimizer_state)
        tmp_state = self.out / "state.json.tmp"
        tmp_state.write_text(json.dumps(state))
        os.replace(tmp, self.out / "checkpoint.npz")
        os.replace(tmp_state, self.out / "state.json")

    def log_step(self, updates, metrics):
        """Appends a step's rows.

        Args:
          updates: one dict per aggregated update (``UPDATE_COLUMNS``).
          metrics: the step's dict (``METRIC_COLUMNS``).
        """
        _append(self.updates_path, UPDATE_COLUMNS, updates)
        _append(self.metrics_path, METRIC_COLUMNS, [metrics])
        self._scalars(metrics["step"], {"loss": metrics["loss"], "accuracy": metrics["accuracy"]})

    def _scalars(self, step, values):
        try:
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2
        except ImportError:
            return
        if self._tensorboard is None:
            self._tensorboard = tf.summary.create_file_writer(str(self.out / "tensorboard"))
        # tf.summary.scalar lives in the tensorboard package; the core op with the scalars
        # plugin's metadata writes the same event
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()
        with self._tensorboard.as_default():
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)
        self._tensorboard.flush()

    def export(self, keras_model):
        """Writes ``model.keras`` and ``saved_model/``.

        Args:
          keras_model: the final Keras model.
        """
        keras_model.save(self.out / "model.keras")
        shutil.rmtree(self.out / "saved_model", ignore_errors=True)
        keras_model.export(str(self.out / "saved_model"), verbose=False)


def _rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _keep_rows(path, version):
    rows = [r for r in _rows(path) if int(r["step"]) < version]
    if path.exists():
        columns = UPDATE_COLUMNS if path.name == "updates.csv" else METRIC_COLUMNS
        path.unlink()
        _append(path, columns, rows)


def _append(path, columns, rows):
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)
