"""Trains the same model with MirroredStrategy on two logical CPUs and on one device; prints
the number of replicas and the largest weight difference. Used by test_keras_integration."""
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import keras_optim  # noqa: E402
from tests.optimizers.training import fit_weights  # noqa: E402

name = sys.argv[1]
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
make_optimizer = lambda: getattr(keras_optim, name)(learning_rate=0.01)  # noqa: E731
two = fit_weights(make_optimizer, mirrored)
one = fit_weights(make_optimizer, tf.distribute.get_strategy())
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(two, one))
print(mirrored.num_replicas_in_sync, diff)
