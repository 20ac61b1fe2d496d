r"""scikit-learn's 8x8 handwritten digits, split across federated clients by Dirichlet(alpha).

The split follows the papers' code (Accenture/Labs-Federated-Learning ``FL/read_db.py``,
``create_ds_with_dirichlet``; LPD-EPFL/robust-collaborative-learning ``experiments/dataset.py``,
``alpha_dirichlet``): every one of the :math:`M` clients asks for
:math:`n = \lfloor N / M \rfloor` examples, with class proportions

.. math::

    p_i \sim \mathrm{Dir}(\alpha \mathbf{1}_K), \qquad i = 1, \dots, M,

so :math:`\mathbb{E}[p_{ik}] = 1/K` and
:math:`\mathrm{Var}[p_{ik}] = \frac{(1/K)(1 - 1/K)}{K\alpha + 1}`: small :math:`\alpha` gives
clients dominated by few classes, large :math:`\alpha` nearly i.i.d. clients. :math:`\alpha = 0`
is the limit of one class per client, assigned round-robin (client :math:`i` gets class
:math:`i \bmod K`, the authors' identity-matrix construction).

Client :math:`i` then draws :math:`c_{ik}` examples of class :math:`k` without replacement, where
:math:`c_{ik}` rounds :math:`n p_{ik}` to integers summing to :math:`n` (largest remainders; the
authors' code truncates and puts the remainder on the last class). As in both authors' codes,
clients draw independently, so two clients may hold the same example; when a client asks for
more examples of a class than exist, it gets all of them (the EPFL code's ``min``; the Accenture
code samples with replacement instead), so it may hold fewer than :math:`n`.

Nothing here imports TFF at module level.
"""
import numpy as np


NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 1)


def load_digits_split(test_fraction=0.2, seed=0):
    """scikit-learn's digits with a fixed stratified train/test split.

    Args:
      test_fraction: the share of the 1,797 images held out for testing, in (0, 1).
      seed: the split's seed.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images float32 in [0, 1] of shape
      ``(n, 8, 8, 1)`` (the 0..16 intensities divided by 16), labels int32 in 0..9.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0)).reshape((-1,) + IMAGE_SHAPE)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def _rounded_counts(proportions, total):
    """Integers :math:`c_k \\ge 0` with :math:`\\sum_k c_k = total`, closest to ``total * p``."""
    exact = proportions * total
    counts = np.floor(exact).astype(np.int64)
    shortfall = int(total - counts.sum())
    if shortfall > 0:  # the largest fractional parts get the remaining examples
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:shortfall]] += 1
    return counts


def checked_alpha(alpha):
    """``alpha`` as a float, or a one-line ``ValueError`` unless it is a finite number >= 0.

    Args:
      alpha: a Dirichlet concentration.
    """
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}") from None
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    return alpha


def dirichlet_partition(labels, num_clients, alpha, seed):
    """Splits example indices across clients, class proportions ~ Dirichlet(alpha) per client.

    Args:
      labels: 1-D array of integer labels, one per example.
      num_clients: number of clients :math:`M \\ge 1`, at most the number of examples.
      alpha: Dirichlet concentration :math:`\\alpha \\ge 0`; 0 means one class per client,
        assigned round-robin over the classes present in ``labels``.
      seed: seed of the NumPy generator that draws the proportions and the examples.

    Returns:
      A list of ``num_clients`` sorted int64 index arrays into ``labels``, each non-empty.

    Raises:
      ValueError: negative or non-finite ``alpha``, ``num_clients < 1``, or more clients than
        examples.
    """
    labels = np.asarray(labels).reshape(-1)
    alpha = checked_alpha(alpha)
    if isinstance(num_clients, bool) or int(num_clients) != num_clients or num_clients < 1:
        raise ValueError(f"the number of clients must be an integer >= 1, got {num_clients}")
    num_clients = int(num_clients)
    if num_clients > len(labels):
        raise ValueError(
            f"{num_clients} clients need at least one example each, but the data has only {len(labels)}"
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    by_class = [np.flatnonzero(labels == c) for c in classes]
    num_classes = len(classes)
    per_client = len(labels) // num_clients

    if alpha == 0.0:
        proportions = np.eye(num_classes)[np.arange(num_clients) % num_classes]
    else:
        proportions = rng.dirichlet(np.full(num_classes, alpha), size=num_clients)
        # Tiny alpha can underflow every gamma draw of a row: give that client one class.
        broken = ~np.isfinite(proportions).all(axis=1) | (proportions.sum(axis=1) <= 0)
        for i in np.flatnonzero(broken):
            proportions[i] = np.eye(num_classes)[rng.integers(num_classes)]

    partition = []
    for i in range(num_clients):
        counts = _rounded_counts(proportions[i], per_client)
        chosen = [
            rng.choice(pool, size=min(int(c), len(pool)), replace=False)
            for pool, c in zip(by_class, counts)
            if c > 0
        ]
        partition.append(np.sort(np.concatenate(chosen)).astype(np.int64))
    return partition


def digits_client_data(num_clients, alpha, seed=0, test_fraction=0.2):
    """The digits training split across ``num_clients`` clients by ``dirichlet_partition``.

    Args:
      num_clients: the number of clients :math:`M`.
      alpha: the Dirichlet concentration of each client's class proportions, >= 0; 0 gives
        one class per client.
      seed: the seed of the train/test split and of the partition.
      test_fraction: the share of the images held out for testing.

    Returns:
      ``(client_data, (x_test, y_test))``: a ``tff.simulation.datasets.ClientData`` with
      client ids ``"0"`` .. ``"M-1"`` and elements ``{'x': float32 (8, 8, 1), 'y': int32 ()}``
      (it also has ``client_sizes`` and ``client_arrays(id)``, see
      ``tff_experiments.data.array_client_data``), and the held-out test split as NumPy arrays.
    """
    x_train, y_train, x_test, y_test = load_digits_split(test_fraction=test_fraction, seed=seed)
    partition = dirichlet_partition(y_train, num_clients, alpha, seed)
    from tff_experiments.data.in_memory import array_client_data  # imports TFF

    client_data = array_client_data(
        {str(i): {"x": x_train[idx], "y": y_train[idx]} for i, idx in enumerate(partition)}
    )
    return client_data, (x_test, y_test)
