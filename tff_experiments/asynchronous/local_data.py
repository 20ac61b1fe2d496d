r"""The batches of one local work: K steps of B examples, seeded per (client, work index).

As in the authors' client (``FL/client.py``: ``next(iter(dl_train))`` at every local step, a
shuffled DataLoader), each of the K steps draws a fresh batch of
:math:`\min(B, n_i)` distinct examples of the client's data. The draw is seeded by
``(seed, client, work_index)``, so a local work has the same batches in every run and whatever
the order of the steps: a resumed run repeats exactly what an uninterrupted one did, and two
schemes give the same client the same data for its k-th work.
"""
import collections.abc

import numpy as np
import tensorflow as tf


class LocalBatches:
    """``dataset(client, work_index)``: the ``tf.data.Dataset`` of K batches for one local work.

    Args:
      client_data: a ``tff.simulation.datasets.ClientData`` (elements: a structure of tensors
        of one example each).
      local_steps: K, the number of local optimizer steps per local work.
      batch_size: B.
      seed: seeds the batch draws.
      client_ids: the clients in order (client ``i`` is ``client_ids[i]``); defaults to
        ``client_data.client_ids``.
    """

    def __init__(self, client_data, local_steps, batch_size=64, seed=0, client_ids=None):
        if not isinstance(local_steps, (int, np.integer)) or local_steps < 1:
            raise ValueError(f"local steps must be a positive integer, got {local_steps!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
        self.client_data = client_data
        self.client_ids = list(client_ids if client_ids is not None else client_data.client_ids)
        self.local_steps = int(local_steps)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._arrays = {}

    @property
    def num_clients(self):
        return len(self.client_ids)

    def arrays(self, client):
        """Client ``client``'s examples as a structure of NumPy arrays (cached)."""
        if getattr(self.client_data, "generates_clients", False):
            # A generated data set (Synthetic) keeps a bounded cache of its own: keeping every
            # client here would make memory grow with the number of clients.
            return self.client_data.client_arrays(self.client_ids[client])
        if client not in self._arrays:
            client_id = self.client_ids[client]
            if hasattr(self.client_data, "client_arrays"):
                arrays = self.client_data.client_arrays(client_id)
            else:
                examples = list(self.client_data.create_tf_dataset_for_client(client_id).as_numpy_iterator())
                if not examples:
                    raise ValueError(f"client {client_id!r} has no data")
                arrays = tf.nest.map_structure(lambda *xs: np.stack(xs), *examples)
            self._arrays[client] = arrays
        return self._arrays[client]

    def num_examples(self, client):
        sizes = getattr(self.client_data, "client_sizes", None)
        if sizes is not None:
            return int(sizes[self.client_ids[client]])
        return len(tf.nest.flatten(self.arrays(client))[0])

    def batch_indices(self, client, work_index):
        """The example indices of the K batches, shape ``(K, min(B, n_i))``."""
        n = self.num_examples(client)
        rng = np.random.default_rng((self.seed, int(client), int(work_index)))
        size = min(self.batch_size, n)
        return np.stack([rng.choice(n, size=size, replace=False) for _ in range(self.local_steps)])

    def examples(self, client, indices):
        """Client ``client``'s examples ``indices`` (any shape), as arrays ``indices.shape + ...``;
        a data set that generates its clients (``client_rows``) makes only those."""
        if hasattr(self.client_data, "client_rows"):
            return self.client_data.client_rows(self.client_ids[client], indices)
        return tf.nest.map_structure(lambda a: a[indices], self.arrays(client))

    def batch_arrays(self, client, work_index):
        """The K batches as arrays of shape ``(K, min(B, n_i), ...)`` (for grouped processes)."""
        return self.examples(client, self.batch_indices(client, work_index))

    def dataset(self, client, work_index):
        indices = self.batch_indices(client, work_index)
        examples = self.examples(client, indices.reshape(-1))
        # batch() without drop_remainder leaves the batch dimension unknown (None), so every
        # client's data has the same TFF type whatever its batch size.
        return tf.data.Dataset.from_tensor_slices(examples).batch(indices.shape[1])


class StepWorks(collections.abc.Sequence):
    """The local works of a server step as ``(contribution, data)`` pairs, each work's data made
    when the pair is read: a step of 10^5 works need not hold all its batches at once (the
    driver reads them a part at a time).

    Args:
      contributions: the step's ``schedule.Contribution`` s.
      batches: ``(client, work_index) -> data``, e.g. ``LocalBatches.batch_arrays``.
    """

    def __init__(self, contributions, batches):
        self.contributions = tuple(contributions)
        self._batches = batches

    def __len__(self):
        return len(self.contributions)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._pair(c) for c in self.contributions[index]]
        return self._pair(self.contributions[index])

    def _pair(self, contribution):
        return contribution, self._batches(contribution.client, contribution.work_index)
