r"""Label-skewed splits of a data set across federated clients, as the papers' code makes them.

``partition(name, labels, num_clients, alpha, seed)`` returns one array of example indices per
client. The names (``PARTITIONS``):

- ``"dirichlet"``: the project's Dirichlet(:math:`\alpha`) split
  (``tff_experiments.data.digits.dirichlet_partition``: without replacement, counts rounded to
  :math:`\lfloor N/M \rfloor` per client, a NumPy ``Generator``).
- ``"fedfix-dirichlet"``: Fraboni et al.'s (FedFix, JMLR 2023), as in
  ``Accenture/Labs-Federated-Learning`` (branch ``asynchronous_FL``), ``FL/read_db.py``,
  ``create_ds_with_dirichlet`` and ``create_pkl_files_dirichlet``: every client draws
  :math:`p_i \sim \mathrm{Dir}(\alpha \mathbf{1}_K)`, then :math:`n = \lfloor N/M \rfloor`
  examples, :math:`\lfloor n p_{ik} \rfloor` of each class :math:`k < K - 1` and the rest of
  class :math:`K - 1`, each class's examples drawn **with replacement**; :math:`\alpha = 0`
  gives client :math:`i` class :math:`i \bmod K` only. Their experiments: MNIST with
  :math:`M = 10` (also 20, 30), :math:`\alpha \in \{0, 0.1, 10000\}` (``list_exp_to_run.py``).
- ``"monna-dirichlet"``: Farhadkhani et al.'s (MoNNA, ICML 2023), as in
  ``LPD-EPFL/robust-collaborative-learning``, ``experiments/dataset.py``, ``Dataset.__init__``
  (its ``alpha_dirichlet`` branch, ``_distribute`` and ``_draw_indices``): worker :math:`i`
  asks for :math:`\lfloor n p_{ik} \rfloor` examples of class :math:`k` (truncated, so fewer
  than :math:`n` in all), drawn **without replacement** (all of the class when it has fewer),
  independently of the other workers. Their MNIST experiments: :math:`n = 26` machines of which
  :math:`f = 5` Byzantine, so :math:`M = 21` honest workers share the data,
  :math:`\alpha \in \{1, 5\}` (``reproduce.py``).
- ``"extreme"``: MoNNA's "extreme heterogeneity" (the same ``Dataset.__init__``, its
  ``heterogeneity`` branch): the indices sorted by class (stably), cut into :math:`M`
  contiguous near-equal chunks (``np.array_split``); no randomness, ``alpha`` unused.

The papers' partitions use their code's random streams: ``fedfix-dirichlet`` a NumPy
``RandomState(seed)`` for the proportions then the draws (the authors seed NumPy's global state
with 42 before the proportions when :math:`\alpha > 0`, and with 0 in ``get_dataloaders``
otherwise: ``seed=42`` / ``seed=0`` give their split of the same labels); ``monna-dirichlet`` a
NumPy ``RandomState(seed)`` for the proportions and Python's ``random.Random(seed)`` for the
draws (``peerToPeer.py`` seeds both globals with ``--seed``, 1 to 5 in their runs, and nothing
draws from them before the split). Within a client the indices keep the authors' order (class
by class, in draw order); ``"dirichlet"``'s are sorted.

Nothing here imports TensorFlow or TFF, except ``partitioned_client_data``, when called.
"""
import random

import numpy as np

from tff_experiments.data.digits import checked_alpha, dirichlet_partition

PARTITIONS = ("dirichlet", "fedfix-dirichlet", "monna-dirichlet", "extreme")
# Partitions whose split depends on alpha.
USES_ALPHA = ("dirichlet", "fedfix-dirichlet", "monna-dirichlet")


def check_partition(name, alpha):
    """Raises a one-line ``ValueError`` unless ``name`` is a partition that can take ``alpha``.

    Args:
      name: a partition name (``PARTITIONS``).
      alpha: its Dirichlet concentration (ignored by ``"extreme"``).
    """
    if name not in PARTITIONS:
        raise ValueError(f"the partition must be one of {', '.join(PARTITIONS)}, got {name!r}")
    if name not in USES_ALPHA:
        return
    alpha = checked_alpha(alpha)
    if name == "monna-dirichlet" and alpha == 0:  # NumPy's dirichlet refuses 0, as in their code
        raise ValueError("alpha must be > 0 for the monna-dirichlet partition (the authors draw "
                         "Dirichlet(alpha) for every worker)")


def _check_counts(labels, num_clients):
    labels = np.asarray(labels).reshape(-1)
    if isinstance(num_clients, bool) or int(num_clients) != num_clients or num_clients < 1:
        raise ValueError(f"the number of clients must be an integer >= 1, got {num_clients}")
    if num_clients > len(labels):
        raise ValueError(
            f"{num_clients} clients need at least one example each, but the data has only {len(labels)}"
        )
    if len(labels) and (labels.min() < 0 or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError("the labels must be integers >= 0")
    return labels, int(num_clients)


def fedfix_dirichlet_partition(labels, num_clients, alpha, seed=42):
    r"""Fraboni et al.'s Dirichlet split (``FL/read_db.py``, ``create_ds_with_dirichlet``).

    Client :math:`i` gets :math:`n = \lfloor N/M \rfloor` indices: :math:`c_{ik} =
    \lfloor n p_{ik} \rfloor` of class :math:`k` for :math:`k < K - 1`, and
    :math:`n - \sum_{k<K-1} c_{ik}` of the last class, each drawn uniformly **with replacement**
    among the indices of that class (``np.random.choice``), where :math:`p_i \sim
    \mathrm{Dir}(\alpha \mathbf{1}_K)` and :math:`K = \max(\text{labels}) + 1`; with
    :math:`\alpha = 0`, :math:`p_i` is the indicator of class :math:`i \bmod K`.

    Args:
      labels: 1-D array of integer labels in ``0..K-1``, one per example (every class that a
        client draws from must occur).
      num_clients: the number of clients :math:`M`, at most the number of examples.
      alpha: the Dirichlet concentration, >= 0.
      seed: the seed of the ``np.random.RandomState`` that draws the proportions, then each
        client's indices in client and class order (the authors': 42 when ``alpha > 0``, 0
        when ``alpha == 0``).

    Returns:
      A list of ``num_clients`` int64 index arrays of length :math:`n` each (repeats possible),
      in the authors' order: class by class, in draw order.
    """
    check_partition("fedfix-dirichlet", alpha)
    labels, num_clients = _check_counts(labels, num_clients)
    alpha = float(alpha)
    rng = np.random.RandomState(seed)
    num_classes = int(labels.max()) + 1
    if alpha == 0:
        proportions = np.eye(num_classes)[np.arange(num_clients) % num_classes]
    else:
        proportions = rng.dirichlet([alpha] * num_classes, size=num_clients)
    per_client = len(labels) // num_clients
    by_class = [np.flatnonzero(labels == k) for k in range(num_classes)]
    partition = []
    for i in range(num_clients):
        counts = (proportions[i] * per_client).astype(int)
        counts[-1] = per_client - np.sum(counts[:-1])  # the last class takes the remainder
        for k in np.flatnonzero(counts):
            if not len(by_class[k]):
                raise ValueError(f"client {i} draws {counts[k]} examples of class {k}, which has none")
        chosen = [rng.choice(pool, count) for pool, count in zip(by_class, counts)]
        partition.append(np.concatenate(chosen).astype(np.int64))
    return partition


def monna_dirichlet_partition(labels, num_clients, alpha, seed):
    r"""Farhadkhani et al.'s Dirichlet split (``experiments/dataset.py``, ``Dataset.__init__``).

    Worker :math:`i` gets :math:`\min(\lfloor n p_{ik} \rfloor, N_k)` distinct indices of each
    class :math:`k` (``random.sample``), :math:`n = \lfloor N/M \rfloor`,
    :math:`p_i \sim \mathrm{Dir}(\alpha \mathbf{1}_K)` with :math:`K = \max(\text{labels}) + 1`
    (a row that underflows to NaN gives the worker :math:`n` examples of one random class, the
    authors' "numerical crashes" fallback). Workers draw independently: two may share examples.

    Args:
      labels: 1-D array of integer labels in ``0..K-1``, one per example.
      num_clients: the number of (honest) workers :math:`M`, at most the number of examples.
      alpha: the Dirichlet concentration, > 0.
      seed: seeds both the ``np.random.RandomState`` of the proportions and the
        ``random.Random`` of the draws (the authors' ``--seed``).

    Returns:
      A list of ``num_clients`` int64 index arrays (each at most :math:`n` long, possibly
      empty when :math:`n` is below :math:`K`), in the authors' order.
    """
    check_partition("monna-dirichlet", alpha)
    labels, num_clients = _check_counts(labels, num_clients)
    numpy_rng, python_rng = np.random.RandomState(seed), random.Random(seed)
    num_classes = int(labels.max()) + 1
    per_worker = len(labels) // num_clients
    buckets = [np.flatnonzero(labels == k).tolist() for k in range(num_classes)]
    with np.errstate(invalid="ignore"):  # NaN rows become negative integers: their fallback
        counts = (per_worker * numpy_rng.dirichlet(np.repeat(float(alpha), num_classes), size=num_clients)).astype(int)
    for row in counts:
        if row[0] < 0:
            filled = numpy_rng.randint(num_classes)
            row[:] = (np.arange(num_classes) == filled) * per_worker
    partition = []
    for row in counts:
        indices = []
        for count, bucket in zip(row, buckets):
            indices += python_rng.sample(bucket, min(int(count), len(bucket)))
        partition.append(np.asarray(indices, dtype=np.int64))
    return partition


def extreme_partition(labels, num_clients):
    """MoNNA's "extreme heterogeneity" split: indices sorted by class, cut into equal chunks.

    The authors' ``heterogeneity`` branch of ``Dataset.__init__`` (``experiments/dataset.py``):
    the indices of class 0, then class 1, ..., each in data order, split by
    ``np.array_split`` into ``num_clients`` contiguous chunks (sizes differ by at most one), so
    each client sees one or two classes when there are as many clients as classes.

    Args:
      labels: 1-D array of integer labels >= 0, one per example.
      num_clients: the number of clients, at most the number of examples.

    Returns:
      A list of ``num_clients`` int64 index arrays, each non-empty.
    """
    labels, num_clients = _check_counts(labels, num_clients)
    ordered = np.argsort(labels, kind="stable")
    return [chunk.astype(np.int64) for chunk in np.array_split(ordered, num_clients)]


def partition(name, labels, num_clients, alpha=None, seed=0):
    """The split ``name`` (``PARTITIONS``) of ``labels`` across ``num_clients`` clients.

    Args:
      name: ``"dirichlet"``, ``"fedfix-dirichlet"``, ``"monna-dirichlet"`` or ``"extreme"``.
      labels: 1-D array of integer labels, one per example.
      num_clients: the number of clients.
      alpha: the Dirichlet concentration of the Dirichlet splits (unused by ``"extreme"``).
      seed: the split's seed (unused by ``"extreme"``).

    Returns:
      A list of ``num_clients`` int64 index arrays into ``labels``.

    Raises:
      ValueError: an unknown name, a bad ``alpha`` or number of clients, or a client left
        without any example (one line).
    """
    check_partition(name, alpha)
    if name == "dirichlet":
        parts = dirichlet_partition(labels, num_clients, alpha, seed)
    elif name == "fedfix-dirichlet":
        parts = fedfix_dirichlet_partition(labels, num_clients, alpha, seed)
    elif name == "monna-dirichlet":
        parts = monna_dirichlet_partition(labels, num_clients, alpha, seed)
    else:
        parts = extreme_partition(labels, num_clients)
    empty = [i for i, idx in enumerate(parts) if not len(idx)]
    if empty:
        raise ValueError(f"the {name} partition leaves {len(empty)} of the {num_clients} clients without "
                         f"examples (client {empty[0]}, ...): use fewer clients or a larger alpha")
    return parts


def partitioned_client_data(x, y, parts):
    """A ``ClientData`` of the examples ``(x, y)`` split by ``parts`` (``partition``'s output).

    Args:
      x: the examples' features, an array of ``len(y)`` rows.
      y: their labels, an array.
      parts: one index array per client; client ``i`` gets id ``str(i)``.

    Returns:
      A ``tff.simulation.datasets.ClientData`` with elements ``{'x': ..., 'y': ...}``, with
      ``client_sizes`` and ``client_arrays(id)`` (``tff_experiments.data.array_client_data``).
    """
    from tff_experiments.data.in_memory import array_client_data  # imports TFF

    return array_client_data({str(i): {"x": x[idx], "y": y[idx]} for i, idx in enumerate(parts)})
