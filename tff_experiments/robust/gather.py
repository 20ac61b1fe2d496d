"""Gathering every client's value at the server, the one TFF aggregation the robust rules need.

TFF's aggregations reduce (sums, means); a robust rule needs all the values at once.
``gather_at_server(values)`` stacks them with ``tff.federated_aggregate``: each leaf of the
clients' value type gets a leading axis of the number of clients, in the order TFF merges them
(send an index along when the order matters). Used by the peer-to-peer process
(``process.py``, whose message is ``<index, theta[, flipped]>``) and by the server-side
aggregation factories (``aggregators.py``, one flat vector per client).
"""
import collections

import tensorflow as tf
import tensorflow_federated as tff


def _stacked_type(member_type):
    """``member_type`` with a leading ``None`` axis on every tensor."""
    if isinstance(member_type, tff.StructType):
        return tff.StructType([(name, _stacked_type(t)) for name, t in tff.structure.iter_elements(member_type)])
    return tff.TensorType(member_type.dtype, [None, *member_type.shape])


def _map(fn, *values):
    """``fn`` on the tensors of structures as TFF hands them to a TensorFlow computation."""
    if isinstance(values[0], (tf.Tensor, tf.Variable)) or hasattr(values[0], "dtype"):
        return fn(*values)
    if isinstance(values[0], tff.structure.Struct):
        names = [name for name, _ in tff.structure.iter_elements(values[0])]
        return collections.OrderedDict((n, _map(fn, *(v[n] for v in values))) for n in names)
    return collections.OrderedDict((n, _map(fn, *(v[n] for v in values))) for n in values[0])


def gather_at_server(values):
    """``values@CLIENTS`` (fixed-shape tensors) -> the same structure ``@SERVER``, each leaf
    stacked ``[number of clients, ...]``. Call it inside a ``tff.federated_computation``."""
    member_type = values.type_signature.member
    stacked_type = _stacked_type(member_type)

    def empty(t):
        if isinstance(t, tff.StructType):
            return collections.OrderedDict((n, empty(s)) for n, s in tff.structure.iter_elements(t))
        return tf.zeros([0, *t.shape], t.dtype)

    @tff.tensorflow.computation
    def zero():
        return empty(member_type)

    @tff.tensorflow.computation(stacked_type, member_type)
    def accumulate(rows, value):
        return _map(lambda r, v: tf.concat([r, v[tf.newaxis]], axis=0), rows, value)

    @tff.tensorflow.computation(stacked_type, stacked_type)
    def merge(a, b):
        return _map(lambda x, y: tf.concat([x, y], axis=0), a, b)

    @tff.tensorflow.computation(stacked_type)
    def report(rows):
        return rows

    return tff.federated_aggregate(values, zero(), accumulate, merge, report)
