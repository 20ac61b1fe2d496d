"""Trains the same model with MirroredStrategy on two logical CPUs and on one device; prints
the number of replicas and the largest weight difference. Used by test_keras_integration."""
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import numpy as np  # noqa: E402

import keras_optim  # noqa: E402
from keras_optim.backend import keras  # noqa: E402


def train(name, strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
        )
        model.compile(
            optimizer=getattr(keras_optim, name)(learning_rate=0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model.fit(dataset, epochs=3, verbose=0)
    return model.get_weights()


name = sys.argv[1]
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = train(name, mirrored)
one = train(name, tf.distribute.get_strategy())
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(two, one))
print(mirrored.num_replicas_in_sync, diff)
