r"""The robust rules as unweighted ``tff.aggregators`` factories, for server-based federated learning.

TFF 0.87 aggregates with means and sums (clipped, zeroed, noised); these factories instead
gather the clients' values at the server and apply a Byzantine-robust rule to them, all
coordinates of a value structure concatenated into one vector :math:`x_i \in \mathbb{R}^d`
per client (the rules compare whole updates, so the structure must be flattened, not
aggregated leaf by leaf). They are unweighted: drop one into FedAvg with
``tff.aggregators.as_weighted_aggregator`` (which ignores the client weights)::

    aggregator = tff.aggregators.as_weighted_aggregator(trimmed_mean_factory(num_byzantine=2))
    process = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer_fn, server_optimizer_fn, model_aggregator=aggregator)

or use them directly in ``tff.learning.algorithms.build_unweighted_fed_avg``.

=========================================  ===========================================================
factory                                    result for client values :math:`x_1, \dots, x_k`
=========================================  ===========================================================
``coordinate_median_factory()``            coordinate-wise median
``trimmed_mean_factory(f)``                coordinate-wise mean without the f lowest and f highest
``krum_factory(f)``                        the value of lowest Krum score
``geometric_median_factory(nu, T)``        smoothed Weiszfeld from 0
``centered_clipping_factory(tau, L)``      centered clipping from the previous round's result
``nearest_neighbor_mixing_factory(f, then)``  NNM (each value -> mean of its k-f nearest), then
                                           ``then`` (mean by default: NNM-then-mean)
=========================================  ===========================================================

The measurements are ``<num_clients=int32>``; centered clipping's state is its previous result
(initially 0, like ``byzfl.CenteredClipping``). The number of clients must suit the rule
(``k > 2f`` for the trimmed mean, ``k > f + 1`` for Krum, ``k > f`` for NNM): a round with too
few fails with an ``InvalidArgumentError`` naming the rule.
"""
import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.robust.centered_clipping import centered_clipping
from tff_experiments.robust.coordinatewise import coordinate_median, trimmed_mean
from tff_experiments.robust.gather import gather_at_server
from tff_experiments.robust.geometric_median import geometric_median
from tff_experiments.robust.krum import krum
from tff_experiments.robust.nna import nearest_neighbor_mixing

THEN_RULES = ("mean", "trimmed_mean", "median", "geometric_median", "krum")


def _check_f(f):
    if isinstance(f, bool) or int(f) != f or f < 0:
        raise ValueError(f"the number of Byzantine clients must be an integer >= 0, got {f!r}")
    return int(f)


class RobustAggregationFactory(tff.aggregators.UnweightedAggregationFactory):
    """Gathers the client values at the server and reduces them with a robust rule.

    Args:
      rule: ``rule(vectors [k, d], state) -> (vector [d], new_state)``, plain TensorFlow.
      name: shown in error messages.
      min_clients: the rule needs at least this many clients (checked every round).
      stateful: the state is a ``[d]`` vector (initially 0) that the rule updates;
        otherwise it is ``()``.

    The rule runs in float64 when any leaf of the value is float64, in float32 otherwise (half
    precision is widened); each leaf of the result comes back in its own dtype.
    """

    def __init__(self, rule, name, min_clients=1, stateful=False):
        self._rule = rule
        self._name = name
        self._min_clients = int(min_clients)
        self._stateful = bool(stateful)

    def create(self, value_type):
        value_type = tff.types.to_type(value_type)
        if not isinstance(value_type, (tff.TensorType, tff.StructType)):  # as tff.aggregators.MeanFactory
            raise TypeError(f"{self._name} aggregates a tensor or a structure of tensors, got {value_type}")
        if not tff.types.is_structure_of_floats(value_type):
            raise TypeError(f"{self._name} aggregates floating-point values, got {value_type}")
        specs = tff.types.type_to_tf_tensor_specs(value_type)
        leaves = tf.nest.flatten(specs)
        for spec in leaves:
            if not spec.shape.is_fully_defined():
                raise TypeError(f"{self._name} needs fully defined shapes, got {spec}")
        sizes = [int(np.prod(spec.shape)) for spec in leaves]
        d = int(sum(sizes))
        dtype = tf.float64 if any(spec.dtype == tf.float64 for spec in leaves) else tf.float32
        rule, name, min_clients, stateful = self._rule, self._name, self._min_clients, self._stateful

        @tff.tensorflow.computation
        def initial_state():
            return tf.zeros([d], dtype) if stateful else ()

        state_type = initial_state.type_signature.result

        @tff.tensorflow.computation(value_type)
        def flatten(value):
            parts = [tf.reshape(tf.cast(v, dtype), [-1]) for v in tf.nest.flatten(value)]
            return tf.concat(parts, axis=0) if parts else tf.zeros([0], dtype)

        gathered_type = tff.TensorType(dtype.as_numpy_dtype, [None, d])

        @tff.tensorflow.computation(state_type, gathered_type)
        def reduce(state, rows):
            count = tf.shape(rows)[0]
            check = tf.debugging.assert_greater_equal(
                count, min_clients, message=f"{name} needs at least {min_clients} clients per round"
            )
            with tf.control_dependencies([check]):
                vector, new_state = rule(tf.identity(rows), state)
            parts = tf.split(vector, sizes) if sizes else []
            leaves_out = [tf.cast(tf.reshape(p, s.shape), s.dtype) for p, s in zip(parts, leaves)]
            result = tf.nest.pack_sequence_as(specs, leaves_out)
            return collections.OrderedDict(
                state=new_state, result=result, measurements=collections.OrderedDict(num_clients=count)
            )

        @tff.federated_computation()
        def init_fn():
            return tff.federated_eval(initial_state, tff.SERVER)

        @tff.federated_computation(
            init_fn.type_signature.result, tff.FederatedType(value_type, tff.CLIENTS)
        )
        def next_fn(state, value):
            rows = gather_at_server(tff.federated_map(flatten, value))
            out = tff.federated_map(reduce, (state, rows))
            return tff.templates.MeasuredProcessOutput(state=out.state, result=out.result, measurements=out.measurements)

        return tff.templates.AggregationProcess(init_fn, next_fn)


def coordinate_median_factory():
    """Coordinate-wise median of the client values."""
    return RobustAggregationFactory(lambda rows, state: (coordinate_median(rows), state), "coordinate median")


def trimmed_mean_factory(num_byzantine):
    """Coordinate-wise trimmed mean, dropping ``num_byzantine`` values at each end (needs k > 2f)."""
    f = _check_f(num_byzantine)
    return RobustAggregationFactory(lambda rows, state: (trimmed_mean(rows, f), state), "trimmed mean", 2 * f + 1)


def krum_factory(num_byzantine, squared=True):
    """Krum (Blanchard et al., 2017): the client value of lowest score (needs k > f + 1)."""
    f = _check_f(num_byzantine)
    return RobustAggregationFactory(lambda rows, state: (krum(rows, f, squared), state), "krum", f + 2)


def geometric_median_factory(smoothing=0.1, iterations=3):
    """Geometric median by ``iterations`` smoothed Weiszfeld steps from 0 (RFA)."""
    if smoothing <= 0 or iterations < 1:
        raise ValueError("the geometric median needs smoothing > 0 and iterations >= 1")
    return RobustAggregationFactory(
        lambda rows, state: (geometric_median(rows, smoothing, iterations), state), "geometric median"
    )


def centered_clipping_factory(clip_threshold=2.0, iterations=3):
    """Centered clipping around the previous round's result (Karimireddy et al., 2021)."""
    if clip_threshold < 0 or iterations < 0:
        raise ValueError("centered clipping needs clip_threshold >= 0 and iterations >= 0")

    def rule(rows, center):
        result = centered_clipping(rows, center, clip_threshold, iterations)
        return result, result

    return RobustAggregationFactory(rule, "centered clipping", stateful=True)


def nearest_neighbor_mixing_factory(num_byzantine, then="mean"):
    """NNM (Allouah et al., 2023): every value becomes the mean of its k - f nearest, then ``then``."""
    f = _check_f(num_byzantine)
    if then not in THEN_RULES:
        raise ValueError(f"unknown rule after NNM {then!r}; choose one of {', '.join(THEN_RULES)}")
    after = {
        "mean": lambda x: tf.reduce_mean(x, axis=0),
        "trimmed_mean": lambda x: trimmed_mean(x, f),
        "median": coordinate_median,
        "geometric_median": geometric_median,
        "krum": lambda x: krum(x, f),
    }[then]
    needed = {"mean": f + 1, "trimmed_mean": 2 * f + 1, "median": f + 1, "geometric_median": f + 1, "krum": f + 2}[then]
    return RobustAggregationFactory(
        lambda rows, state: (after(nearest_neighbor_mixing(rows, f)), state), f"NNM then {then}", needed
    )
