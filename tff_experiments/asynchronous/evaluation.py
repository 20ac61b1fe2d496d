r"""Evaluation of the global model: held-out data, and the federated objectives it optimizes.

Fraboni et al. (JMLR 2023) distinguish the federated objective
:math:`\mathcal L(\theta) = \sum_i p_i F_i(\theta)` (client importance :math:`p_i`) from the
surrogate objective :math:`\sum_i r_i F_i(\theta)` that a scheme actually minimizes, where
:math:`r_i` is client i's share of the aggregation weight (``Schedule.effective_importance``).
:class:`GlobalEvaluator` reports both on the clients' training data, and loss and accuracy on
held-out data.
"""
import numpy as np

from tff_experiments.models import per_example_loss_and_accuracy


def _subsample(n, limit, rng):
    return np.arange(n) if limit is None or n <= limit else np.sort(rng.choice(n, limit, replace=False))


class GlobalEvaluator:
    """``evaluator(weights) -> dict`` of the metrics of a global model.

    Args:
      keras_builder: the model (``tff_experiments.models`` builder).
      client_arrays: per client, ``{'x': ..., 'y': ...}`` training arrays (client order).
      importance: :math:`p_i`; ``surrogate``: :math:`r_i` (optional).
      test: ``(x_test, y_test)`` held-out arrays.
      max_test_examples, max_examples_per_client: fixed, seeded subsamples (for big data).
      per_client: also return ``client_loss``, the list of the :math:`F_i`.
    """

    def __init__(self, keras_builder, client_arrays, importance, test, surrogate=None,
                 max_test_examples=None, max_examples_per_client=None, seed=0, per_client=False):
        rng = np.random.default_rng(seed)
        self.keras_builder = keras_builder
        x_test, y_test = test
        keep = _subsample(len(x_test), max_test_examples, rng)
        self.x_test, self.y_test = np.asarray(x_test)[keep], np.asarray(y_test)[keep]
        xs, ys, owner = [], [], []
        for i, arrays in enumerate(client_arrays):
            keep = _subsample(len(arrays["y"]), max_examples_per_client, rng)
            xs.append(np.asarray(arrays["x"])[keep])
            ys.append(np.asarray(arrays["y"])[keep])
            owner.append(np.full(len(keep), i))
        self.x_train, self.y_train = np.concatenate(xs), np.concatenate(ys)
        self.owner = np.concatenate(owner)
        self.num_clients = len(client_arrays)
        self.importance = np.asarray(importance, dtype=np.float64)
        self.surrogate = None if surrogate is None else np.asarray(surrogate, dtype=np.float64)
        self.per_client = per_client

    def __call__(self, weights):
        metrics = {}
        if len(self.x_test):
            losses, hits = per_example_loss_and_accuracy(self.keras_builder, weights, self.x_test, self.y_test)
            metrics["test_loss"], metrics["test_accuracy"] = float(losses.mean()), float(hits.mean())
        losses, hits = per_example_loss_and_accuracy(self.keras_builder, weights, self.x_train, self.y_train)
        counts = np.bincount(self.owner, minlength=self.num_clients)
        client_loss = np.bincount(self.owner, losses, self.num_clients) / counts
        client_accuracy = np.bincount(self.owner, hits, self.num_clients) / counts
        metrics["federated_loss"] = float(self.importance @ client_loss)
        metrics["federated_accuracy"] = float(self.importance @ client_accuracy)
        if self.surrogate is not None:
            metrics["surrogate_loss"] = float(self.surrogate @ client_loss)
        if self.per_client:
            metrics["client_loss"] = client_loss.tolist()
        return metrics
