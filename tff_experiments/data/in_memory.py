"""A ``tff.simulation.datasets.ClientData`` over in-memory NumPy arrays: every data set of the
project that fits in memory (digits, Shakespeare, CIFAR-10) and a resumed run's clients."""
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


class ArrayClientData(tff.simulation.datasets.ClientData):
    """A ``ClientData`` over in-memory NumPy arrays, one row range per client.

    ``create_tf_dataset_for_client`` slices the NumPy arrays (fast, and the dataset holds
    only that client's rows); ``serializable_dataset_fn`` (used inside TFF computations
    and by ``create_tf_dataset_from_all_clients``) embeds the arrays as constants and looks
    the client up by id, so keep it for small data sets.

    Extra attributes: ``client_sizes`` (``{client_id: number of examples}``) and
    ``client_arrays(client_id)`` (that client's NumPy arrays).

    Build one with ``array_client_data``, which checks its input; the arguments are:

    Args:
      client_ids: the clients' ids, in order.
      arrays: ``{field: array}``, every client's rows one after the other, in that order.
      offsets: ``len(client_ids) + 1`` row indices: client ``i`` holds rows
        ``offsets[i]:offsets[i + 1]``.
    """

    def __init__(self, client_ids, arrays, offsets):
        self._client_ids = list(client_ids)
        self._arrays = arrays
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._position = {cid: i for i, cid in enumerate(self._client_ids)}
        self.client_sizes = {
            cid: int(self._offsets[i + 1] - self._offsets[i]) for i, cid in enumerate(self._client_ids)
        }
        self._element_spec = {
            name: tf.TensorSpec(shape=value.shape[1:], dtype=tf.as_dtype(value.dtype))
            for name, value in arrays.items()
        }

    @property
    def client_ids(self):
        return list(self._client_ids)

    @property
    def element_type_structure(self):
        return dict(self._element_spec)

    def client_arrays(self, client_id):
        i = self._index(client_id)
        start, stop = self._offsets[i], self._offsets[i + 1]
        return {name: value[start:stop] for name, value in self._arrays.items()}

    def _index(self, client_id):
        try:
            return self._position[client_id]
        except KeyError:
            raise ValueError(f"unknown client id {client_id!r}") from None

    def create_tf_dataset_for_client(self, client_id):
        return tf.data.Dataset.from_tensor_slices(self.client_arrays(client_id))

    @property
    def serializable_dataset_fn(self):
        ids, offsets, arrays = self._client_ids, self._offsets, self._arrays

        def dataset_fn(client_id):
            match = tf.equal(tf.constant(ids), client_id)
            found = tf.debugging.Assert(tf.reduce_any(match), ["unknown client id", client_id])
            with tf.control_dependencies([found]):
                i = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int32)
            bounds = tf.constant(offsets)
            start, stop = bounds[i], bounds[i + 1]
            return tf.data.Dataset.from_tensor_slices(
                {name: tf.constant(value)[start:stop] for name, value in arrays.items()}
            )

        return dataset_fn


def array_client_data(client_arrays):
    """A ``tff.simulation.datasets.ClientData`` from ``{client_id: {field: array}}``.

    Every client must have the same fields, with the same trailing shapes and dtypes, and at
    least one example. The rows are copied into one array per field.

    Args:
      client_arrays: ``{client_id: {field: array}}``, e.g. ``{"0": {"x": x0, "y": y0}, ...}``;
        each client's datasets yield one ``{field: row}`` per example, in this order.
    """
    if not client_arrays:
        raise ValueError("a ClientData needs at least one client")
    client_ids = list(client_arrays)
    fields = list(client_arrays[client_ids[0]])
    sizes = []
    for cid in client_ids:
        arrays = client_arrays[cid]
        if list(arrays) != fields:
            raise ValueError(f"client {cid!r} has fields {list(arrays)}, expected {fields}")
        size = {len(a) for a in arrays.values()}
        if len(size) != 1 or 0 in size:
            raise ValueError(f"client {cid!r} needs the same, non-zero number of rows in every field")
        sizes.append(size.pop())
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    arrays = {name: np.concatenate([np.asarray(client_arrays[c][name]) for c in client_ids]) for name in fields}
    return ArrayClientData(client_ids, arrays, offsets)
