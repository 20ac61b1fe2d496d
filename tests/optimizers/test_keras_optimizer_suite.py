"""Keras 3.15.1's own optimizer tests, ``keras/src/optimizers/optimizer_test.py``, run on
keras_optim's optimizers (``tests/optimizers/keras_cases.py``: AdaBelief default / amsgrad /
rectify=False, DiffGrad, Adam and SGD with and without coordinate clipping, exact and fast,
and the CoordinateClipping wrapper around Keras' SGD).

Adapted from Keras (https://github.com/keras-team/keras, Copyright The Keras Authors,
Apache License 2.0): the optimizer under test is each case's; the numbers that belong to
Keras' SGD or Adam (the expected variables) come from the case's NumPy reference; the base
arguments and state of the wrapper are read on its wrapped optimizer, as Keras' tests read
LossScaleOptimizer's ``inner_optimizer``. Backend-agnostic as Keras' file: the TensorFlow-only
tests skip on other backends as there.

Every test of the file runs: for every case where the numbers are the algorithm's, for one
case per class and clipping mechanism (``ONE_PER_KIND``) where it exercises Keras' base class
(clipping arguments, EMA with fit, constraints, ``get``, checkpointing, tf.Variables, pickling,
naming, the iteration counter, and accumulation with weight decay, which compares the optimizer
with itself: 32 steps, about 45 s a case on JAX, where Keras' accumulation traces a cond per step); for Adam with coordinate clipping and the wrapper (``IN_FIT``)
where it compiles and fits a model (EMA with fit, TensorFlow checkpointing). Adapted beyond the
numbers:
- ``test_get_method``: ``optimizers.get("sgd")`` resolves Keras' own string names; run here as
  ``get`` of a keras_optim config (registered class) and of an instance.
- ``test_gradient_accumulation_with_weigth_decay`` and ``test_pickleable_optimizers`` are
  parametrized over Keras' optimizer names there; over the cases here.
"""
import os
import pickle

import numpy as np
import pytest
from absl.testing import parameterized

from keras_optim.backend import KERAS3

if not KERAS3:
    pytest.skip("Keras 3's own tests (tf.keras 2.14's: test_tf_keras_optimizer_suite.py)",
                allow_module_level=True)

from keras.src import backend  # noqa: E402
from keras.src import constraints  # noqa: E402
from keras.src import layers  # noqa: E402
from keras.src import models  # noqa: E402
from keras.src import optimizers  # noqa: E402
from keras.src import testing  # noqa: E402

from tests.optimizers.keras_cases import (  # noqa: E402
    IN_FIT, NAMED, ONE_PER_KIND, reference_trajectory)

V0 = [[1.0, 2.0], [3.0, 4.0]]
ONES = [[1.0, 1.0], [1.0, 1.0]]


def _expected(case, lr, start, *grads):
    """The case's reference after the gradients (Keras' tests: SGD's numbers)."""
    return reference_trajectory(case, lr, [np.array(start)], [[np.array(g)] for g in grads])[-1][0]


class OptimizerTest(testing.TestCase):
    @parameterized.named_parameters(ONE_PER_KIND)
    def test_iterations_counter(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(learning_rate=1.0)
        self.assertAllClose(optimizer.iterations, 0)
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(optimizer.iterations, 1)
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(optimizer.iterations, 2)

    @parameterized.named_parameters(NAMED)
    def test_empty_gradients(self, case):
        # Test no valid gradient
        v = backend.Variable([[3.0, 4.0], [5.0, 6.0]])
        grads = None
        optimizer = case.make(learning_rate=1.0)
        with self.assertRaisesRegex(
            ValueError, "No gradients provided for any variable."
        ):
            optimizer.apply_gradients([(grads, v)])

        # Test filtering of empty gradients
        v2 = backend.Variable([[3.0, 4.0], [5.0, 6.0]])
        grads2 = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(learning_rate=1.0)
        with self.assertWarns(Warning):
            optimizer.apply_gradients([(grads, v), (grads2, v2)])
        self.assertAllClose(v, [[3.0, 4.0], [5.0, 6.0]])
        self.assertAllClose(v2, _expected(case, 1.0, [[3.0, 4.0], [5.0, 6.0]], ONES))

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_clip_args(self, case):
        optimizer = case.make(learning_rate=1.0, clipnorm=0.1)
        self.assertEqual(case.configured(optimizer).clipnorm, 0.1)
        optimizer = case.make(learning_rate=1.0, clipvalue=0.1)
        self.assertEqual(case.configured(optimizer).clipvalue, 0.1)
        optimizer = case.make(learning_rate=1.0, global_clipnorm=0.1)
        self.assertEqual(case.configured(optimizer).global_clipnorm, 0.1)

        # Test invalid arguments
        with self.assertRaisesRegex(
            ValueError,
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can",
        ):
            case.make(
                learning_rate=1.0,
                clipnorm=0.1,
                clipvalue=0.1,
            )
        with self.assertRaisesRegex(
            ValueError,
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can",
        ):
            case.make(
                learning_rate=1.0,
                clipnorm=0.1,
                global_clipnorm=0.1,
            )

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_clip_norm(self, case):
        optimizer = case.make(clipnorm=1)
        grad = backend.convert_to_tensor([100.0, 100.0])
        clipped_grad = optimizer._clip_gradients([grad])
        self.assertAllClose(clipped_grad[0], [2**0.5 / 2, 2**0.5 / 2])

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_clip_value(self, case):
        optimizer = case.make(clipvalue=1)
        grad = backend.convert_to_tensor([100.0, 100.0])
        clipped_grad = optimizer._clip_gradients([grad])
        self.assertAllClose(clipped_grad[0], [1.0, 1.0])

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_global_clip_norm(self, case):
        optimizer = case.make(global_clipnorm=1)
        grad = np.array([50.0, 100.0], dtype="float32")
        global_norm = np.linalg.norm(grad)
        clipped_grad = optimizer._clip_gradients(
            [backend.convert_to_tensor(grad)]
        )
        self.assertAllClose(clipped_grad[0], grad / global_norm)

    @parameterized.named_parameters(NAMED)
    def test_ema(self, case):
        v = backend.Variable([[3.0, 4.0], [5.0, 6.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(
            learning_rate=1.0,
            use_ema=True,
            ema_momentum=0.9,
            ema_overwrite_frequency=3,
        )
        start = [[3.0, 4.0], [5.0, 6.0]]
        v1, v2, v3 = (p[0] for p in reference_trajectory(
            case, 1.0, [np.array(start)], [[np.array(ONES)]] * 3))
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, v1)
        self.assertAllClose(
            case.configured(optimizer)._model_variables_moving_average[0],
            v1,  # initialized after first step
        )
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, v2)
        self.assertAllClose(
            case.configured(optimizer)._model_variables_moving_average[0],
            0.9 * v1 + 0.1 * v2,
        )
        optimizer.apply_gradients([(grads, v)])
        # Variables were overwritten with EMA
        ema = 0.9 * (0.9 * v1 + 0.1 * v2) + 0.1 * v3
        self.assertAllClose(v, ema)
        self.assertAllClose(
            case.configured(optimizer)._model_variables_moving_average[0],
            ema,
        )

    @parameterized.named_parameters(IN_FIT)
    @pytest.mark.requires_trainable_backend
    def test_ema_with_model_fit(self, case):
        x_train = np.ones((1, 1)).astype("float32")
        y_train = np.zeros((1, 1)).astype("float32")
        optimizer = case.make(
            learning_rate=0.1, use_ema=True, ema_momentum=0.9
        )
        model = models.Sequential(
            [layers.Dense(2, kernel_initializer="ones", use_bias=False)]
        )
        model.compile(loss="mse", optimizer=optimizer, run_eagerly=True)
        model.fit(x_train, y_train, batch_size=1, epochs=2, verbose=0)
        # The loss mean((x w)^2) at x = 1 has the gradient w: two steps of the reference.
        reference = case.reference(0.1)
        w1 = reference.step([np.ones((1, 2))], [np.ones((1, 2))])
        w2 = reference.step(w1, w1)
        expected = 0.9 * w1[0] + 0.1 * w2[0]
        self.assertAllClose(
            case.configured(optimizer)._model_variables_moving_average[0].numpy(),
            expected,
            atol=1e-5,
        )
        self.assertAllClose(
            model.trainable_variables[0].numpy(),
            expected,
            atol=1e-5,
        )

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_constraints_are_applied(self, case):
        v = backend.Variable(np.random.random((2, 2)) - 1.0)
        v.constraint = constraints.NonNeg()
        optimizer = case.make(learning_rate=0.0001)
        grad = backend.numpy.zeros((2, 2))
        optimizer.apply_gradients([(grad, v)])
        self.assertAlmostEqual(np.min(v), 0.0)

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_get_method(self, case):
        optimizer = case.make()
        obj = optimizers.get(optimizers.serialize(optimizer))
        self.assertIsInstance(obj, type(optimizer))
        self.assertEqual(obj.get_config(), optimizer.get_config())
        self.assertIs(optimizers.get(optimizer), optimizer)

        obj = optimizers.get(None)
        self.assertEqual(obj, None)

        with self.assertRaises(ValueError):
            optimizers.get("typo")

    @parameterized.named_parameters(NAMED)
    def test_static_loss_scaling(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]]) * 1024.0
        optimizer = case.make(learning_rate=1.0, loss_scale_factor=1024.0)
        optimizer.apply_gradients([(grads, v)])
        self.assertEqual(optimizer.scale_loss(1.0), 1024.0)
        self.assertAllClose(v, _expected(case, 1.0, V0, V0))

    @parameterized.named_parameters(NAMED)
    def test_set_weights(self, case):
        x = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        optimizer_1 = case.make()
        grads = backend.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])
        optimizer_1.apply_gradients(zip([grads], [x]))
        optimizer_2 = case.make()
        with self.assertRaisesRegex(ValueError, "You are calling*"):
            optimizer_2.set_weights(optimizer_1.variables)
        optimizer_2.build([x])
        optimizer_2.set_weights(optimizer_1.variables)
        for i in range(len(optimizer_1.variables)):
            self.assertAllClose(
                optimizer_1.variables[i],
                optimizer_2.variables[i],
            )

    @parameterized.named_parameters(NAMED)
    def test_gradient_accumulation(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(
            learning_rate=1.0, gradient_accumulation_steps=3
        )
        configured = case.configured(optimizer)
        self.assertEqual(configured.gradient_accumulation_steps, 3)

        # Iteration 1
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, [[1.0, 2.0], [3.0, 4.0]])
        self.assertAllClose(
            configured._accumulated_gradients[0], [[1.0, 1.0], [1.0, 1.0]]
        )
        self.assertAllClose(configured._iterations, 1)
        self.assertAllClose(optimizer.iterations, 0)

        # Iteration 2
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, [[1.0, 2.0], [3.0, 4.0]])
        self.assertAllClose(
            configured._accumulated_gradients[0], [[2.0, 2.0], [2.0, 2.0]]
        )
        self.assertAllClose(configured._iterations, 2)
        self.assertAllClose(optimizer.iterations, 0)

        # Iteration 3
        optimizer.apply_gradients([(grads, v)])
        v3 = _expected(case, 1.0, V0, ONES)  # one update with the mean gradient
        self.assertAllClose(v, v3)
        self.assertAllClose(
            configured._accumulated_gradients[0], [[0.0, 0.0], [0.0, 0.0]]
        )
        self.assertAllClose(configured._iterations, 3)
        self.assertAllClose(optimizer.iterations, 1)

        # Iteration 4
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, v3)
        self.assertAllClose(
            configured._accumulated_gradients[0], [[1.0, 1.0], [1.0, 1.0]]
        )
        self.assertAllClose(configured._iterations, 4)
        self.assertAllClose(optimizer.iterations, 1)

    @parameterized.named_parameters(IN_FIT)
    @pytest.mark.skipif(backend.backend() != "tensorflow", reason="Requires TF")
    def test_tf_checkpointing(self, case):
        import tensorflow as tf

        model = models.Sequential([layers.Dense(2)])
        # A step of Keras' Adam moves each weight by about its learning rate (0.001): "now
        # differ" by 1e-3 below holds for the others' steps with 0.1.
        optimizer = case.make(learning_rate=0.1)
        x, y = np.random.random((1, 2)), np.random.random((1, 2))
        model.compile(optimizer, "mse")
        model.train_on_batch(x, y)
        ref_pred = model.predict(x, verbose=0)

        # Both model and optimizer are Trackables
        checkpoint = tf.train.Checkpoint(model, optimizer=optimizer)
        temp_filepath = os.path.join(self.get_temp_dir(), "tf_ckpt")
        save_path = checkpoint.save(temp_filepath)

        # Keep training the model (predictions now differ)
        model.train_on_batch(x, y)
        pred = model.predict(x, verbose=0)
        self.assertNotAllClose(pred, ref_pred, atol=1e-3)

        # Restore the model and check prediction correctness
        checkpoint.restore(save_path)
        pred = model.predict(x, verbose=0)
        self.assertAllClose(pred, ref_pred, atol=1e-5)

    @parameterized.named_parameters(NAMED)
    def test_callable_learning_rate(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(learning_rate=lambda: 0.1)
        self.assertAllClose(optimizer.iterations, 0)
        optimizer.apply_gradients([(grads, v)])
        self.assertAllClose(v, _expected(case, 0.1, V0, ONES))
        self.assertAllClose(optimizer.iterations, 1)

    @parameterized.named_parameters(NAMED)
    def test_overwrite_with_gradient(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        v.overwrite_with_gradient = True
        v2 = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        grads2 = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])

        optimizer = case.make(learning_rate=1.0)
        optimizer.apply_gradients([(grads, v), (grads2, v2)])

        # `v` is overwritten by its gradient but `v2` is updated normally
        self.assertAllClose(v, [[1.0, 1.0], [1.0, 1.0]])
        self.assertAllClose(v2, _expected(case, 1.0, V0, ONES))

    @parameterized.named_parameters(NAMED)
    def test_overwrite_with_gradient_with_gradient_accumulation(self, case):
        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        v.overwrite_with_gradient = True
        v2 = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grad_ones = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        grad_twos = backend.convert_to_tensor([[2.0, 2.0], [2.0, 2.0]])
        optimizer = case.make(
            learning_rate=1.0, gradient_accumulation_steps=2
        )
        configured = case.configured(optimizer)

        # Iteration 1
        optimizer.apply_gradients([(grad_ones, v), (grad_ones, v2)])
        self.assertAllClose(configured._iterations, 1)
        self.assertAllClose(optimizer.iterations, 0)
        self.assertAllClose(v, [[1.0, 2.0], [3.0, 4.0]])
        self.assertAllClose(v2, [[1.0, 2.0], [3.0, 4.0]])
        self.assertAllClose(
            configured._accumulated_gradients[0], [[1.0, 1.0], [1.0, 1.0]]
        )
        self.assertAllClose(
            configured._accumulated_gradients[1], [[1.0, 1.0], [1.0, 1.0]]
        )

        # Iteration 2
        optimizer.apply_gradients([(grad_twos, v), (grad_twos, v2)])
        self.assertAllClose(configured._iterations, 2)
        self.assertAllClose(optimizer.iterations, 1)
        self.assertAllClose(v, [[2.0, 2.0], [2.0, 2.0]])
        v2_after = _expected(case, 1.0, V0, [[1.5, 1.5], [1.5, 1.5]])
        self.assertAllClose(v2, v2_after)
        self.assertAllClose(
            configured._accumulated_gradients[0], [[0.0, 0.0], [0.0, 0.0]]
        )
        self.assertAllClose(
            configured._accumulated_gradients[1], [[0.0, 0.0], [0.0, 0.0]]
        )

        # Iteration 3
        optimizer.apply_gradients([(grad_ones, v), (grad_ones, v2)])
        self.assertAllClose(configured._iterations, 3)
        self.assertAllClose(optimizer.iterations, 1)
        self.assertAllClose(v, [[2.0, 2.0], [2.0, 2.0]])
        self.assertAllClose(v2, v2_after)
        self.assertAllClose(
            configured._accumulated_gradients[0], [[1.0, 1.0], [1.0, 1.0]]
        )
        self.assertAllClose(
            configured._accumulated_gradients[1], [[1.0, 1.0], [1.0, 1.0]]
        )

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_gradient_accumulation_with_weigth_decay(self, case):
        optimizer1 = case.make(weight_decay=0.05)
        optimizer3 = case.make(weight_decay=0.05, gradient_accumulation_steps=3)
        variable1 = backend.Variable([[0.9], [0.5]])
        variable3 = backend.Variable([[0.9], [0.5]])

        for epoch in range(8):
            grads3 = np.random.random([3, 2, 1]).astype("float32")

            grads1 = backend.convert_to_tensor(grads3.mean(axis=0))
            optimizer1.apply_gradients([(grads1, variable1)])

            for batch in range(3):
                grads3_ = backend.convert_to_tensor(grads3[batch])
                optimizer3.apply_gradients([(grads3_, variable3)])

        self.assertAllClose(variable1, variable3)

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_setting_lr_to_callable_untracks_lr_var(self, case):
        adam = case.make(learning_rate=0.001)
        # Keras' optimizers: the iteration and learning rate variables (the wrapper adds its
        # wrapped optimizer's).
        self.assertLen(adam.variables, 4 if case.wrapper else 2)
        adam.learning_rate = optimizers.schedules.PolynomialDecay(
            adam.learning_rate, 4
        )
        self.assertLen(adam.variables, 3 if case.wrapper else 1)

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_pickleable_optimizers(self, case):
        optimizer = case.make()
        reloaded = pickle.loads(pickle.dumps(optimizer))

        self.assertEqual(optimizer.get_config(), reloaded.get_config())

    @parameterized.named_parameters(ONE_PER_KIND)
    @pytest.mark.skipif(
        backend.backend() != "tensorflow",
        reason="The tf.Variable test can only run with TensorFlow backend.",
    )
    def test_mixed_with_tf_variables(self, case):
        import tensorflow as tf

        v = backend.Variable([[1.0, 2.0], [3.0, 4.0]])
        grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        tf_v = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
        tf_grads = backend.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
        optimizer = case.make(learning_rate=1.0)
        optimizer.apply_gradients([(grads, v), (tf_grads, tf_v)])
        self.assertAllClose(optimizer.iterations, 1)

        # Test with no grads
        with self.assertWarnsRegex(
            UserWarning, "Gradients do not exist for variables"
        ):
            optimizer.apply_gradients([(grads, v), (None, tf_v)])
            self.assertAllClose(optimizer.iterations, 2)

    @parameterized.named_parameters(ONE_PER_KIND)
    def test_optimizer_auto_naming(self, case):
        adam_1 = case.make()
        adam_2 = case.make()

        self.assertEqual(adam_1.name, case.prefix)
        self.assertEqual(adam_2.name, f"{case.prefix}_1")

        # Test explicit naming
        custom_adam = type(adam_1).from_config({**adam_1.get_config(), "name": "my_adam"})
        self.assertEqual(custom_adam.name, "my_adam")

        # Test serialization and deserialization preserves name
        config_adam_2 = optimizers.serialize(adam_2)
        reloaded_adam_2 = optimizers.deserialize(config_adam_2)
        self.assertEqual(reloaded_adam_2.name, f"{case.prefix}_1")

        config_custom = optimizers.serialize(custom_adam)
        reloaded_custom = optimizers.deserialize(config_custom)
        self.assertEqual(reloaded_custom.name, "my_adam")
