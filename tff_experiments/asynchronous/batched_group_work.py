r"""The local works of a group of clients as batched computations (``clients_per_group``).

The same local works as ``group_work``'s loop over the group's clients, client by client: K
steps of the client optimizer from the client's own (stale) model, its optimizer state started
fresh, update :math:`u_i = \theta_i^{\text{start}} - \theta_i^{\text{end}}`; a non-finite update
counts as zero with weight 0 and its metrics are dropped; the group returns
:math:`\sum_i d_i u_i`, the number of counted updates and its summed unfinalized metrics. But
here each of the K steps runs every client at once: the forward pass and every client's
gradient from one batched computation (``batched_model``), then the client optimizer's ``next``
over the clients' stacked weights, gradients and states (``tf.vectorized_map``: each client
keeps its own state, whatever the optimizer computes; TFF's and keras_optim's optimizers are
elementwise, so it is their own arithmetic on stacked tensors; an operation without a batched
form, such as the top-k of coordinate clipping, runs client by client inside it).
"""
import tensorflow as tf
import tensorflow_federated as tff


def build_batched_group_computation(batched, client_optimizer, hparams_type, group_type):
    """``(hparams, group) -> (sum_i d_i u_i, counted updates, unfinalized metrics)``, as
    ``group_work``'s loop computes it.

    Args:
      batched: the model's ``batched_model.BatchedModel``.
      client_optimizer: the client's ``tff.learning.optimizers.Optimizer``.
      hparams_type: the type of the client optimizer's hyperparameters (TFF's client work state).
      group_type: the type of one group (``group_values.group_value_type``).
    """

    @tff.tensorflow.computation(hparams_type, group_type)
    def run_group(hparams, group):
        return _run_group(batched, client_optimizer, hparams, group)

    return run_group


def _run_group(batched, client_optimizer, hparams, group):
    """The group's local works, their weighted sum and its metrics (see the module docstring)."""
    start = [tf.gather(w, group["version"]) for w in group["model_weights"].trainable]  # [c, ...]
    end, metric_sums = _local_steps(batched, client_optimizer, hparams, start, group["data"])
    updates = [s - e for s, e in zip(start, end)]
    finite = tf.reduce_all(tf.stack([_all_finite(u) for u in updates]), axis=0)  # [c]
    weight = tf.where(finite, group["weight"], tf.zeros_like(group["weight"]))
    # as TFF's client work: a non-finite update counts as zero (NaN * 0 is NaN: select, not scale)
    total = [tf.tensordot(tf.cast(weight, u.dtype), tf.where(_per_client(finite, u), u, 0), axes=1) for u in updates]
    counted = tf.reduce_sum(tf.cast(tf.logical_and(finite, tf.not_equal(weight, 0.0)), tf.int32))
    metrics = tf.nest.map_structure(lambda m: tf.reduce_sum(tf.where(finite, m, tf.zeros_like(m))), metric_sums)
    return total, counted, metrics


def _all_finite(u):
    r"""``[c]``: whether client i's update is finite: :math:`\sum_j 0 \cdot u_{ij} = 0` (a NaN
    or infinite coordinate makes it NaN; TensorFlow's ``is_finite`` is far slower on CPU)."""
    return tf.equal(tf.reduce_sum(tf.reshape(u * 0, [tf.shape(u)[0], -1]), axis=1), 0)


def _per_client(values, like):
    """``values`` ``[c]`` shaped to broadcast against ``like`` ``[c, ...]``."""
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def _local_steps(batched, client_optimizer, hparams, weights, data):
    """K steps of every client from ``weights`` (``[c, ...]`` each) on ``data`` (``[c, K, b,
    ...]``), each client's optimizer state started fresh; returns the clients' final weights
    and their summed metric increments (``{name: [c] per variable}``)."""
    clients, steps = tf.unstack(tf.shape(tf.nest.flatten(data)[0])[:2])
    specs = tuple(tf.TensorSpec(w.shape[1:], w.dtype) for w in weights)
    state = tf.vectorized_map(
        lambda _: _as_tensors(client_optimizer.set_hparams(client_optimizer.initialize(specs), hparams)),
        tf.range(clients))

    def step(k, weights, state, sums):
        x, y = _inputs(tf.nest.map_structure(lambda d: d[:, k], data))
        with tf.GradientTape() as tape:
            tape.watch(weights)
            predictions = batched.forward(list(weights), x)
            losses = batched.losses(y, predictions)
            total_loss = tf.reduce_sum(losses)  # no operation mixes clients: d/dW_i is client i's
        gradients = tape.gradient(total_loss, weights)
        new_state, new_weights = tf.vectorized_map(
            lambda s_w_g: client_optimizer.next(s_w_g[0], s_w_g[1], s_w_g[2]), (state, weights, gradients))
        sums = tf.nest.map_structure(tf.add, sums, batched.metric_increments(y, predictions, losses))
        return k + 1, _same_shapes(tuple(new_weights), weights), _same_shapes(new_state, state), sums

    _, weights, _, sums = tf.while_loop(
        lambda k, *_: k < steps, step, (tf.constant(0), tuple(weights), state, batched.metric_zeros(clients)))
    return list(weights), sums


def _inputs(batch):
    """``(x, y)`` of a batch given as ``{'x', 'y'}`` or ``(x, y)``, as TFF's Keras model takes it."""
    return (batch["x"], batch["y"]) if isinstance(batch, dict) else (batch[0], batch[1])


def _same_shapes(new, old):
    """``new`` with ``old``'s static shapes (a loop variable keeps its shape; ``vectorized_map``
    forgets a known number of clients)."""
    for n, o in zip(tf.nest.flatten(new), tf.nest.flatten(old)):
        n.set_shape(o.shape)
    return new


def _as_tensors(structure):
    return tf.nest.map_structure(tf.convert_to_tensor, structure)
