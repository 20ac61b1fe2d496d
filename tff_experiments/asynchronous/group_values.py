r"""The value of one group of local works (a ``CLIENTS`` member of a process built with
``clients_per_group``): its type and how the driver packs it.

A group holds up to G local works of equal batch shape,

    ``<model_weights=W[v], version=int32[c], data=<x[c, K, b, ...], y[c, K, b]>, weight=float32[c]>``:

the distinct stale models its works start from, each once (``v`` of them; work i starts from
``W[version[i]]``), and each work's K batches and aggregation weight :math:`d_i`. In an
asynchronous run the works of a step start from a few global versions (FedFix: the clients
sent the model at the same tick share it), so a group carries a few models rather than one per
work: for small models the bytes TFF moves, not the arithmetic, are what a step costs.
"""
import collections
import contextlib
import gc
import itertools

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


def group_value_type(model_weights_type, element_spec):
    """The type of one group (see the module docstring).

    Args:
      model_weights_type: the type of the model's ``ModelWeights``.
      element_spec: the model's input spec (one batch: ``{'x': spec, 'y': spec}``).
    """

    def stacked(spec_or_type):
        return tff.TensorType(spec_or_type.dtype, [None] + list(spec_or_type.shape))

    weights_type = tff.types.to_type(model_weights_type)
    group_weights_type = tff.StructWithPythonType(
        [("trainable", tff.StructWithPythonType([stacked(t) for t in weights_type.trainable], list)),
         ("non_trainable", tff.StructWithPythonType([stacked(t) for t in weights_type.non_trainable], list))],
        tff.learning.models.ModelWeights)
    # one tensor per input field (the batch spec has the batch dimension)
    data_type = tff.types.tensorflow_to_type(
        tf.nest.map_structure(lambda t: tf.TensorSpec([None, None] + t.shape.as_list(), t.dtype), element_spec))
    return tff.StructWithPythonType(
        [("model_weights", group_weights_type), ("version", tff.TensorType(np.int32, [None])),
         ("data", data_type), ("weight", tff.TensorType(np.float32, [None]))],
        collections.OrderedDict)


def pack_groups(items, clients_per_group):
    """The groups of ``(model_weights, data, weight)`` items: items of equal batch shape, up to
    ``clients_per_group`` a group, each group's distinct models (the same object) once.

    Args:
      items: ``(model_weights, data, weight)`` per local work; data: arrays ``(K, b, ...)``.
      clients_per_group: G, the most local works in one group.
    """
    with _collector_paused():
        flat = [[np.asarray(a) for a in tf.nest.flatten(data)] for _, data, _ in items]
        shapes = [tuple(a.shape for a in arrays) for arrays in flat]
        groups = []
        for _, same in itertools.groupby(sorted(range(len(items)), key=shapes.__getitem__), key=shapes.__getitem__):
            same = list(same)
            for start in range(0, len(same), clients_per_group):
                part = same[start:start + clients_per_group]
                groups.append(_group([items[i] for i in part], [flat[i] for i in part]))
        return groups


@contextlib.contextmanager
def _collector_paused():
    """Python's garbage collector paused: the packing's temporaries (a few per local work, all
    freed by their reference counts when it ends) would otherwise live through collections into
    the oldest generation, whose full collections then cost a few microseconds per local work
    beside TensorFlow's and TFF's hundreds of thousands of objects."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _group(part, flat_data):
    """One group's value from its items and their flattened data."""
    models = {}  # id(model weights) -> (index, model weights)
    version = [models.setdefault(id(w), (len(models), w))[0] for w, _, _ in part]
    distinct = [w for _, w in models.values()]
    return collections.OrderedDict(
        model_weights=tff.learning.models.ModelWeights(
            trainable=[_stack(ws) for ws in zip(*[w.trainable for w in distinct])],
            non_trainable=[_stack(ws) for ws in zip(*[w.non_trainable for w in distinct])]),
        version=np.array(version, dtype=np.int32),
        data=tf.nest.pack_sequence_as(part[0][1], [_stack(arrays) for arrays in zip(*flat_data)]),
        weight=np.array([d for _, _, d in part], dtype=np.float32))


def _stack(arrays):
    """``np.stack(arrays)`` of arrays of one shape, a few times faster for many small arrays."""
    first = np.asarray(arrays[0])
    stacked = np.empty((len(arrays),) + first.shape, first.dtype)
    for i, a in enumerate(arrays):
        stacked[i] = a
    return stacked
