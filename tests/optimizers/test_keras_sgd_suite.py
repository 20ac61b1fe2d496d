"""Keras 3.15.1's SGD tests, ``keras/src/optimizers/sgd_test.py``, run on keras_optim's SGD
(without and with coordinate clipping, exact and fast) and on the CoordinateClipping wrapper
around Keras' SGD (``tests/optimizers/keras_cases.py``).

Adapted from Keras (https://github.com/keras-team/keras, Copyright The Keras Authors,
Apache License 2.0): SGD is replaced by each case; the golden trajectory and the single step
come from the case's NumPy reference (Pan & Li's SGDClip port; without clipping, SGD);
``test_single_step`` counts each case's variables (a momentum per variable, the clipping
threshold) where Keras' SGD has none; the wrapper's variables are counted and read on its
wrapped optimizer. ``test_clip_norm`` / ``test_clip_value`` / ``test_weight_decay`` are
Keras' adam_test.py's too and run for every case in test_keras_adam_suite.py. No test is
skipped; ``test_invalid_momentum`` runs on keras_optim's SGD (the wrapper takes Keras' SGD).
"""
import numpy as np
import pytest
from absl.testing import parameterized

from keras_optim.backend import KERAS3

if not KERAS3:
    pytest.skip("Keras 3's own tests", allow_module_level=True)

from keras.src import backend  # noqa: E402
from keras.src import ops  # noqa: E402
from keras.src import testing  # noqa: E402

from tests.optimizers.keras_cases import BY_NAME, reference_trajectory  # noqa: E402

SGD_CASES = [{"testcase_name": n, "case": BY_NAME[n]}
             for n in ("sgd", "sgd_clip_exact", "sgd_clip_fast", "wrapper_keras_sgd")]
OURS = SGD_CASES[:3]


class SGDTest(testing.TestCase):
    @parameterized.named_parameters(SGD_CASES)
    def test_config(self, case):
        optimizer = case.make(
            learning_rate=0.5,
            momentum=0.06,
            nesterov=True,
            weight_decay=0.004,
        )
        self.run_class_serialization_test(optimizer)

    @parameterized.named_parameters(SGD_CASES)
    def test_single_step(self, case):
        optimizer = case.make(learning_rate=0.5)
        counted = case.configured(optimizer)
        self.assertEqual(len(counted.variables), 2)
        grads = ops.array([1.0, 6.0, 7.0, 2.0])
        vars = backend.Variable([1.0, 2.0, 3.0, 4.0])
        optimizer.build([vars])
        optimizer.apply_gradients(zip([grads], [vars]))
        expected = reference_trajectory(
            case, 0.5, [np.array([1.0, 2.0, 3.0, 4.0])], [[np.array([1.0, 6.0, 7.0, 2.0])]]
        )[0][0]
        self.assertAllClose(vars, expected, rtol=1e-4, atol=1e-4)
        threshold = 1 if getattr(counted, "coordinate_clip", 0) else 0
        self.assertEqual(len(counted.variables), 2 + case.slots + threshold)
        self.assertEqual(counted.variables[0], 1)
        self.assertEqual(counted.variables[1], 0.5)

    @parameterized.named_parameters(OURS)
    def test_invalid_momentum(self, case):
        with self.assertRaisesRegex(
            ValueError, "`momentum` must be a float between \\[0, 1\\]."
        ):
            case.make(momentum=-1.0)

        with self.assertRaisesRegex(
            ValueError, "`momentum` must be a float between \\[0, 1\\]."
        ):
            case.make(momentum=2.0)

    @parameterized.named_parameters(SGD_CASES)
    def test_correctness_with_golden(self, case):
        # Keras' SGD(nesterov=True), with its default momentum 0, is plain SGD; each case
        # keeps its own momentum here (its reference has it).
        optimizer = case.make()

        x = backend.Variable(np.ones([10]))
        grads = ops.arange(0.1, 1.1, 0.1)
        first_grads = ops.full((10,), 0.01)

        golden = [p[0] for p in reference_trajectory(
            case, 0.01, [np.ones(10)],
            [[ops.convert_to_numpy(first_grads)]] + [[ops.convert_to_numpy(grads)]] * 4,
        )]

        optimizer.apply_gradients(zip([first_grads], [x]))
        for i in range(5):
            self.assertAllClose(x, golden[i], rtol=5e-4, atol=5e-4)
            optimizer.apply_gradients(zip([grads], [x]))
