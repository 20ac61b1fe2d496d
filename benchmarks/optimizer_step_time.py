"""Step time of keras_optim's optimizers relative to Keras' Adam, under XLA, and the bytes of
optimizer state per parameter.

One command per environment prints everything that environment can run:

    .venv/bin/python benchmarks/optimizer_step_time.py                      # Keras 3, TensorFlow
    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/optimizer_step_time.py  # Keras 3, JAX
    .venv-tff/bin/python benchmarks/optimizer_step_time.py                  # tf.keras 2.14
    ... --quick                                                            # a smoke test (seconds)

- TensorFlow (Keras 3 or tf.keras 2.14): each optimizer updates its own copy of the same
  parameters (four dense matrices of 1024 columns adding up to 1M or 10M floats) with fixed
  gradients, ``apply_gradients`` inside ``tf.function(jit_compile=True)``. In .venv-tff the
  peers run too when installed (``pip install -r benchmarks/requirements-peers-tff.txt``):
  tensorflow-addons' AdaBelief and the authors' adabelief-tf 0.2.1 (written for the pre-2.11
  optimizer API, so run on ``tf.keras.optimizers.legacy.Optimizer``, the only base it still
  runs on).
- JAX: the same, as ``optimizer.stateless_apply`` inside ``jax.jit`` with the optimizer's and
  the model's variables donated (what Keras' own JAX trainer does).

Optimizers take turns in interleaved rounds (``benchmarks/timing.py``); printed are the best
step time and the medians over rounds of the wall-time and CPU-time ratios to Keras' Adam timed
in the same round. Targets (issue 12): AdaBelief <= 1.05x, DiffGrad <= 1.55x (TensorFlow, CPU).
Nothing here pins a device: on a machine with a GPU, TensorFlow and JAX place the variables and
the step on it (the header names the device).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_optim  # noqa: E402
from benchmarks import timing  # noqa: E402
from keras_optim.backend import KERAS3, keras  # noqa: E402

BACKEND = keras.backend.backend() if KERAS3 else "tensorflow"


def shapes_for(total):
    """Four matrices of 1024 columns adding up to about `total` parameters."""
    rows = max(1, total // (4 * 1024))
    return [(rows, 1024)] * 4


def on_accelerator():
    """Whether the step runs on a GPU (or TPU): then only wall time means anything."""
    if BACKEND == "jax":
        import jax

        return jax.default_backend() != "cpu"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def stack_description():
    """Keras, backend and the device the step runs on."""
    if BACKEND == "jax":
        import jax

        return (f"Keras {keras.__version__} / JAX {jax.__version__}, "
                f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name)
                       for g in gpus) if gpus else f"CPU ({os.cpu_count()} threads)"
    keras_name = f"Keras {keras.__version__}" if KERAS3 else f"tf.keras {keras.__version__}"
    return f"{keras_name} / TF {tf.__version__}, device: {device}"


def authors_adabelief_tf():
    """adabelief-tf 0.2.1 subclasses `tf.keras.optimizers.Optimizer` but implements the pre-2.11
    `_resource_apply_*` API: import it while that name points at the legacy base."""
    import importlib

    import tensorflow as tf

    current = tf.keras.optimizers.Optimizer
    tf.keras.optimizers.Optimizer = tf.keras.optimizers.legacy.Optimizer
    try:
        module = importlib.import_module("adabelief_tf.AdaBelief_tf")
    finally:
        tf.keras.optimizers.Optimizer = current
    return lambda: module.AdaBeliefOptimizer(learning_rate=1e-3, epsilon=1e-14, print_change_log=False)


def candidates():
    found = {
        "Adam (Keras)": lambda: keras.optimizers.Adam(learning_rate=1e-3),
        "keras_optim.Adam": lambda: keras_optim.Adam(learning_rate=1e-3),
        "AdaBelief": lambda: keras_optim.AdaBelief(learning_rate=1e-3),
        "DiffGrad": lambda: keras_optim.DiffGrad(learning_rate=1e-3),
    }
    if not KERAS3:
        try:
            import tensorflow_addons as tfa

            found["tfa AdaBelief (peer)"] = lambda: tfa.optimizers.AdaBelief(learning_rate=1e-3)
        except Exception as error:  # noqa: BLE001 - a missing peer is reported, not fatal
            print(f"tensorflow-addons AdaBelief not run: {type(error).__name__}: {error}")
        try:
            found["adabelief-tf 0.2.1 (peer)"] = authors_adabelief_tf()
        except Exception as error:  # noqa: BLE001
            print(f"adabelief-tf not run: {type(error).__name__}: {error}")
    return found


def make_tf_step(make_optimizer, shapes, grads):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    variables = [tf.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    optimizer = make_optimizer()
    if hasattr(optimizer, "jit_compile"):
        optimizer.jit_compile = False  # the whole step is compiled below instead
    grads = [tf.constant(g) for g in grads]

    @tf.function(jit_compile=True)
    def step():
        optimizer.apply_gradients(zip(grads, variables))
        return tf.reshape(variables[0], [-1])[0]

    return lambda: step().numpy()


def make_jax_step(make_optimizer, shapes, grads):
    rng = np.random.default_rng(1)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    return jax_update_step(make_optimizer(), variables, grads)


def jax_update_step(optimizer, variables, grads):
    """One jitted ``stateless_apply`` of ``grads`` to ``variables`` (JAX backend), as a
    function that runs it once and waits for it."""
    import jax

    optimizer.build(variables)
    grads = [jax.numpy.asarray(g) for g in grads]
    # Donated inputs in the order of the outputs (as Keras' JAX trainer passes its state), so
    # that XLA updates every buffer in place.
    apply = jax.jit(lambda values, opt_values: optimizer.stateless_apply(opt_values, grads, values),
                    donate_argnums=(0, 1))
    state = {"values": [v.value for v in variables],
             "opt": [v.value for v in optimizer.variables]}

    def step():
        state["values"], state["opt"] = apply(state["values"], state["opt"])
        state["values"][0].block_until_ready()

    return step


def measure(total, rounds, seconds_per_round):
    """Per optimizer: (best step time, median wall-time and CPU-time ratios to Keras' Adam)."""
    shapes = shapes_for(total)
    rng = np.random.default_rng(0)
    grads = [rng.normal(scale=1e-2, size=s).astype("float32") for s in shapes]
    make_step = make_jax_step if BACKEND == "jax" else make_tf_step
    steps, repeats = {}, {}
    for name, make in candidates().items():
        try:
            steps[name] = make_step(make, shapes, grads)
            repeats[name] = timing.warm_up(steps[name], seconds_per_round)
        except Exception as error:  # noqa: BLE001 - report peers that do not run under XLA
            print(f"{name} does not run here: {type(error).__name__}: {str(error)[:200]}")
            steps.pop(name, None)
    return timing.summarize(timing.interleaved(steps, repeats, rounds), "Adam (Keras)")


def state_bytes_per_parameter(make_optimizer, total=1 << 20):
    """Bytes of the optimizer's variables (statistics and scalars) per parameter, float32."""
    shapes = shapes_for(total)
    variables = [keras.Variable(np.zeros(s, "float32")) if KERAS3 else
                 __import__("tensorflow").Variable(np.zeros(s, "float32")) for s in shapes]
    optimizer = make_optimizer()
    optimizer.build(variables)
    parameters = sum(int(np.prod(s)) for s in shapes)
    state = sum(int(np.prod(v.shape)) * np.dtype(_dtype_name(v.dtype)).itemsize
                for v in optimizer.variables)
    return state / parameters


def _dtype_name(dtype):
    return getattr(dtype, "name", None) or str(dtype)


def memory_candidates():
    return {
        "Adam (Keras)": lambda: keras.optimizers.Adam(),
        "keras_optim.Adam": lambda: keras_optim.Adam(),
        "keras_optim.Adam, amsgrad": lambda: keras_optim.Adam(amsgrad=True),
        "Adam, coordinate_clip (exact or fast)": lambda: keras_optim.Adam(coordinate_clip=0.5),
        "AdaBelief": lambda: keras_optim.AdaBelief(),
        "AdaBelief, amsgrad": lambda: keras_optim.AdaBelief(amsgrad=True),
        "DiffGrad": lambda: keras_optim.DiffGrad(),
        "SGD": lambda: keras_optim.SGD(),
        "SGD, momentum": lambda: keras_optim.SGD(momentum=0.9),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="parameter counts")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds-per-round", type=float, default=0.3,
                        help="time each optimizer runs per round")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 16k parameters, 2 short rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.seconds_per_round = "16384", 2, 0.01
    print(f"# optimizer step time under XLA, {stack_description()}")
    for total in [int(s) for s in args.sizes.split(",")]:
        results = measure(total, args.rounds, args.seconds_per_round)
        print(f"\n{total / 1e6:g}M parameters, {args.rounds} rounds, x Keras' Adam")
        print(timing.HEADER)
        for name, figures in results.items():
            print(timing.row(name, *figures))

    print("\n# optimizer state, bytes per float32 parameter (statistics and scalar variables)")
    for name, make in memory_candidates().items():
        print(f"{name:<40}{state_bytes_per_parameter(make, 1 << (14 if args.quick else 20)):>8.2f}")


if __name__ == "__main__":
    main()
