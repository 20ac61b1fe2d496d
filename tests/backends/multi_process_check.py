"""keras_optim under Keras 3 on JAX in two processes: ``keras.distribution.initialize`` and
``DataParallel`` over one CPU device per process (run by test_jax_multi_process).

    python multi_process_check.py INDEX COORDINATOR_PORT

Each process feeds its half of every global batch of 16 (``auto_shard_dataset=False``: the
data is this process's already) to ``fit`` of a two-layer model for 5 steps; then the same
model is trained in this process without a distribution on the whole batch. Prints one JSON
line: per optimizer, the largest absolute difference of the weights from the run without a
distribution.
"""
import json
import os
import sys

INDEX, PORT = int(sys.argv[1]), sys.argv[2]
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import keras  # noqa: E402

from tests import distributed_cases  # noqa: E402

OPTIMIZERS = distributed_cases.optimizers(keras)
STEPS, BATCH, PROCESSES = 5, 16, 2


def data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(BATCH, 3)), rng.normal(size=(BATCH, 2))
    return x.astype("float32"), y.astype("float32")


def trained(make_optimizer, x, y):
    """The weights after ``STEPS`` full-batch epochs of ``fit`` on ``x, y`` (this process's
    part of the global batch under a distribution)."""
    rng = np.random.default_rng(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(2)])
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                       for w in model.get_weights()])
    model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=STEPS, shuffle=False, verbose=0)
    # Replicated over both processes' devices: this process's copy.
    return [np.asarray(v.value.addressable_data(0)) for v in model.weights]


def main():
    keras.distribution.initialize(job_addresses=f"127.0.0.1:{PORT}", num_processes=PROCESSES,
                                  process_id=INDEX)
    assert jax.process_count() == PROCESSES and len(jax.devices()) == PROCESSES
    x, y = data()
    half = slice(INDEX * BATCH // PROCESSES, (INDEX + 1) * BATCH // PROCESSES)
    report = {}
    for name, make_optimizer in OPTIMIZERS.items():
        parallel = keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
        with parallel.scope():
            weights = trained(make_optimizer, x[half], y[half])
        with jax.default_device(jax.local_devices()[0]):
            reference = trained(make_optimizer, x, y)
        report[name] = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, reference))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
