# Specs and test problem adapted from TensorFlow Federated 0.87.0,
# tensorflow_federated/python/learning/optimizers/{adam_test,integration_test,optimizer_test_utils}.py
# (Copyright 2021 The TensorFlow Federated Authors, Apache License 2.0).
"""keras_optim's TFF optimizers and their independent references, shared by the adapted TFF
suites (test_tff_optimizer_suite.py, test_tff_integration_suite.py).

Each case builds a TFF optimizer and a reference that steps NumPy float64 copies of the weights:
the project's NumPy ports of the papers (tests/optimizers/numpy_ports.py), after a NumPy
coordinate clipping for the wrapper, or the Keras class for the ``coordinate_clip=`` option
(held against the authors' code in tests/optimizers/test_coordinate_clip.py).
"""
import numpy as np
import tensorflow as tf

import keras_optim
from tests.optimizers.numpy_ports import NumpyAdaBelief, NumpyDiffGrad
from tff_experiments import tff_optimizers

SCALAR_SPEC = tf.TensorSpec([1], tf.float32)
STRUCT_SPEC = [tf.TensorSpec([2], tf.float32), tf.TensorSpec([3], tf.float32)]
NESTED_SPEC = [
    tf.TensorSpec([10], tf.float32),
    [tf.TensorSpec([20], tf.float32), [tf.TensorSpec([30], tf.float32)]],
]
# Every dtype TFF weights come in, nested: half-precision statistics are float32.
MIXED_SPEC = [
    tf.TensorSpec([6], tf.float16),
    [tf.TensorSpec([2, 3], tf.bfloat16), [tf.TensorSpec([5], tf.float32), tf.TensorSpec([4], tf.float64)]],
]
SPECS = {"scalar": SCALAR_SPEC, "struct": STRUCT_SPEC, "nested": NESTED_SPEC, "mixed_dtypes": MIXED_SPEC}


def numpy_clip(grads, fraction, threshold_scale=1.0):
    """Pan & Li's global threshold, by a full sort: tau = c |g|_(floor(N p)) (descending)."""
    magnitudes = np.sort(np.concatenate([np.abs(g).ravel() for g in grads]))[::-1]
    tau = 0.0 if fraction >= 1 else threshold_scale * magnitudes[int(magnitudes.size * fraction)]
    return [np.sign(g) * np.minimum(np.abs(g), tau) for g in grads]


class PortReference:
    def __init__(self, port, clip_fraction=0.0):
        self._port, self._fraction = port, clip_fraction

    def set_learning_rate(self, learning_rate):
        self._port.lr = learning_rate

    def step(self, params, grads):
        if self._fraction:
            grads = numpy_clip(grads, self._fraction)
        return self._port.step(params, grads)


class KerasReference:
    """A keras_optim class on tf.Variables of the weights' own dtypes."""

    def __init__(self, optimizer):
        self._optimizer, self._variables = optimizer, None

    def set_learning_rate(self, learning_rate):
        self._optimizer.learning_rate = learning_rate

    def step(self, params, grads, dtypes=None):
        if self._variables is None:
            dtypes = dtypes or [tf.float32] * len(params)
            self._variables = [tf.Variable(tf.cast(p, d)) for p, d in zip(params, dtypes)]
        self._optimizer.apply_gradients(
            [(tf.cast(g, v.dtype), v) for g, v in zip(grads, self._variables)])
        return [v.numpy().astype(np.float64) for v in self._variables]


# name: (TFF optimizer builder, reference builder). Learning rates are exact in binary.
CASES = {
    "adabelief": (lambda: tff_optimizers.build_adabelief(0.125), lambda: PortReference(NumpyAdaBelief(0.125))),
    "adabelief_amsgrad": (
        lambda: tff_optimizers.build_adabelief(0.125, amsgrad=True, rectify=False, epsilon=1e-8),
        lambda: PortReference(NumpyAdaBelief(0.125, amsgrad=True, rectify=False, eps=1e-8)),
    ),
    "adabelief_no_rectify": (
        lambda: tff_optimizers.build_adabelief(0.125, rectify=False, epsilon=1e-8),
        lambda: PortReference(NumpyAdaBelief(0.125, rectify=False, eps=1e-8)),
    ),
    "diffgrad": (lambda: tff_optimizers.build_diffgrad(0.125), lambda: PortReference(NumpyDiffGrad(0.125))),
    "clipping_exact": (
        lambda: tff_optimizers.build_coordinate_clipping(tff_optimizers.build_diffgrad(0.125), 0.25),
        lambda: PortReference(NumpyDiffGrad(0.125), clip_fraction=0.25),
    ),
    "clipping_fast": (
        lambda: tff_optimizers.build_coordinate_clipping(
            tff_optimizers.build_adabelief(0.125), 0.25, mode="fast"),
        lambda: PortReference(NumpyAdaBelief(0.125), clip_fraction=0.25),
    ),
    "adabelief_coordinate_clip_exact": (
        lambda: tff_optimizers.build_adabelief(0.125, coordinate_clip=0.25),
        lambda: KerasReference(keras_optim.AdaBelief(0.125, coordinate_clip=0.25)),
    ),
    "diffgrad_coordinate_clip_fast": (
        lambda: tff_optimizers.build_diffgrad(0.125, coordinate_clip=0.25, clip_mode="fast"),
        lambda: KerasReference(keras_optim.DiffGrad(0.125, coordinate_clip=0.25, clip_mode="fast")),
    ),
}


def gradient_values(spec, step):
    """Gradients of distinct magnitudes (so that clipping acts), multiples of 1/4 in
    [-5/4, 5/4]: exact in every dtype, so the clipping threshold is too."""

    def leaf(offset, s):
        size = int(np.prod(s.shape))
        values = ((np.arange(size) * 5 + 3 * step + offset) % 11 - 5) / 4.0
        return values.reshape(s.shape)

    flat = tf.nest.flatten(spec)
    return tf.nest.pack_sequence_as(spec, [leaf(7 * i, s) for i, s in enumerate(flat)])


def as_tensors(values, spec):
    return tf.nest.map_structure(lambda v, s: tf.constant(v, s.dtype), values, spec)


def ones(spec):
    return tf.nest.map_structure(lambda s: tf.ones(s.shape, s.dtype), spec)


def reference_weights(case, spec, steps):
    """The reference's weights after each of ``steps`` steps from ones, rounded to the weights'
    dtypes after every step (as the weights are stored)."""
    reference = CASES[case][1]()
    flat_spec = tf.nest.flatten(spec)
    dtypes = [s.dtype for s in flat_spec]
    params = [np.ones(s.shape) for s in flat_spec]
    history = []
    for t in range(steps):
        grads = tf.nest.flatten(gradient_values(spec, t))
        if isinstance(reference, KerasReference):
            params = reference.step(params, grads, dtypes)
        else:
            params = reference.step(params, grads)
            params = [np.asarray(tf.cast(tf.cast(p, d), tf.float64)) for p, d in zip(params, dtypes)]
        history.append(params)
    return history


def tolerance(dtype):
    """Rounding of the stored weights: one unit in the last place of their dtype, float32
    statistics against the float64 references otherwise."""
    return {tf.float16: 1e-3, tf.bfloat16: 8e-3}.get(dtype, 2e-5)
