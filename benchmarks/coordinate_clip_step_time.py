"""Step time of Adam with coordinate-wise clipping (Pan & Li 2023) relative to Keras' Adam,
under XLA, and the fast mode's error in rank.

One command per environment prints everything:

    .venv/bin/python benchmarks/coordinate_clip_step_time.py                      # Keras 3, TF
    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/coordinate_clip_step_time.py  # Keras 3, JAX
    .venv-tff/bin/python benchmarks/coordinate_clip_step_time.py                  # tf.keras 2.14

Each optimizer updates its own copy of the same parameters (four dense matrices of 1024
columns and a bias, adding up to 1M or 10M floats) with fixed heavy-tailed gradients, inside
`tf.function(jit_compile=True)` (on JAX: `stateless_apply` in `jax.jit`, as in
`optimizer_step_time.py`); optimizers are timed in interleaved rounds (`benchmarks/timing.py`);
printed are the best step time and the medians over rounds of the wall-time and CPU-time
ratios to Keras' Adam timed in the same round. Targets (issues 3, 12): the fast mode at
<= 1.5x Keras' Adam, the exact mode at <= 3x at 10M. `--quick`: a smoke test.

The rank error: with N coordinates and a fraction p, the exact threshold clips k = floor(N p)
coordinates; the fast threshold clips k_hat. Printed: |k_hat - k| / k over several steps (the
sample moves each step), on the benchmark's gradients and on the real gradients of a small
network on scikit-learn's digits.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_optim  # noqa: E402
from benchmarks import timing  # noqa: E402
from benchmarks.optimizer_step_time import (  # noqa: E402
    BACKEND, make_jax_step, make_tf_step, stack_description)
from keras_optim.backend import keras, ops  # noqa: E402
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


def measure(total, fraction, rounds, seconds_per_round):
    """Per optimizer: (best step time, median wall-time and CPU-time ratios to Keras' Adam)."""
    shapes = shapes_for(total)
    grads = heavy_tailed_gradients(shapes)
    make_step = make_jax_step if BACKEND == "jax" else make_tf_step
    steps, repeats = {}, {}
    for name, make in candidates(fraction).items():
        steps[name] = make_step(make, shapes, grads)
        repeats[name] = timing.warm_up(steps[name], seconds_per_round)
    times = timing.interleaved(steps, repeats, rounds)
    return sum(int(np.prod(s)) for s in shapes), timing.summarize(times, "Adam (Keras)")


def rank_errors(grads, fraction, steps=8):
    magnitudes = np.abs(np.concatenate([np.ravel(g) for g in grads]))
    k = int(magnitudes.size * fraction)
    errors = []
    for t in range(steps):
        tau = float(clip_math.sampled_threshold([ops.convert_to_tensor(g) for g in grads],
                                                fraction, step=ops.convert_to_tensor(t, "int64")))
        errors.append(abs(int(np.sum(magnitudes > tau)) - k) / k)
    return errors


def digits_gradients(seed=0):
    """Gradients of a small MLP (64-256-128-10, 50k parameters) on a batch of real digits."""
    if BACKEND != "tensorflow":
        raise ImportError("the digits gradients are taken with TensorFlow's GradientTape")
    import tensorflow as tf
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
    parser.add_argument("--seconds-per-round", type=float, default=0.3,
                        help="time each optimizer runs per round")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 16k parameters, one fraction, 2 short rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.fractions, args.rounds, args.seconds_per_round = "16384", "0.1", 2, 0.01
    fractions = [float(f) for f in args.fractions.split(",")]
    print(f"# Adam step time with coordinate clipping under XLA, {stack_description()}")
    for total in [int(s) for s in args.sizes.split(",")]:
        for fraction in fractions:
            n, results = measure(total, fraction, args.rounds, args.seconds_per_round)
            print(f"\n{n / 1e6:.2f}M parameters, coordinate_clip={fraction:g}, {args.rounds} "
                  "rounds, x Keras' Adam")
            print(timing.HEADER)
            for name, figures in results.items():
                print(timing.row(name, *figures))

    print("\n# fast mode: |k_hat - k| / k over 8 steps (k = coordinates the exact threshold "
          "clips); random-sample standard deviation sqrt((1-p)/(pS))")
    size = 16384 if args.quick else 1_000_000
    sets = {f"benchmark gradients, {size / 1e6:g}M": heavy_tailed_gradients(shapes_for(size))}
    try:
        sets["MLP on digits (50k)"] = digits_gradients()
    except ImportError as error:  # scikit-learn, or TensorFlow on the JAX backend
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
