"""Keras 3.15.1's Adam tests, ``keras/src/optimizers/adam_test.py``, run on keras_optim's
optimizers (``tests/optimizers/keras_cases.py``).

Adapted from Keras (https://github.com/keras-team/keras, Copyright The Keras Authors,
Apache License 2.0): Adam is replaced by each case; the numbers that are Adam's (the single
step, the golden trajectory) come from the case's NumPy reference, with Keras' tolerances;
the wrapper's EMA state is read on its wrapped optimizer. ``test_config`` builds each case with
non-default base arguments (Adam's own betas are Adam's). No test is skipped; the
TensorFlow-only ``test_clipnorm_indexed_slices`` skips on other backends as in Keras. Tests of
Keras' base class (config, ``_clip_gradients``) run for one case per class and clipping
mechanism (``ONE_PER_KIND``); those that fit a model (EMA, IndexedSlices with clipnorm) for
Adam with coordinate clipping and the wrapper (``IN_FIT``; the IndexedSlices one also for
plain SGD, whose sparse update is its own); the others for all.
"""
import numpy as np
import pytest
from absl.testing import parameterized

from keras_optim.backend import KERAS3

if not KERAS3:
    pytest.skip("Keras 3's own tests", allow_module_level=True)

import keras  # noqa: E402
from keras.src import backend  # noqa: E402
from keras.src import ops  # noqa: E402
from keras.src import testing  # noqa: E402

from tests.optimizers.keras_cases import (  # noqa: E402
    IN_FIT, NAMED, ONE_PER_KIND, reference_trajectory)


class AdamTest(testing.TestCase):
    @parameterized.named_parameters(ONE_PER_KIND)
    def test_config(self, case):
        optimizer = case.make(
            learning_rate=0.5,
            weight_decay=0.004,
            clipnorm=0.5,
        )
        self.run_class_serialization_test(optimizer)

    @parameterized.named_parameters(NAMED)
    def test_single_step(self, case):
        optimizer = case.make(learning_rate=0.5)
        grads = ops.array([1.0, 6.0, 7.0, 2.0])
        vars = backend.Variable([1.0, 2.0, 3.0, 4.0])
        optimizer.apply_gradients(zip([grads], [vars]))
        expected = reference_trajectory(
            case, 0.5, [np.array([1.0, 2.0, 3.0, 4.0])], [[np.array([1.0, 6.0, 7.0, 2.0])]]
        )[0][0]
        self.assertAllClose(vars, expected, rtol=1e-4, atol=1e-4)

    @parameterized.named_parameters(NAMED)
    def test_weight_decay(self, case):
        grads, var1, var2, var3 = (
            ops.zeros(()),
            backend.Variable(2.0),
            backend.Variable(2.0, name="exclude"),
            backend.Variable(2.0),
        )
        optimizer_1 = case.make(learning_rate=1.0, weight_decay=0.004)
        optimizer_1.apply_gradients(zip([grads], [var1]))

        optimizer_2 = case.make(learning_rate=1.0, weight_decay=0.004)
        optimizer_2.exclude_from_weight_decay(var_names=["exclude"])
        optimizer_2.apply_gradients(zip([grads, grads], [var1, var2]))

        optimizer_3 = case.make(learning_rate=1.0, weight_decay=0.004)
        optimizer_3.exclude_from_weight_decay(var_list=[var3])
        optimizer_3.apply_gradients(zip([grads, grads], [var1, var3]))

        # A zero gradient moves none of them: only the (decoupled) decay acts.
        self.assertAlmostEqual(var1.numpy(), 1.9760959, decimal=6)
        self.assertAlmostEqual(var2.numpy(), 2.0, decimal=6)
        self.assertAlmostEqual(var3.numpy(), 2.0, decimal=6)

    @parameterized.named_parameters(NAMED)
    def test_correctness_with_golden(self, case):
        optimizer = case.make()

        x = backend.Variable(np.ones([10], dtype="float32"))
        grads = ops.arange(0.1, 1.1, 0.1)
        first_grads = ops.full((10,), 0.01)

        golden = [p[0] for p in reference_trajectory(
            case, float(ops.convert_to_numpy(optimizer.learning_rate)), [np.ones(10)],
            [[ops.convert_to_numpy(first_grads)]] + [[ops.convert_to_numpy(grads)]] * 4,
        )]

        optimizer.apply_gradients(zip([first_grads], [x]))
        for i in range(5):
            self.assertAllClose(x, golden[i], rtol=5e-4, atol=5e-4)
            optimizer.apply_gradients(zip([grads], [x]))

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_clip_norm(self, case):
        optimizer = case.make(clipnorm=1)
        grad = [np.array([100.0, 100.0])]
        clipped_grad = optimizer._clip_gradients(grad)
        self.assertAllClose(clipped_grad[0], [2**0.5 / 2, 2**0.5 / 2])

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_clip_value(self, case):
        optimizer = case.make(clipvalue=1)
        grad = [np.array([100.0, 100.0])]
        clipped_grad = optimizer._clip_gradients(grad)
        self.assertAllClose(clipped_grad[0], [1.0, 1.0])

    @parameterized.named_parameters(IN_FIT)
    @pytest.mark.requires_trainable_backend
    def test_ema(self, case):
        optimizer = case.make(learning_rate=1.0, use_ema=True, ema_momentum=0.9)
        var = backend.Variable([1.0, 2.0], dtype="float32")
        grads = ops.array([0.1, 0.2], dtype="float32")

        # First step: EMA is initialized to the first updated variable value
        optimizer.apply_gradients([(grads, var)])
        v1 = var.numpy()
        averages = case.configured(optimizer)._model_variables_moving_average
        self.assertAllClose(averages[0], v1)

        # Second step: EMA is updated
        optimizer.apply_gradients([(grads, var)])
        v2 = var.numpy()
        expected_ema = 0.9 * v1 + 0.1 * v2
        self.assertAllClose(averages[0], expected_ema)

        # Finalize: model variable is overwritten by EMA
        optimizer.finalize_variable_values([var])
        self.assertAllClose(var, expected_ema)

        # Test model.fit()
        model = keras.Sequential(
            [keras.layers.Dense(10, kernel_initializer="ones", use_bias=False)]
        )
        model.compile(
            optimizer=case.make(use_ema=True, ema_momentum=0.9), loss="mse"
        )
        x = ops.ones((1, 5))
        y = ops.zeros((1, 10))
        model.fit(x, y, verbose=0)

        # Weights are finalized at the end of fit()
        # So model weights should match EMA weights
        optimizer = case.configured(model.optimizer)
        ema_weights = optimizer._model_variables_moving_average[0].numpy()
        model_weights = model.trainable_variables[0].numpy()
        self.assertAllClose(model_weights, ema_weights)

    @parameterized.named_parameters(NAMED)
    def test_ema_overwrite_frequency(self, case):
        optimizer = case.make(
            learning_rate=1.0,
            use_ema=True,
            ema_momentum=0.9,
            ema_overwrite_frequency=2,
        )
        optimizer_no_ema = case.make(learning_rate=1.0)
        var = backend.Variable([1.0, 2.0], dtype="float32")
        var_no_ema = backend.Variable([1.0, 2.0], dtype="float32")
        grads = ops.array([0.1, 0.2], dtype="float32")

        # First step: iterations = 0, EMA initialized to v1
        optimizer.apply_gradients([(grads, var)])
        optimizer_no_ema.apply_gradients([(grads, var_no_ema)])
        v1 = var_no_ema.numpy()
        # Not overwritten yet (iterations became 1 after increment)
        self.assertAllClose(var, v1)

        # Second step: iterations = 1, (1 + 1) % 2 = 0. Overwrite!
        optimizer.apply_gradients([(grads, var)])
        optimizer_no_ema.apply_gradients([(grads, var_no_ema)])
        v2 = var_no_ema.numpy()
        expected_ema = 0.9 * v1 + 0.1 * v2
        # var should have been updated to v2 and THEN overwritten by EMA
        self.assertAllClose(var, expected_ema)
        self.assertAllClose(
            case.configured(optimizer)._model_variables_moving_average[0],
            expected_ema,
        )

    @parameterized.named_parameters(IN_FIT + [p for p in NAMED if p["case"].name == "sgd"])
    @pytest.mark.skipif(
        backend.backend() != "tensorflow",
        reason="The IndexedSlices test can only run with TF backend.",
    )
    def test_clipnorm_indexed_slices(self, case):
        # https://github.com/keras-team/keras/issues/18985
        model = keras.Sequential(
            [
                keras.layers.Embedding(10, 4),
                keras.layers.Flatten(),
                keras.layers.Dense(2),
            ]
        )
        model.compile(optimizer=case.make(clipnorm=100), loss="mse")
        x = keras.ops.ones((8, 5))
        y = keras.ops.zeros((8, 2))
        model.fit(x, y, verbose=0)
