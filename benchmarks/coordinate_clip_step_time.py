"""Step time of Adam with coordinate-wise clipping (Pan & Li 2023) relative to Keras' Adam,
under XLA, and the fast mode's error in rank.

Runs in either environment (Keras 3 in .venv, tf.keras 2.14 in .venv-tff):

    .venv/bin/python benchmarks/coordinate_clip_step_time.py
    .venv-tff/bin/python benchmarks/coordinate_clip_step_time.py

Each optimizer updates its own copy of the same parameters (four dense matrices of 1024
columns and a bias, adding up to 1M or 10M floats) with fixed heavy-tailed gradients, inside
`tf.function(jit_compile=True)`; optimizers are timed in interleaved rounds so that machine
noise hits all alike; printed are the median step time and the median over rounds of the
ratio to Keras' Adam timed in the same round. Target (issue 3): the fast mode at
<= 1.5x Keras' Adam.

The rank error: with N coordinates and a fraction p, the exact threshold clips k = floor(N p)
coordinates; the fast threshold clips k_hat. Printed: |k_hat - k| / k over several steps (the
sample moves each step), on the benchmark's gradients and on the real gradients of a small
network on scikit-learn's digits.
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
from keras_optim.math import coordinate_clip as clip_math  # noqa: E402


def shapes_for(total):
    """Four matrices of 1024 columns and a bias of 1024, adding up to about `total`."""
    rows = max(1, (total - 1024) // (4 * 1024))
    return [(rows, 1024)] * 4 + [(1024,)]


def heavy_tailed_gradients(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [(1e-2 * rng.standard_t(3, size=s) * 10.0 ** rng.uniform(-1, 1, size=s[-1]))
            .astype("float32") for s in shapes]


def candidates(fraction):
    return {
        "Adam (Keras)": lambda: keras.optimizers.Adam(learning_rate=1e-3),
        "keras_optim.Adam, no clipping": lambda: keras_optim.Adam(learning_rate=1e-3),
        f"clip {fraction:g}, fast": lambda: keras_optim.Adam(
            learning_rate=1e-3, coordinate_clip=fraction, clip_mode="fast"),
        f"clip {fraction:g}, exact": lambda: keras_optim.Adam(
            learning_rate=1e-3, coordinate_clip=fraction, clip_mode="exact"),
    }


def make_step(make_optimizer, shapes, grads):
    rng = np.random.default_rng(1)
    variables = [tf.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    optimizer = make_optimizer()
    if hasattr(optimizer, "jit_compile"):
        optimizer.jit_compile = False  # the whole step is compiled below instead
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def step():
        optimizer.apply_gradients(zip(grads, variables))
        return variables[0][0, 0]

    return step


def measure(total, fraction, rounds, seconds_per_round):
    """Median step time of each optimizer and median, over rounds, of its ratio to Keras' Adam
    in the same round (machine noise comes in bursts: a ratio within a round is steadier)."""
    shapes = shapes_for(total)
    grads = [tf.constant(g) for g in heavy_tailed_gradients(shapes)]
    steps, repeats = {}, {}
    for name, make in candidates(fraction).items():
        steps[name] = make_step(make, shapes, grads)
        for _ in range(2):  # compile and warm up
            steps[name]().numpy()
        start = time.perf_counter()
        steps[name]().numpy()
        repeats[name] = max(2, int(seconds_per_round / max(time.perf_counter() - start, 1e-6)))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                out = step()
            out.numpy()
            times[name].append((time.perf_counter() - start) / repeats[name])
    adam = times["Adam (Keras)"]
    return sum(int(np.prod(s)) for s in shapes), {
        name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, adam)))
        for name, t in times.items()
    }


def rank_errors(grads, fraction, steps=8):
    magnitudes = np.abs(np.concatenate([np.ravel(g) for g in grads]))
    k = int(magnitudes.size * fraction)
    errors = []
    for t in range(steps):
        tau = float(clip_math.sampled_threshold([tf.constant(g) for g in grads], fraction,
                                                step=tf.constant(t, tf.int64)))
        errors.append(abs(int(np.sum(magnitudes > tau)) - k) / k)
    return errors


def digits_gradients(seed=0):
    """Gradients of a small MLP (64-256-128-10, 50k parameters) on a batch of real digits."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    batch = rng.choice(len(x), 128, replace=False)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y[batch], model(x[batch].astype("float32") / 16.0))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="parameter counts")
    parser.add_argument("--fractions", default="0.5,0.1", help="coordinate_clip values")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds-per-round", type=float, default=0.15,
                        help="time each optimizer runs per round")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    stack = f"Keras {keras.__version__} / TF {tf.__version__}" + ("" if KERAS3 else " (tf.keras)")
    print(f"# Adam step time with coordinate clipping under XLA, {stack}, "
          f"CPU threads: {os.cpu_count()}")
    for total in [int(s) for s in args.sizes.split(",")]:
        for fraction in fractions:
            n, results = measure(total, fraction, args.rounds, args.seconds_per_round)
            print(f"\n{n / 1e6:.2f}M parameters, coordinate_clip={fraction:g}")
            print(f"{'optimizer':<32}{'ms/step':>10}{'x Adam':>9}")
            for name, (seconds, ratio) in results.items():
                print(f"{name:<32}{seconds * 1e3:>10.2f}{ratio:>9.2f}")

    print("\n# fast mode: |k_hat - k| / k over 8 steps (k = coordinates the exact threshold "
          "clips); random-sample standard deviation sqrt((1-p)/(pS))")
    sets = {"benchmark gradients, 1M": heavy_tailed_gradients(shapes_for(1_000_000))}
    try:
        sets["MLP on digits (50k)"] = digits_gradients()
    except ImportError as error:
        print(f"digits gradients skipped: {error}")
    print(f"{'gradients':<28}{'p':>6}{'sample':>8}{'mean':>9}{'max':>9}{'iid sd':>9}")
    for label, grads in sets.items():
        for fraction in sorted(set(fractions + [0.01])):
            errors = rank_errors(grads, fraction)
            sample = clip_math.fast_sample_size(fraction)
            sd = np.sqrt((1 - fraction) / (fraction * sample))
            print(f"{label:<28}{fraction:>6g}{sample:>8}{np.mean(errors):>9.2%}"
                  f"{np.max(errors):>9.2%}{sd:>9.2%}")


if __name__ == "__main__":
    main()
