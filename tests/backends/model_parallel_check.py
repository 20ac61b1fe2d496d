"""keras_optim under Keras 3's ``ModelParallel`` on JAX, with two CPU devices (run in a fresh
process by test_jax_model_parallel: XLA's device count is fixed before JAX starts).

A two-layer model whose kernels and biases are sharded over a ``model`` axis of 2 devices is
trained with ``fit`` (5 full-batch epochs) with float32 and with bfloat16 variables, by Keras'
own Adam (the reference for where statistics live) and by keras_optim's optimizers, then the
same without a distribution. Prints one JSON line, per ``"<optimizer> <dtype>"``:

- ``slots``: ``[slot path, its sharding, its variable's sharding]`` for every optimizer variable
  of a model variable's shape (the variables' shapes are distinct);
- ``sharded``: the kernels' shardings (to show that the model really is sharded);
- ``weights``: the largest absolute difference of the weights from the unsharded run;
- ``thresholds``: the coordinate-clipping threshold after each epoch, sharded and unsharded.
"""
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=2").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import keras  # noqa: E402

import keras_optim  # noqa: E402

OPTIMIZERS = {
    "keras Adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
    "AdaBelief": lambda: keras_optim.AdaBelief(learning_rate=0.01),
    "DiffGrad": lambda: keras_optim.DiffGrad(learning_rate=0.01),
    "Adam(coordinate_clip=0.1)": lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.1),
    "AdaBelief(coordinate_clip=0.3, fast)": lambda: keras_optim.AdaBelief(
        learning_rate=0.01, coordinate_clip=0.3, clip_mode="fast"),
    "CoordinateClipping(keras Adam)": lambda: keras_optim.CoordinateClipping(
        keras.optimizers.Adam(learning_rate=0.01), 0.2),
}
EPOCHS = 5


def distribution():
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices("cpu")[:2])
    layouts = keras.distribution.LayoutMap(mesh)
    layouts[".*/dense_[a-z]+/kernel"] = (None, "model")
    layouts[".*/dense_[a-z]+/bias"] = ("model",)
    return keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch")


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 6)).astype("float32"), rng.normal(size=(16, 4)).astype("float32")


def clip_threshold(optimizer):
    variable = getattr(optimizer, "coordinate_clip_threshold", None)
    if variable is None and isinstance(optimizer, keras_optim.CoordinateClipping):
        return None  # the wrapper replaces the gradients: it keeps no threshold
    return None if variable is None else float(np.asarray(variable.value))


def train(make_optimizer, dtype):
    """The model trained by ``fit`` in the current distribution; its weights, optimizer and the
    threshold after each epoch."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh", name="dense_in", dtype=dtype),
        keras.layers.Dense(4, name="dense_out", dtype=dtype),
    ])
    optimizer = make_optimizer()
    model.compile(optimizer=optimizer, loss="mse")
    thresholds = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: thresholds.append(clip_threshold(optimizer)))
    x, y = data()
    model.fit(x, y, batch_size=len(x), epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[record])
    return model, optimizer, thresholds


def sharding_text(variable):
    return str(variable.value.sharding.spec)


def main():
    report = {"devices": len(jax.devices("cpu"))}
    for dtype in ["float32", "bfloat16"]:
        for name, make_optimizer in OPTIMIZERS.items():
            with distribution().scope():
                model, optimizer, thresholds = train(make_optimizer, dtype)
            by_shape = {tuple(v.shape): v for v in model.trainable_variables}
            slots = [
                [slot.path, sharding_text(slot), sharding_text(by_shape[tuple(slot.shape)]),
                 slot.value.sharding.is_equivalent_to(
                     by_shape[tuple(slot.shape)].value.sharding, len(slot.shape))]
                for slot in optimizer.variables if tuple(slot.shape) in by_shape
            ]
            reference, _, reference_thresholds = train(make_optimizer, dtype)
            weights = max(
                float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                for a, b in zip(model.get_weights(), reference.get_weights())
            )
            report[f"{name} {dtype}"] = {
                "slots": slots,
                "sharded": [sharding_text(v) for v in model.trainable_variables
                            if "kernel" in v.path],
                "weights": weights,
                "thresholds": [thresholds, reference_thresholds],
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
