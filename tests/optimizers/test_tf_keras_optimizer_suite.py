"""tf.keras 2.14's own optimizer tests, ``keras/optimizers/optimizer_test.py`` at Keras v2.14.0
(not in the wheel: github.com/keras-team/keras, tag v2.14.0), run on keras_optim's optimizers
(``tests/optimizers/keras_cases.py``) in .venv-tff.

Adapted from Keras (Copyright The Keras Authors, Apache License 2.0): Keras' Adam / SGD are
replaced by each case; the numbers that are SGD's or Adam's (the moving-average trajectory,
slot names) come from the case's NumPy reference or its own slots; the wrapper's base
arguments and state are read on its wrapped optimizer.

Run for every case: testAddVariableFromReference, testAddVarialeWithCustomShape,
testBuildIndexDict, testComputeGradients, testClipNorm, testClipValue, testClipGlobalNorm,
testWeightDecay, testPassingLegacyArgsRaiseError, testPassingLegacyClipnorm,
testReturnAllOptimizerVariables, testSetWeights, testSetLearningRate, testVariableConstraints,
testNoGradients, testMovingAverageOptimizer, testCheckpointOptimizer,
testSparseGradientsWorkAsExpected. Not every case, or adapted:
- testSetIterations, testGetAndFromConfig, testApplyGradientsNameArg: keras_optim's own
  classes (the wrapper's iterations and learning rate are its optimizer's, its config nests
  it); testApplyGradientsNameArg where the optimizer has statistics (plain SGD has none).
- testSaveAndLoadOptimizerWithModel, testCheckpointOptimizerWithModel (h5, SavedModel,
  .keras; about 10 s a case): three cases, one per kind (an own optimizer, coordinate_clip's
  threshold variable, the wrapper).
- testVariableConstraints: a gradient of the kernel's shape (Keras' has a broadcast one).
- OptimizerRegressionTest (new vs legacy optimizer numbers): keras_optim's Adam(amsgrad) and
  SGD(nesterov) against tf.keras' legacy Adam / SGD, and Adam(weight_decay) against AdamW.
Skipped:
- testPassingMissingWDError: AdamW's required weight_decay.
- testRestoreOldOptimizerCheckpoint, test_convert_to_legacy_optimizer,
  test_arm_mac_get_legacy_optimizer: conversions between Keras' legacy and new built-ins.
- DistributedTrainingTest: multi-worker, GPU and TPU strategy combinations; MirroredStrategy
  on two CPUs is run by test_keras_integration.py / test_coordinate_clip_integration.py.
"""
import os

import numpy as np
import pytest
from absl.testing import parameterized

from keras_optim.backend import KERAS3

if KERAS3:
    pytest.skip("tf.keras 2.14's own tests (Keras 3's: test_keras_*_suite.py)",
                allow_module_level=True)

import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

from tests.optimizers.keras_cases import BY_NAME, NAMED, reference_trajectory  # noqa: E402

learning_rate_schedule = keras.optimizers.schedules
OWN = [p for p in NAMED if not p["case"].wrapper]
WITH_MODEL = [{"testcase_name": n, "case": BY_NAME[n]}
              for n in ("adabelief", "adam_clip_exact", "wrapper_keras_sgd")]


class OptimizerFuntionalityTest(tf.test.TestCase, parameterized.TestCase):
    """Test the functionality of optimizer."""

    @parameterized.named_parameters(NAMED)
    def testAddVariableFromReference(self, case):
        optimizer = case.make()
        variable = optimizer.add_variable_from_reference(
            tf.Variable(1.0, name="tmp"), "test"
        )
        self.assertEqual(variable._shared_name, "test/tmp")
        self.assertEqual(self.evaluate(variable), 0)

    @parameterized.named_parameters(NAMED)
    def testAddVarialeWithCustomShape(self, case):
        optimizer = case.make()
        variable = optimizer.add_variable_from_reference(
            tf.Variable([1.0, 2.0], name="tmp"), "test", shape=[]
        )
        self.assertEqual(variable, tf.Variable(0.0))

    @parameterized.named_parameters(NAMED)
    def testBuildIndexDict(self, case):
        optimizer = case.configured(case.make())
        var_list = [tf.Variable(0, name=f"var{i}") for i in range(10)]
        optimizer._build_index_dict(var_list)
        self.assertEqual(
            optimizer._index_dict[optimizer._var_key(var_list[7])], 7
        )

    @parameterized.named_parameters(NAMED)
    def testComputeGradients(self, case):
        optimizer = case.make()
        x = tf.Variable([1.0, 2.0], dtype=tf.float32)
        loss_fn = lambda: x  # noqa: E731
        # Test Tensor-type var_list.
        var_list = [x]
        grads_and_vars = optimizer.compute_gradients(loss_fn, var_list)
        grads, _ = zip(*grads_and_vars)
        self.assertAllEqual(grads[0], tf.constant([1.0, 1.0]))
        # Test callable-type var_list, and create variable in loss fn.
        x = []

        def loss_fn():
            variable = tf.Variable([1.0, 2.0], dtype=tf.float32)
            x.append(variable)
            return variable

        var_list = lambda: x  # noqa: E731

        grads_and_vars = optimizer.compute_gradients(loss_fn, var_list)
        grads, _ = zip(*grads_and_vars)
        self.assertAllEqual(grads[0], tf.constant([1.0, 1.0]))

    @parameterized.named_parameters(NAMED)
    def testClipNorm(self, case):
        optimizer = case.make(clipnorm=1)
        grad = [tf.convert_to_tensor([100.0, 100.0])]
        clipped_grad = optimizer._clip_gradients(grad)
        self.assertAllClose(clipped_grad[0], [2**0.5 / 2, 2**0.5 / 2])

    @parameterized.named_parameters(NAMED)
    def testClipValue(self, case):
        optimizer = case.make(clipvalue=1)
        grad = [tf.convert_to_tensor([100.0, 100.0])]
        clipped_grad = optimizer._clip_gradients(grad)
        self.assertAllEqual(clipped_grad[0], [1.0, 1.0])

    @parameterized.named_parameters(NAMED)
    def testWeightDecay(self, case):
        grads, var1, var2, var3 = (
            tf.zeros(()),
            tf.Variable(2.0),
            tf.Variable(2.0, name="exclude"),
            tf.Variable(2.0),
        )
        optimizer_1 = case.make(learning_rate=1, weight_decay=0.004)
        optimizer_1.apply_gradients(zip([grads], [var1]))

        optimizer_2 = case.make(learning_rate=1, weight_decay=0.004)
        optimizer_2.exclude_from_weight_decay(var_names=["exclude"])
        optimizer_2.apply_gradients(zip([grads, grads], [var1, var2]))

        optimizer_3 = case.make(learning_rate=1, weight_decay=0.004)
        optimizer_3.exclude_from_weight_decay(var_list=[var3])
        optimizer_3.apply_gradients(zip([grads, grads], [var1, var3]))

        # A zero gradient moves none of them: only the (decoupled) decay acts.
        self.assertEqual(var1, 1.9760959)
        self.assertEqual(var2, 2.0)
        self.assertEqual(var3, 2.0)

    @parameterized.named_parameters(NAMED)
    def testClipGlobalNorm(self, case):
        optimizer = case.make(global_clipnorm=1)
        grad = [
            tf.cast([100.0, 100.0], dtype=tf.float32),
            tf.cast([100.0, 100.0], dtype=tf.float32),
        ]
        clipped_grad = optimizer._clip_gradients(grad)
        self.assertAllClose(clipped_grad[0], [0.5, 0.5])

    @parameterized.named_parameters(NAMED)
    def testPassingLegacyArgsRaiseError(self, case):
        with self.assertRaisesRegex(ValueError, "decay is deprecated*"):
            _ = case.make(clipnorm=1, decay=0.5)

    @parameterized.named_parameters(NAMED)
    def testPassingLegacyClipnorm(self, case):
        optimizer = case.make(clipnorm=1)
        self.assertEqual(case.configured(optimizer).clipnorm, 1)

    @parameterized.named_parameters(NAMED)
    def testReturnAllOptimizerVariables(self, case):
        x = tf.Variable([[1.0, 2.0], [3.0, 4.0]], dtype=tf.float32)
        optimizer = case.make()
        grads = tf.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])
        optimizer.apply_gradients(zip([grads], [x]))
        optimizer_variables = optimizer.variables
        all_names = [var._shared_name for var in optimizer_variables]
        # Keras' Adam: "iteration", "Adam/m/Variable", "Adam/v/Variable"; here each case's
        # statistics under its optimizer's name, and the clipping threshold.
        configured = case.configured(optimizer)
        slot_names = configured.slot_names() if hasattr(configured, "slot_names") else ["m"]
        expected = ["iteration"] + [f"{configured.name}/{slot}/Variable" for slot in slot_names]
        if getattr(configured, "coordinate_clip", 0):
            expected.append(f"{configured.name}/coordinate_clip_threshold")
        self.assertLen(optimizer_variables, len(expected))
        self.assertCountEqual(all_names, expected)

    @parameterized.named_parameters(NAMED)
    def testSetWeights(self, case):
        x = tf.Variable([[1.0, 2.0], [3.0, 4.0]], dtype=tf.float32)
        optimizer_1 = case.make()
        grads = tf.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])
        optimizer_1.apply_gradients(zip([grads], [x]))
        optimizer_2 = case.make()
        with self.assertRaisesRegex(ValueError, "You are calling*"):
            optimizer_2.set_weights(optimizer_1.variables)
        optimizer_2.build([x])
        optimizer_2.set_weights(optimizer_1.variables)
        self.assertAllClose(optimizer_1.variables, optimizer_2.variables)

    @parameterized.named_parameters(NAMED)
    def testSetLearningRate(self, case):
        optimizer = case.make(learning_rate=1.0)
        self.assertIsInstance(case.configured(optimizer)._learning_rate, tf.Variable)
        self.assertEqual(self.evaluate(optimizer.learning_rate), 1.0)
        optimizer.learning_rate = 2.0
        self.assertEqual(self.evaluate(optimizer.learning_rate), 2.0)
        # Test the legacy setter.
        case.configured(optimizer).lr = 3.0
        self.assertEqual(self.evaluate(optimizer.learning_rate), 3.0)

        lr_schedule = learning_rate_schedule.ExponentialDecay(
            initial_learning_rate=1e-2, decay_steps=10000, decay_rate=0.9
        )
        optimizer = case.make(learning_rate=lr_schedule)
        self.assertIsInstance(
            case.configured(optimizer)._learning_rate,
            learning_rate_schedule.ExponentialDecay,
        )
        self.assertEqual(optimizer.learning_rate, 0.01)
        # Test the legacy property.
        self.assertEqual(case.configured(optimizer).lr, 0.01)

        x = tf.Variable([1.0, 2.0], dtype=tf.float32)
        grads = tf.convert_to_tensor([1.0, 2.0])
        for _ in range(2):
            optimizer.apply_gradients(zip([grads], [x]))
        self.assertTrue(
            optimizer.learning_rate < 0.01 and optimizer.learning_rate > 0.00999
        )
        # Check it does not throw error to set `learning_rate` by a
        # LearningRateScheduler instance.
        optimizer.learning_rate = learning_rate_schedule.ExponentialDecay(
            initial_learning_rate=1e-2, decay_steps=10000, decay_rate=0.9
        )
        with self.assertRaisesRegex(
            TypeError, "This optimizer was created with*"
        ):
            optimizer.learning_rate = 2.0

    @parameterized.named_parameters(OWN)
    def testSetIterations(self, case):
        optimizer = case.make(jit_compile=False)
        optimizer.iterations = tf.Variable(2, dtype=tf.int32)
        self.assertEqual(optimizer.iterations, 2)
        var_list = [tf.Variable(2.0), tf.Variable(2.0)]
        grads = tf.convert_to_tensor([1.0, 1.0])
        iterations = optimizer.apply_gradients(zip(grads, var_list))
        self.assertEqual(iterations, 3)
        self.assertEqual(optimizer.iterations, 3)
        with self.assertRaisesRegex(RuntimeError, "Cannot set*"):
            optimizer.iterations = 2

    @parameterized.named_parameters(NAMED)
    def testVariableConstraints(self, case):
        optimizer = case.make()
        inputs = keras.layers.Input(shape=[1])
        outputs = keras.layers.Dense(1, kernel_constraint="NonNeg")(inputs)
        model = keras.models.Model(inputs=inputs, outputs=outputs)
        # Keras' original rebinds a list element (`trainable_variables[0] = -999999`), which
        # leaves the kernel at its random initial value: the test then passes only when that
        # value is negative. Set the kernel itself negative.
        model.trainable_variables[0].assign([[-999999.0]])
        # Keras writes tf.zeros(1, 1): a [1]-shaped gradient (dtype 1) for the [1, 1] kernel,
        # which Keras' Adam broadcasts by accident; the kernel's shape here.
        grads = [tf.zeros((1, 1)), tf.zeros(1)]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        self.assertEqual(model.trainable_variables[0], 0.0)

    @parameterized.named_parameters(NAMED)
    def testNoGradients(self, case):
        optimizer = case.make(jit_compile=False)
        optimizer.apply_gradients(zip([], []))

    @parameterized.named_parameters([p for p in OWN if p["case"].slots])
    def testApplyGradientsNameArg(self, case):
        optimizer = case.make(jit_compile=False)
        var_list = [tf.Variable(2.0), tf.Variable(2.0)]
        grads = tf.convert_to_tensor([1.0, 1.0])
        optimizer.apply_gradients(zip(grads, var_list), name="dummy")
        # Keras' Adam: its `_velocities[0]`; here the first statistic of the first variable.
        self.assertIn("dummy", optimizer._slots[0][optimizer.slot_names()[0]].name)

    @parameterized.named_parameters(NAMED)
    def testMovingAverageOptimizer(self, case):
        optimizer = case.make(
            learning_rate=1,
            use_ema=True,
            ema_momentum=0.5,
            ema_overwrite_frequency=3,
        )

        # `var2` does not produce gradients.
        var1, var2, var3 = tf.Variable(2.0), tf.Variable(2.0), tf.Variable(2.0)
        with tf.GradientTape() as tape:
            loss = var1 + var3
        grads = tape.gradient(loss, [var1, var2, var3])
        # Keras' SGD: [1, 2, 1], [0, 2, 0], then the average: the reference's here. The
        # average starts at the variable's value when built and moves each step.
        steps = reference_trajectory(
            case, 1.0, [np.array(2.0), np.array(2.0)], [[np.array(1.0), np.array(1.0)]] * 3)
        optimizer.apply_gradients(zip(grads, [var1, var2, var3]))
        self.assertAllClose(
            [var1.numpy(), var2.numpy(), var3.numpy()],
            [steps[0][0], 2.0, steps[0][1]],
        )

        optimizer.apply_gradients(zip(grads, [var1, var2, var3]))
        self.assertAllClose(
            [var1.numpy(), var2.numpy(), var3.numpy()],
            [steps[1][0], 2.0, steps[1][1]],
        )

        average = 2.0
        for params in steps:
            average = 0.5 * average + 0.5 * params[0]
        optimizer.apply_gradients(zip(grads, [var1, var2, var3]))
        self.assertAllClose(
            [var1.numpy(), var2.numpy(), var3.numpy()],
            [average, 2.0, average],
        )

    @parameterized.named_parameters(OWN)
    def testGetAndFromConfig(self, case):
        class CustomLRSchedule(learning_rate_schedule.LearningRateSchedule):
            def __init__(self, initial_learning_rate):
                self.initial_learning_rate = initial_learning_rate

            def __call__(self, step):
                step = tf.cast(step, tf.float32)
                return self.initial_learning_rate / (step + 1)

            def get_config(self):
                return {"initial_learning_rate": self.initial_learning_rate}

        learning_rate = CustomLRSchedule(0.05)
        optimizer = case.make(
            learning_rate=learning_rate,
            clipnorm=0.5,
            use_ema=True,
            ema_momentum=0.5,
            ema_overwrite_frequency=50,
            name="custom_adam",
        )
        config = optimizer.get_config()
        expected_config = {
            "name": "custom_adam",
            "clipnorm": 0.5,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": True,
            "ema_momentum": 0.5,
            "ema_overwrite_frequency": 50,
            "is_legacy_optimizer": False,
        }
        expected_learning_rate = {
            "class_name": "CustomLRSchedule",
            "config": {"initial_learning_rate": 0.05},
            "registered_name": "CustomLRSchedule",
        }
        self.assertDictContainsSubset(expected_config, config)
        # "module": None in Keras' tree; here the test module that defines the schedule.
        self.assertDictContainsSubset(expected_learning_rate, config["learning_rate"])

        restored_optimizer = type(optimizer).from_config(
            config, custom_objects={"CustomLRSchedule": CustomLRSchedule}
        )
        self.assertDictEqual(
            restored_optimizer.get_config(), optimizer.get_config()
        )

    @parameterized.named_parameters(NAMED)
    def testCheckpointOptimizer(self, case):
        x = tf.Variable([[1.0, 2.0], [3.0, 4.0]], dtype=tf.float32)
        lr_schedule = learning_rate_schedule.ExponentialDecay(
            initial_learning_rate=1e-2, decay_steps=10000, decay_rate=0.9
        )
        optimizer_1 = case.make(learning_rate=lr_schedule)
        grads = tf.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])

        for _ in range(1):
            optimizer_1.apply_gradients(zip([grads], [x]))

        # Then save the variable and optimizer to a checkpoint.
        checkpoint_1 = tf.train.Checkpoint(var=x, optimizer=optimizer_1)
        checkpoint_path = checkpoint_1.save(self.get_temp_dir())

        # Create a new optimizer and call restore on it (and x)
        x2 = tf.Variable([[0.0, 0.0], [0.0, 0.0]], dtype=x.dtype)
        optimizer_2 = case.make(learning_rate=lr_schedule)
        checkpoint_2 = tf.train.Checkpoint(var=x2, optimizer=optimizer_2)
        checkpoint_2.restore(checkpoint_path)

        for _ in range(2):
            optimizer_1.apply_gradients(zip([grads], [x]))
            optimizer_2.apply_gradients(zip([grads], [x]))

        # Keras' Adam: its first momentum; here every optimizer variable.
        for v1, v2 in zip(optimizer_1.variables, optimizer_2.variables):
            self.assertTrue((self.evaluate(v1) == self.evaluate(v2)).all())
        self.assertEqual(
            self.evaluate(optimizer_1.iterations),
            self.evaluate(optimizer_2.iterations),
        )

    @parameterized.named_parameters(WITH_MODEL)
    def testCheckpointOptimizerWithModel(self, case):
        inputs = keras.layers.Input(shape=(1,))
        outputs = keras.layers.Dense(1)(inputs)
        model = keras.Model(inputs=inputs, outputs=outputs)
        optimizer = case.make(learning_rate=0.002)
        x = tf.expand_dims(tf.convert_to_tensor([1, 1, 1, 0, 0, 0]), axis=1)
        y = tf.expand_dims(tf.convert_to_tensor([1, 1, 1, 0, 0, 0]), axis=1)
        model.compile(loss="mse", optimizer=optimizer)
        path = os.path.join(self.get_temp_dir(), "ckpt")
        checkpoint_callback = keras.callbacks.ModelCheckpoint(path)
        model.fit(x, y, callbacks=[checkpoint_callback], verbose=0)

        new_model = keras.Model(inputs=inputs, outputs=outputs)
        new_optimizer = case.make(learning_rate=0.002)
        new_model.compile(loss="mse", optimizer=new_optimizer)
        new_model.load_weights(path)
        self.assertEqual(
            new_model.optimizer.iterations.numpy(),
            model.optimizer.iterations.numpy(),
        )

    @parameterized.named_parameters(WITH_MODEL)
    def testSaveAndLoadOptimizerWithModel(self, case):
        inputs = keras.layers.Input(shape=(1,))
        outputs = keras.layers.Dense(1)(inputs)
        model = keras.Model(inputs=inputs, outputs=outputs)
        optimizer = case.make(learning_rate=0.002)
        case.configured(optimizer).clipnorm = 0.1
        x = tf.expand_dims(tf.convert_to_tensor([1, 1, 1, 0, 0, 0]), axis=1)
        y = tf.expand_dims(tf.convert_to_tensor([1, 1, 1, 0, 0, 0]), axis=1)
        model.compile(loss="mse", optimizer=optimizer)
        model.fit(x, y, verbose=0)

        # Save in h5 format.
        path = os.path.join(self.get_temp_dir(), "model.h5")
        model.save(path)
        loaded_model = keras.models.load_model(path)
        loaded_model.load_weights(path)
        loaded_optimizer = loaded_model.optimizer
        self.assertEqual(type(optimizer), type(loaded_optimizer))
        self.assertAllClose(loaded_optimizer.learning_rate, 0.002)
        self.assertEqual(case.configured(loaded_optimizer).clipnorm, 0.1)
        self.assertAllClose(optimizer.variables, loaded_optimizer.variables)

        # Save in Keras SavedModel format.
        model.fit(x, y, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model")
        model.save(path)
        loaded_model = keras.models.load_model(path)
        loaded_model.load_weights(path)
        loaded_optimizer = loaded_model.optimizer
        self.assertEqual(type(optimizer), type(loaded_optimizer))
        self.assertAllClose(loaded_optimizer.learning_rate, 0.002)
        self.assertEqual(case.configured(loaded_optimizer).clipnorm, 0.1)
        loaded_optimizer.build(loaded_model.trainable_variables)
        self.assertAllClose(optimizer.variables, loaded_optimizer.variables)

        # Save in `.keras` format.
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded_model = keras.models.load_model(path)
        loaded_model.load_weights(path)
        loaded_optimizer = loaded_model.optimizer
        self.assertEqual(type(optimizer), type(loaded_optimizer))
        self.assertAllClose(loaded_optimizer.learning_rate, 0.002)
        self.assertEqual(case.configured(loaded_optimizer).clipnorm, 0.1)
        self.assertAllClose(optimizer.variables, loaded_optimizer.variables)

    @parameterized.named_parameters(NAMED)
    def testSparseGradientsWorkAsExpected(self, case):
        optimizer_1 = case.make()
        optimizer_2 = case.make()
        x1 = tf.Variable(np.ones([5]), dtype=tf.float64)
        x2 = tf.Variable(np.ones([5]), dtype=tf.float64)
        grads = tf.convert_to_tensor([0, 1.0, 1.5, 0, 0], dtype=tf.float64)
        sparse_grads = tf.IndexedSlices(
            tf.convert_to_tensor([1.0, 1.5], dtype=tf.float64),
            tf.convert_to_tensor([1, 2]),
            dense_shape=tf.convert_to_tensor([len(grads)]),
        )
        for _ in range(5):
            optimizer_1.apply_gradients(zip([grads], [x1]))
            optimizer_2.apply_gradients(zip([sparse_grads], [x2]))
            self.assertAllClose(x1, x2)


class OptimizerRegressionTest(tf.test.TestCase, parameterized.TestCase):
    """Test optimizer outputs the same numerical results as optimizer_v2."""

    def _compare_numerical(self, old_optimizer, new_optimizer):
        x1 = tf.Variable(np.ones([10]), dtype=tf.float64)
        x2 = tf.Variable(np.ones([10]), dtype=tf.float64)
        grads = tf.convert_to_tensor(np.arange(0.1, 1.1, 0.1))
        first_grads = tf.constant([0.01] * 10, dtype=tf.float64)
        sparse_grads = tf.IndexedSlices(
            tf.convert_to_tensor([0, 0.2, 0.4, 0.8, 0.8], dtype=tf.float64),
            tf.convert_to_tensor([0, 2, 4, 6, 6]),
            dense_shape=tf.convert_to_tensor([len(grads)]),
        )

        old_optimizer.apply_gradients(zip([first_grads], [x1]))
        new_optimizer.apply_gradients(zip([first_grads], [x2]))
        for _ in range(5):
            self.assertAllClose(x1, x2, rtol=5e-4, atol=5e-4)
            old_optimizer.apply_gradients(zip([grads], [x1]))
            new_optimizer.apply_gradients(zip([grads], [x2]))

        for _ in range(5):
            self.assertAllClose(x1, x2, rtol=5e-4, atol=5e-4)
            old_optimizer.apply_gradients(zip([sparse_grads], [x1]))
            new_optimizer.apply_gradients(zip([sparse_grads], [x2]))

    def testAdam(self):
        import keras_optim

        self._compare_numerical(
            keras.optimizers.legacy.Adam(amsgrad=True), keras_optim.Adam(amsgrad=True)
        )

    @parameterized.product(nesterov=[True, False])
    def testSgd(self, nesterov):
        import keras_optim

        self._compare_numerical(
            keras.optimizers.legacy.SGD(nesterov=nesterov), keras_optim.SGD(nesterov=nesterov)
        )

    def testWeightDecay(self):
        import keras_optim

        self._compare_numerical(
            keras_optim.Adam(learning_rate=1, weight_decay=0.5, epsilon=0),
            keras.optimizers.AdamW(learning_rate=1, weight_decay=0.5, epsilon=0),
        )
