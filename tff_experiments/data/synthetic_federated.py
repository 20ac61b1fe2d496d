r"""Synthetic(:math:`\alpha`, :math:`\beta`) (``tff_experiments.data.synthetic``) as TFF
``ClientData``: clients generated when their data is asked for, any number of them.
"""
import collections
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.data.synthetic import NUM_FEATURES, SHARED_STREAM, SyntheticGenerator, client_id


class SyntheticClientData(tff.simulation.datasets.ClientData):
    r"""A ``tff.simulation.datasets.ClientData`` of Synthetic(:math:`\alpha`, :math:`\beta`):
    clients ``f_00000`` .. ``f_{M-1}``, elements ``{'x': float32 (60,), 'y': int32 ()}``.

    A client is generated when its data is asked for and kept in a small cache of the
    latest ``cache_clients`` clients, so memory does not grow with the number of clients.

    Extra attributes, as the project's other ``ClientData``: ``client_sizes`` (a mapping
    ``{client_id: n}``, computed on demand) and ``client_arrays(client_id)``.
    ``generator`` is the :class:`SyntheticGenerator`. ``serializable_dataset_fn`` calls the
    NumPy generator through ``tf.numpy_function``: it works in this Python process (TFF's
    local runtime), not on remote TFF workers, which get the datasets as values instead.

    Args:
      generator: the ``SyntheticGenerator`` that draws every client.
      num_clients: the number of clients :math:`M`.
      split: ``"train"`` (each client's first 90%) or ``"test"`` (the rest).
      cache_clients: how many generated clients are kept in memory.
    """

    generates_clients = True  # LocalBatches: do not keep every client's arrays

    def __init__(self, generator, num_clients, split="train", cache_clients=256):
        if isinstance(num_clients, bool) or int(num_clients) != num_clients or num_clients < 1:
            raise ValueError(f"the number of clients must be an integer >= 1, got {num_clients!r}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.generator = generator
        self.split = split
        self._num_clients = int(num_clients)
        self._cache = collections.OrderedDict()
        self._cache_clients = int(cache_clients)
        self.client_sizes = _LazySizes(self)

    @property
    def client_ids(self):
        return [client_id(k) for k in range(self._num_clients)]

    @property
    def element_type_structure(self):
        return {"x": tf.TensorSpec((NUM_FEATURES,), tf.float32), "y": tf.TensorSpec((), tf.int32)}

    def index(self, cid):
        """Client number k of the id ``f_0000k``."""
        k = -1
        if isinstance(cid, np.ndarray):  # from tf.numpy_function
            cid = cid.item()
        if isinstance(cid, bytes):
            cid = cid.decode()
        if isinstance(cid, str) and cid.startswith("f_") and cid[2:].isdigit():
            k = int(cid[2:])
        if not 0 <= k < self._num_clients or cid != client_id(k):
            raise ValueError(f"unknown client id {cid!r}")
        return k

    def num_examples(self, cid):
        k = self.index(cid)
        n = self.generator.num_train_examples(k)
        return n if self.split == "train" else self.generator.num_examples(k) - n

    def client_arrays(self, cid):
        k = self.index(cid)
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        arrays = self.generator.client_split(k, self.split)
        self._cache[k] = arrays
        while len(self._cache) > self._cache_clients:
            self._cache.popitem(last=False)
        return arrays

    def config(self):
        """What rebuilds this data set (``synthetic_client_data_from_config``): JSON."""
        g = self.generator
        return dict(alpha=g.alpha, beta=g.beta, iid=g.iid, seed=g.seed, max_examples=g.max_examples,
                    num_clients=self._num_clients, split=self.split, cache_clients=self._cache_clients)

    def client_rows(self, cid, indices):
        """Examples ``indices`` of client ``cid``'s split as ``{'x': ..., 'y': ...}``, generated
        alone (``SyntheticGenerator.examples_at``): what a local work needs, whatever the
        client's size, nothing cached."""
        k = self.index(cid)
        indices = np.asarray(indices, dtype=np.int64)
        size = self.num_examples(cid)
        if indices.size and not (0 <= indices.min() and indices.max() < size):
            raise ValueError(f"client {cid!r} has {size} examples, asked for index {indices.max()}")
        offset = 0 if self.split == "train" else self.generator.num_train_examples(k)
        x, y = self.generator.examples_at(k, indices.reshape(-1) + offset)
        return {"x": x.reshape(indices.shape + x.shape[1:]), "y": y.reshape(indices.shape)}

    def create_tf_dataset_for_client(self, cid):
        return tf.data.Dataset.from_tensor_slices(self.client_arrays(cid))

    @property
    def serializable_dataset_fn(self):
        def arrays(cid):
            a = self.client_arrays(cid)
            return a["x"], a["y"]

        def dataset_fn(cid):
            x, y = tf.numpy_function(arrays, [cid], (tf.float32, tf.int32), stateful=False)
            x.set_shape((None, NUM_FEATURES))
            y.set_shape((None,))
            return tf.data.Dataset.from_tensor_slices({"x": x, "y": y})

        return dataset_fn


class _LazySizes(Mapping):
    """``{client_id: number of examples}``, each computed when asked for."""

    def __init__(self, client_data):
        self._client_data = client_data

    def __getitem__(self, cid):
        return self._client_data.num_examples(cid)

    def __iter__(self):
        return iter(self._client_data.client_ids)

    def __len__(self):
        return len(self._client_data.client_ids)


def synthetic_federated_data(num_clients, alpha=1.0, beta=1.0, iid=False, seed=0, max_examples=None,
                             cache_clients=256):
    """``(train, test)``: two ``tff.simulation.datasets.ClientData`` of the same clients (their
    90% / 10% splits), as TFF's ``tff.simulation.datasets.*.load_data`` return them.

    Args:
      num_clients: the number of clients :math:`M` (any: a client is generated when needed).
      alpha: the standard deviation of the clients' model means, >= 0.
      beta: the standard deviation of the clients' feature means, >= 0.
      iid: the authors' IID variant (one shared model; ``alpha`` and ``beta`` unused).
      seed: the seed of every draw.
      max_examples: optional cap on a client's examples (train and test together).
      cache_clients: how many generated clients each ``ClientData`` keeps in memory.
    """
    generator = SyntheticGenerator(alpha, beta, iid=iid, seed=seed, max_examples=max_examples)
    return (SyntheticClientData(generator, num_clients, "train", cache_clients),
            SyntheticClientData(generator, num_clients, "test", cache_clients))


def synthetic_client_data_from_config(config):
    """The ``SyntheticClientData`` of ``config`` (its ``config()``)."""
    config = dict(config)
    generator = SyntheticGenerator(config.pop("alpha"), config.pop("beta"), iid=config.pop("iid"),
                                   seed=config.pop("seed"), max_examples=config.pop("max_examples"))
    return SyntheticClientData(generator, **config)


def synthetic_client_data(num_clients, alpha=1.0, beta=1.0, iid=False, seed=0, max_examples=None,
                          test_clients=1000):
    """The project's data interface (as ``digits_client_data``): ``(client_data, (x_test, y_test))``.

    ``num_clients``, ``alpha``, ``beta``, ``iid``, ``seed`` and ``max_examples`` are those of
    :func:`synthetic_federated_data`.

    ``client_data`` is the training ``ClientData`` (see :func:`synthetic_federated_data`);
    the test arrays pool the test splits of all clients, as the authors evaluate, or, beyond
    ``test_clients`` clients, of ``test_clients`` of them drawn at random (``seed``), so that the
    test set stays small whatever the number of clients.
    """
    train, test = synthetic_federated_data(num_clients, alpha, beta, iid, seed, max_examples)
    if num_clients <= test_clients:
        chosen = range(num_clients)
    else:
        rng = np.random.default_rng([seed, SHARED_STREAM, 1])
        chosen = np.sort(rng.choice(num_clients, size=test_clients, replace=False))
    parts = [train.generator.client_split(int(k), "test") for k in chosen]
    x_test = np.concatenate([p["x"] for p in parts] + [np.zeros((0, NUM_FEATURES), np.float32)])
    y_test = np.concatenate([p["y"] for p in parts] + [np.zeros((0,), np.int32)])
    return train, (x_test, y_test)
