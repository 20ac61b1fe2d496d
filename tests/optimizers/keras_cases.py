"""The keras_optim optimizers that Keras' own optimizer tests are run on (the adapted suites
``test_keras_*_suite.py`` and ``test_tf_keras_optimizer_suite.py``), each with an independent
NumPy reference for the numbers those tests check.

Backend-agnostic (NumPy and Keras only, no TensorFlow import), so that the suites run on Keras
3 with TensorFlow or JAX, and on tf.keras 2.14.
"""

import numpy as np

import keras_optim
from keras_optim.backend import KERAS3, keras
from tests.conftest import load_fixture_script
from tests.optimizers.numpy_ports import NumpyAdaBelief, NumpyDiffGrad

CLIP_PORTS = load_fixture_script("make_coordinate_clip_fixtures")
FRACTION = 0.25  # of Keras' 4- and 10-coordinate test gradients: the largest 1 or 2 are cut


class _ClipPort:
    """The coordinate-clip ports return (params, threshold): keep the params."""

    def __init__(self, port):
        self.port = port

    def step(self, params, grads):
        return self.port.step(params, grads)[0]


class Case:
    """One optimizer configuration.

    ``make(**base)`` builds it with Keras' base arguments (``learning_rate``, ``clipnorm``,
    ``use_ema``, ``weight_decay``, ...); ``reference(lr)`` is its NumPy port, with
    ``step(params, grads) -> params`` on lists of float64 arrays; ``prefix`` is the name Keras
    numbers instances from; ``slots`` the optimizer variables per model variable;
    ``sparse_rows``: a sparse gradient writes only its rows (Keras' SGD without momentum)."""

    def __init__(self, name, make, reference, prefix, slots, sparse_rows=False, sgd=False):
        self.name, self.make, self.reference = name, make, reference
        self.prefix, self.slots, self.sparse_rows, self.sgd = prefix, slots, sparse_rows, sgd
        self.wrapper = name.startswith("wrapper")

    def __repr__(self):
        return self.name

    def configured(self, optimizer):
        """Where Keras' base arguments and state live: the wrapped optimizer of the wrapper
        (as Keras' tests reach into LossScaleOptimizer's ``inner_optimizer``)."""
        return optimizer.inner_optimizer if self.wrapper else optimizer


def _ours(cls, **args):
    return lambda **base: getattr(keras_optim, cls)(**{**args, **base})


def _wrapper(**base):
    return keras_optim.CoordinateClipping(
        keras.optimizers.SGD(**{"momentum": 0.5, **base}), FRACTION
    )


SGD_PREFIX = "sgd" if KERAS3 else "SGD"
_CLIP = dict(coordinate_clip=FRACTION)

CASES = [
    Case("adabelief", _ours("AdaBelief"), lambda lr: NumpyAdaBelief(lr), "adabelief", 2),
    Case("adabelief_amsgrad_no_rectify", _ours("AdaBelief", amsgrad=True, rectify=False),
         lambda lr: NumpyAdaBelief(lr, amsgrad=True, rectify=False), "adabelief", 3),
    Case("diffgrad", _ours("DiffGrad"), lambda lr: NumpyDiffGrad(lr), "diffgrad", 3),
    Case("adam", _ours("Adam"), lambda lr: _ClipPort(CLIP_PORTS.AdamClipPort(lr)), "adam", 2),
    Case("adam_clip_exact", _ours("Adam", **_CLIP),
         lambda lr: _ClipPort(CLIP_PORTS.AdamClipPort(lr, coordinate_clip=FRACTION)), "adam", 2),
    Case("adam_clip_fast", _ours("Adam", clip_mode="fast", **_CLIP),
         lambda lr: _ClipPort(CLIP_PORTS.AdamClipPort(lr, coordinate_clip=FRACTION)), "adam", 2),
    Case("sgd", _ours("SGD"), lambda lr: _ClipPort(CLIP_PORTS.SGDClipPort(lr)), SGD_PREFIX, 0,
         sparse_rows=True, sgd=True),
    Case("sgd_clip_exact", _ours("SGD", momentum=0.5, nesterov=True, **_CLIP),
         lambda lr: _ClipPort(CLIP_PORTS.SGDClipPort(lr, momentum=0.5, nesterov=True,
                                                     coordinate_clip=FRACTION)),
         SGD_PREFIX, 1, sgd=True),
    Case("sgd_clip_fast", _ours("SGD", momentum=0.5, clip_mode="fast", **_CLIP),
         lambda lr: _ClipPort(CLIP_PORTS.SGDClipPort(lr, momentum=0.5, coordinate_clip=FRACTION)),
         SGD_PREFIX, 1, sgd=True),
    # The wrapper clips before the wrapped SGD: all of SGD's statistics see the clipped
    # gradient, which is exactly the authors' SGDClip.
    Case("wrapper_keras_sgd", _wrapper,
         lambda lr: _ClipPort(CLIP_PORTS.SGDClipPort(lr, momentum=0.5, coordinate_clip=FRACTION)),
         "coordinate_clipping", 1),
]
BY_NAME = {case.name: case for case in CASES}
# Keras' tests as absl named parameters: every case for the tests whose numbers are the
# algorithm's; one case per class and clipping mechanism for those that exercise Keras' base
# class around the update (saving, fit, naming, clipping arguments), to keep the suites fast.
NAMED = [{"testcase_name": case.name, "case": case} for case in CASES]
ONE_PER_KIND = [p for p in NAMED if p["case"].name in
                ("adabelief", "diffgrad", "adam_clip_exact", "sgd_clip_fast", "wrapper_keras_sgd")]
# Tests that compile a model and fit (seconds each): keras_optim's own optimizers share one
# Keras adapter, so one of them (with the clipping threshold variable) and the wrapper.
IN_FIT = [p for p in NAMED if p["case"].name in ("adam_clip_exact", "wrapper_keras_sgd")]


def reference_trajectory(case, lr, start, grads):
    """The reference's parameters after each gradient (lists of float64 arrays)."""
    reference = case.reference(lr)
    params = [np.asarray(p, dtype=np.float64) for p in start]
    out = []
    for g in grads:
        params = reference.step(params, [np.asarray(x, dtype=np.float64) for x in g])
        out.append(params)
    return out
