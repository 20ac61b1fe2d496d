"""The papers' partitions (``tff_experiments.data.partitions``) against literal ports of the
authors' own code, run at the same seeds: every client gets the same indices, in the same order.

The ports below copy the authors' functions line by line, with their calls on NumPy's and
Python's global random state (``np.random.seed`` / ``np.random.dirichlet`` /
``np.random.choice`` / ``np.random.randint``, ``random.seed`` / ``random.sample``), in the order
their programs make them; only what reads the data set changes:

- FedFix (Accenture/Labs-Federated-Learning, branch ``asynchronous_FL``, ``FL/read_db.py``):
  ``get_dataloaders``' seeding, ``create_ds_with_dirichlet`` and
  ``create_pkl_files_dirichlet(train=True)``, with torchvision's data set replaced by an object
  with the same ``targets`` whose ``data`` are the example indices, so that the ``list_X`` the
  authors pickle *is* each client's indices;
- MoNNA (LPD-EPFL/robust-collaborative-learning, ``experiments/dataset.py``, ``Dataset.__init__``
  after ``peerToPeer.py``'s seeding): its ``alpha_dirichlet`` branch (``_distribute``,
  ``_draw_indices``) and its ``heterogeneity`` branch, returning the index lists its
  ``torch.utils.data.Subset``s take. ``targets`` is a torch tensor there:
  ``(targets == label).nonzero().tolist()`` is ``np.argwhere(targets == label).tolist()``
  (both ``[[i], ...]`` in index order); no torch random call is involved.

The implementation draws from its own ``np.random.RandomState`` / ``random.Random`` instead of
the globals (the same streams for the same seeds).
"""
import random
import types

import numpy as np
import pytest
from numpy.random import dirichlet

from tff_experiments.data import mnist, partitions


@pytest.fixture(autouse=True)
def keep_global_random_state():
    """The ports seed the global generators, as the authors' programs do: restore them after."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    yield
    np.random.set_state(numpy_state)
    random.setstate(python_state)


# ---------------------------------------------------------------------------------------------
# FedFix's code, ported (FL/read_db.py of the asynchronous_FL branch)


class _Db:
    """torchvision's ``datasets.MNIST`` as ``create_pkl_files_dirichlet`` uses it: ``targets``,
    ``data`` (here the example indices) and ``len``."""

    def __init__(self, targets):
        self.targets = list(int(t) for t in targets)
        self.data = np.arange(len(self.targets))

    def __len__(self):
        return len(self.targets)


def fedfix_create_pkl_files_dirichlet(db, matrix, n_clients):
    # create_pkl_files_dirichlet(dataset_name, matrix, n_clients, backdoored=False, train=True),
    # its body from `n_samples = ...` on, returning what it pickles.
    n_samples = len(db) // n_clients
    n_classes = max(db.targets) + 1

    # INDICES OF EACH CLASS,
    idx_classes = [
        np.where(np.array(db.targets) == k)[0] for k in range(n_classes)
    ]

    list_X, list_y = [], []

    for i in range(n_clients):

        # AMOUNT OF SAMPLES FOR EACH CLASS
        samples_repart_i = (matrix[i] * n_samples).astype(int)
        samples_repart_i[-1] = n_samples - np.sum(samples_repart_i[:-1])

        # GET THE INDICES OF THE `client` DATA POINTS
        data_points_idx_i = np.concatenate(
            [
                np.random.choice(class_k_idx, n_samples)
                for class_k_idx, n_samples in zip(idx_classes, samples_repart_i)
            ]
        ).astype(int)

        # GIVE THE 'client' ITS FEATURES AND LABELS
        list_X += [np.array([np.array(db.data[idx])
                             for idx in data_points_idx_i])]

        list_y += [np.array([db.targets[idx] for idx in data_points_idx_i])]

    return list_X, list_y


def fedfix_authors_split(targets, dataset_name, n_clients):
    """``get_dataloaders(dataset_name, batch_size, n_clients)`` up to the training pickle."""
    # get_dataloaders: "Reproductibility in the creation of the datasets"
    np.random.seed(0)
    dataset, alpha = dataset_name.split("_")
    alpha = float(alpha)

    # create_ds_with_dirichlet(dataset_name, alpha, n_clients, backdoored=False)
    if dataset_name.split("_")[0][:8] == "CIFAR100":
        n_classes = 100
    else:
        n_classes = 10

    if alpha == 0:
        matrix = np.concatenate(
            [np.identity(n_classes) for _ in range(n_clients // n_classes + 1)]
        )[:n_clients]
    elif alpha > 0.:
        np.random.seed(42)
        matrix = dirichlet([alpha] * n_classes, size=n_clients)

    return fedfix_create_pkl_files_dirichlet(_Db(targets), matrix, n_clients)


# ---------------------------------------------------------------------------------------------
# MoNNA's code, ported (experiments/dataset.py, Dataset.__init__, after peerToPeer.py's seeding)


def monna_authors_dirichlet(targets, honest_workers, numb_labels, alpha_dirichlet, seed):
    # peerToPeer.py, "Enforce reproducibility": the generators the split draws from
    np.random.seed(seed)
    random.seed(seed)

    def _distribute(alpha, nb_workers, nb_classes, samples_per_worker):
        """ returns number of samples of each class for each worker """
        samples_distribution = samples_per_worker * np.random.dirichlet(np.repeat(alpha, nb_classes), size=nb_workers)
        samples_distribution = samples_distribution.astype(int)
        # handle numerical crashes
        for worker in samples_distribution:
            if worker[0] < 0:
                idx_filled = np.random.randint(nb_classes)
                for idx in range(nb_classes):
                    worker[idx] = int(idx == idx_filled) * samples_per_worker
        return samples_distribution

    def _draw_indices(samples_distribution, buckets_indices):
        """ returns all indices selected for each worker """
        all_indices = list()
        for distr in samples_distribution:
            worker_indices = list()
            for nb_samples, bucket in zip(distr, buckets_indices):
                samples_to_extract = min(nb_samples, len(bucket))
                worker_indices += random.sample(bucket, samples_to_extract)
            all_indices.append(worker_indices)
        return all_indices

    data_per_worker = len(targets) // honest_workers

    buckets_indices = []
    labels = range(numb_labels)
    for label in labels:
        label_indices = np.argwhere(targets == label).tolist()  # torch: (targets == label).nonzero().tolist()
        label_indices = [item for sublist in label_indices for item in sublist]
        buckets_indices.append(label_indices)
    with np.errstate(invalid="ignore"):  # NaN rows cast to integers: what their fallback catches
        samples_distribution = _distribute(alpha=alpha_dirichlet, nb_workers=honest_workers, nb_classes=numb_labels,
                                           samples_per_worker=data_per_worker)
    all_indices = _draw_indices(samples_distribution, buckets_indices)
    return all_indices


def monna_authors_extreme(targets, honest_workers, numb_labels):
    labels = range(numb_labels)
    ordered_indices = []
    for label in labels:
        label_indices = np.argwhere(targets == label).tolist()  # torch: (targets == label).nonzero().tolist()
        label_indices = [item for sublist in label_indices for item in sublist]
        ordered_indices += label_indices

    split_indices = np.array_split(ordered_indices, honest_workers)
    return [split_indices[worker_id].tolist() for worker_id in range(honest_workers)]


# ---------------------------------------------------------------------------------------------
# The labels: MNIST's (the file of scripts/fetch_data.sh) and generated ones of uneven classes.


def generated_labels(size=2003, seed=7):
    rng = np.random.default_rng(seed)
    return rng.choice(10, size=size, p=np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum()).astype(np.int64)


def mnist_labels():
    if not mnist.mnist_path().is_file():
        pytest.skip("no MNIST file: run bash scripts/fetch_data.sh")
    return mnist.load_mnist_split(seed=0)[1]


LABELS = {"generated": generated_labels, "mnist": mnist_labels}


def assert_same_clients(got, want):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, np.asarray(w, dtype=np.int64), err_msg=f"client {i}")


# The authors' MNIST runs: M = 10 with alpha 0 (one class each), 0.1 and 10000 (i.i.d.-like),
# M = 20 and 30 with alpha 0.1 (list_exp_to_run.py).
@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("clients,alpha", [(10, "0."), (10, "0.1"), (10, "10000"), (20, "0.1"), (30, "0.1"),
                                           (23, "0."), (7, "1.")])
def test_fedfix_dirichlet_is_the_authors_split(labels, clients, alpha):
    y = LABELS[labels]()
    want_x, want_y = fedfix_authors_split(y, f"MNIST_{alpha}", clients)
    seed = 42 if float(alpha) > 0 else 0  # the authors' seeds (see the port)
    got = partitions.fedfix_dirichlet_partition(y, clients, float(alpha), seed=seed)
    assert_same_clients(got, want_x)
    for g, labels_of_client in zip(got, want_y):
        np.testing.assert_array_equal(y[g], labels_of_client)
        assert len(g) == len(y) // clients
    for a, b in zip(partitions.partition("fedfix-dirichlet", y, clients, float(alpha), seed), got):
        np.testing.assert_array_equal(a, b)


def test_fedfix_alpha_zero_gives_client_i_class_i_mod_10_with_replacement():
    y = generated_labels()
    parts = partitions.fedfix_dirichlet_partition(y, 23, 0.0, seed=5)
    for i, idx in enumerate(parts):
        assert set(y[idx]) == {i % 10}
    assert any(len(np.unique(idx)) < len(idx) for idx in parts)  # drawn with replacement


# The authors' MNIST runs: n = 26 machines, f = 5 Byzantine, 21 honest, alpha 1 and 5, seeds 1..5
# (reproduce.py); and alphas small enough for NumPy's Dirichlet to give NaN rows (their fallback).
@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("honest,alpha,seed", [(21, 1.0, s) for s in range(1, 6)] + [(21, 5.0, 1), (21, 5.0, 3),
                                                                                    (7, 0.3, 0), (40, 0.01, 2),
                                                                                    (21, 1e-4, 4)])
def test_monna_dirichlet_is_the_authors_split(labels, honest, alpha, seed):
    y = LABELS[labels]()
    want = monna_authors_dirichlet(y, honest, 10, alpha, seed)
    got = partitions.monna_dirichlet_partition(y, honest, alpha, seed)
    assert_same_clients(got, want)
    for idx in got:
        assert len(np.unique(idx)) == len(idx) <= len(y) // honest  # without replacement, truncated


def test_monna_dirichlet_nan_fallback_is_exercised():
    # At alpha = 1e-4 NumPy's (legacy) Dirichlet gives NaN rows: the authors give such a worker
    # all its examples from one random class; the other rows still come from the Dirichlet draw.
    y = generated_labels()
    rows = np.random.RandomState(4).dirichlet(np.repeat(1e-4, 10), size=21)
    broken = np.isnan(rows).any(axis=1)
    assert 0 < broken.sum() < 21
    parts = partitions.monna_dirichlet_partition(y, 21, 1e-4, 4)
    for i in np.flatnonzero(broken):
        assert len(set(y[parts[i]])) == 1 and len(parts[i]) == len(y) // 21


@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("honest", [1, 10, 21, 33])
def test_extreme_is_the_authors_split(labels, honest):
    y = LABELS[labels]()
    assert_same_clients(partitions.extreme_partition(y, honest), monna_authors_extreme(y, honest, 10))
    assert_same_clients(partitions.partition("extreme", y, honest, alpha=None), monna_authors_extreme(y, honest, 10))


def test_dirichlet_is_the_projects_split():
    from tff_experiments.data.digits import dirichlet_partition

    y = generated_labels()
    assert_same_clients(partitions.partition("dirichlet", y, 12, 0.5, 3), dirichlet_partition(y, 12, 0.5, 3))


@pytest.mark.parametrize("call,fragment", [
    (lambda y: partitions.partition("shards", y, 10, 1.0), "one of dirichlet, fedfix-dirichlet"),
    (lambda y: partitions.partition("monna-dirichlet", y, 10, 0.0), "alpha must be > 0"),
    (lambda y: partitions.partition("fedfix-dirichlet", y, 10, -1.0), "alpha must be a finite number >= 0"),
    (lambda y: partitions.partition("dirichlet", y, 10, float("nan")), "alpha must be a finite number >= 0"),
    (lambda y: partitions.partition("extreme", y, 0), "integer >= 1"),
    (lambda y: partitions.partition("fedfix-dirichlet", y, 5000, 1.0), "5000 clients need at least one example"),
    # 400 workers of 5 examples: near-uniform proportions (1/2 example per class) truncate to none.
    (lambda y: partitions.partition("monna-dirichlet", y, 400, 100.0, 0), "without examples"),
])
def test_bad_input_is_a_one_line_value_error(call, fragment):
    with pytest.raises(ValueError) as info:
        call(generated_labels())
    assert fragment in str(info.value) and "\n" not in str(info.value)
