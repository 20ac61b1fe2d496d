"""Coordinate clipping under MirroredStrategy on two logical CPUs (run in a fresh process by
test_coordinate_clip_integration: logical devices must be set before TensorFlow starts).

1. Each replica gets a different gradient; the optimizers must clip the all-reduced sum with
   the threshold of the full summed gradient: compared with the NumPy port of the authors'
   code applied to the sum.
2. A model trained with fit() on two replicas equals the one trained on one device.

Prints one JSON line: {"replicas": 2, "per_replica": {name: largest relative error}, "fit": max
absolute weight difference}.
"""
import importlib.util
import json
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
from keras_optim.backend import keras  # noqa: E402
from tests.optimizers.training import fit_weights  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "ports", os.path.join(HERE, "..", "fixtures", "make_coordinate_clip_fixtures.py"))
PORTS = importlib.util.module_from_spec(spec)
spec.loader.exec_module(PORTS)

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

CASES = {
    "Adam": (lambda: keras_optim.Adam(learning_rate=2**-6, coordinate_clip=0.3),
             lambda: PORTS.AdamClipPort(lr=2**-6, epsilon=1e-7, coordinate_clip=0.3)),
    "SGD fast": (lambda: keras_optim.SGD(learning_rate=2**-6, momentum=0.5, coordinate_clip=0.25,
                                         clip_mode="fast"),
                 lambda: PORTS.SGDClipPort(lr=2**-6, momentum=0.5, coordinate_clip=0.25)),
    "CoordinateClipping(keras SGD)": (
        lambda: keras_optim.CoordinateClipping(
            keras.optimizers.SGD(learning_rate=2**-6, momentum=0.5), 0.25, threshold_scale=1.5),
        lambda: PORTS.SGDClipPort(lr=2**-6, momentum=0.5, coordinate_clip=0.25,
                                  threshold_scale=1.5)),
}


def per_replica_check(make_optimizer, make_port, dtype="float64"):
    initial, grads_a = PORTS.gradient_sequence(41, steps=6)
    _, grads_b = PORTS.gradient_sequence(42, steps=6)
    with STRATEGY.scope():
        variables = [tf.Variable(np.array(x, dtype=dtype)) for x in initial]
        optimizer = make_optimizer()
        optimizer.build(variables)  # variables are created outside the traced step

    @tf.function
    def step(per_replica):
        def replica_fn(grads):
            optimizer.apply_gradients(zip(grads, variables))
        STRATEGY.run(replica_fn, args=(per_replica,))

    port, params, worst = make_port(), [np.array(x) for x in initial], 0.0
    for a, b in zip(grads_a, grads_b):
        replica_grads = [a, [2.0 * g for g in b]]
        per_replica = STRATEGY.experimental_distribute_values_from_function(
            lambda ctx: [tf.constant(g.astype(dtype)) for g in replica_grads[ctx.replica_id_in_sync_group]]
        )
        step(per_replica)
        params, _ = port.step(params, [x + y for x, y in zip(*replica_grads)])
        for v, p in zip(variables, params):
            for local in STRATEGY.experimental_local_results(v):
                err = np.max(np.abs(local.numpy() - p) / np.maximum(np.abs(p), 1e-12))
                worst = max(worst, float(err))
    return worst


result = {"replicas": STRATEGY.num_replicas_in_sync, "per_replica": {}}
for name, (make_optimizer, make_port) in CASES.items():
    result["per_replica"][name] = per_replica_check(make_optimizer, make_port)
make_adam = lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.2)  # noqa: E731
two = fit_weights(make_adam, STRATEGY, epochs=2)
one = fit_weights(make_adam, tf.distribute.get_strategy(), epochs=2)
result["fit"] = max(float(np.max(np.abs(a - b))) for a, b in zip(two, one))
print(json.dumps(result))
