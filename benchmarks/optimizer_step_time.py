"""Step time of keras_optim's AdaBelief and DiffGrad relative to Keras' Adam, under XLA.

Runs in either environment and measures what that environment can run:
- Keras 3 (.venv): AdaBelief, DiffGrad, keras.optimizers.Adam.
- tf.keras 2.14 (.venv-tff): the same, plus the peers when installed
  (`pip install -r benchmarks/requirements-peers-tff.txt`): tensorflow-addons' AdaBelief and the
  authors' adabelief-tf 0.2.1 (written for the pre-2.11 optimizer API, so it is run on
  `tf.keras.optimizers.legacy.Optimizer`, the only base it still runs on).

Each optimizer updates its own copy of the same parameters (a few dense matrices adding up to
1M or 10M floats) with fixed gradients, inside `tf.function(jit_compile=True)`. Optimizers are
timed in interleaved rounds so that machine noise hits all alike; the figure is the best
round. Targets (issue 2): AdaBelief <= 1.10x Adam, DiffGrad <= 1.35x Adam, and faster than
every peer.

    .venv/bin/python benchmarks/optimizer_step_time.py
    .venv-tff/bin/python benchmarks/optimizer_step_time.py
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_optim  # noqa: E402
from keras_optim.backend import KERAS3, keras  # noqa: E402


def shapes_for(total):
    """Four matrices of 1024 columns adding up to about `total` parameters."""
    rows = max(1, total // (4 * 1024))
    return [(rows, 1024)] * 4


def authors_adabelief_tf():
    """adabelief-tf 0.2.1 subclasses `tf.keras.optimizers.Optimizer` but implements the pre-2.11
    `_resource_apply_*` API: import it while that name points at the legacy base."""
    import importlib

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


def make_step(make_optimizer, shapes, seed=0):
    rng = np.random.default_rng(seed)
    variables = [tf.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    grads = [tf.constant(rng.normal(scale=1e-2, size=s).astype("float32")) for s in shapes]
    optimizer = make_optimizer()
    if hasattr(optimizer, "jit_compile"):
        optimizer.jit_compile = False  # the whole step is compiled below instead

    @tf.function(jit_compile=True)
    def step():
        optimizer.apply_gradients(zip(grads, variables))
        return variables[0][0, 0]

    return step


def measure(total, rounds, steps_per_round):
    shapes = shapes_for(total)
    steps = {}
    for name, make in candidates().items():
        try:
            steps[name] = make_step(make, shapes)
            for _ in range(3):  # compile and warm up
                steps[name]().numpy()
        except Exception as error:  # noqa: BLE001 - report peers that do not run under XLA
            print(f"{name} does not run here: {type(error).__name__}: {str(error)[:200]}")
            steps.pop(name, None)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                out = step()
            out.numpy()
            times[name].append((time.perf_counter() - start) / steps_per_round)
    return {name: min(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="parameter counts")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps-per-round", type=int, default=10)
    args = parser.parse_args(argv)
    stack = f"Keras {keras.__version__} / TF {tf.__version__}" + ("" if KERAS3 else " (tf.keras)")
    print(f"# optimizer step time under XLA, {stack}, CPU threads: {os.cpu_count()}")
    for total in [int(s) for s in args.sizes.split(",")]:
        medians = measure(total, args.rounds, args.steps_per_round)
        adam = medians["Adam (Keras)"]
        print(f"\n{total / 1e6:g}M parameters")
        print(f"{'optimizer':<28}{'ms/step':>10}{'x Adam':>9}")
        for name, seconds in medians.items():
            print(f"{name:<28}{seconds * 1e3:>10.2f}{seconds / adam:>9.2f}")


if __name__ == "__main__":
    main()
