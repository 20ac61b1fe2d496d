"""keras_optim under ``tf.distribute.MultiWorkerMirroredStrategy``: one of two workers on
127.0.0.1 (run by test_multi_worker: the strategy reads ``TF_CONFIG`` when TensorFlow starts).

    python multi_worker_check.py MODE INDEX PORT_0 PORT_1

Each worker feeds its half of a global batch of 16 to a two-layer model, for 5 steps; then
the same model is trained in this process without a strategy on the whole batch. ``MODE`` is
``loop`` (a custom ``strategy.run`` step calling ``apply_gradients``) or ``fit``. Prints one JSON
line: per optimizer, the largest absolute difference of the worker's weights from the run
without a strategy (or ``{"error": ...}`` if training under the strategy raised).
"""
import json
import os
import sys

MODE, INDEX, PORTS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port}" for port in PORTS]},
    "task": {"type": "worker", "index": INDEX},
})

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from keras_optim.backend import keras  # noqa: E402
from tests import distributed_cases  # noqa: E402

OPTIMIZERS = distributed_cases.optimizers(keras)
STEPS, BATCH = 5, 16


def data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(BATCH, 3)), rng.normal(size=(BATCH, 2))
    return x.astype("float32"), y.astype("float32")


def new_model():
    rng = np.random.default_rng(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(2)])
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                       for w in model.get_weights()])
    return model


def train_loop(model, optimizer, x, y, strategy=None):
    """``STEPS`` steps of the mean squared error over the global batch: each replica's loss is
    its squared errors divided by the global number of values, so the replicas' gradients sum
    to the global batch's gradient."""
    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x) - y)) / float(BATCH * 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    if strategy is None:
        step = tf.function(replica_step)
        for _ in range(STEPS):
            step(x, y)
        return
    half = BATCH // 2

    def local_half(context):  # this worker's half of the global batch
        rows = slice(context.replica_id_in_sync_group * half,
                     (context.replica_id_in_sync_group + 1) * half)
        return tf.constant(x[rows]), tf.constant(y[rows])

    @tf.function
    def step(inputs):
        strategy.run(replica_step, args=inputs)

    for _ in range(STEPS):
        step(strategy.experimental_distribute_values_from_function(local_half))


def train_fit(model, optimizer, x, y, strategy=None):
    model.compile(optimizer=optimizer, loss="mse")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat(STEPS)
    if strategy is not None:  # each worker keeps its half of every global batch
        options = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = policy
        dataset = dataset.with_options(options)
    model.fit(dataset, epochs=1, steps_per_epoch=STEPS, verbose=0)


def main():
    train = {"loop": train_loop, "fit": train_fit}[MODE]
    x, y = data()
    report = {}
    for name, make_optimizer in OPTIMIZERS.items():
        try:
            with STRATEGY.scope():
                model, optimizer = new_model(), make_optimizer()
                if MODE == "loop":
                    optimizer.build(model.trainable_variables)
            train(model, optimizer, x, y, STRATEGY)
        except Exception as error:  # noqa: BLE001  (reported: the test decides)
            report[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            continue
        reference = new_model()
        train(reference, make_optimizer(), x, y)
        report[name] = max(float(np.max(np.abs(a - b)))
                           for a, b in zip(model.get_weights(), reference.get_weights()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
