"""Training step time with each keras_optim optimizer relative to the same model with Keras'
Adam, ``compile(jit_compile=True)``, ``train_on_batch`` on fixed batches.

One command per environment prints everything:

    .venv/bin/python benchmarks/training_step_time.py                      # Keras 3, TensorFlow
    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/training_step_time.py  # Keras 3, JAX
    .venv-tff/bin/python benchmarks/training_step_time.py                  # tf.keras 2.14
    ... --quick                                                            # a smoke test

Models: the digits CNN of ``examples/digits_comparison.py`` (batch 128, scikit-learn's digits
when installed), the character transformer of ``examples/shakespeare_transformer.py`` (its
defaults: d_model 128, 2 layers, 4 heads, 64 characters, batch 32; token ids drawn at random,
as step time does not depend on them) and an 8.4M-parameter MLP at batch 8, where the
optimizer's update dominates the step. Optimizers take turns in interleaved rounds
(``benchmarks/timing.py``); printed are the best step time and the medians over rounds of the
wall-time and CPU-time ratios to Keras' Adam timed in the same round. Targets (issue 12): AdaBelief and DiffGrad <= 1.03x, Adam with coordinate
clipping (fast mode) <= 1.10x, on the two example models.

Nothing pins a device: with a GPU, TensorFlow and JAX put the model and the step on it.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_optim  # noqa: E402
from benchmarks import timing  # noqa: E402
from benchmarks.optimizer_step_time import stack_description  # noqa: E402
from examples.digits_comparison import small_cnn  # noqa: E402
from examples.shakespeare_transformer import PAD, transformer_lm  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

VOCAB_SIZE = 90  # TFF's Shakespeare character vocabulary, as the example's


def optimizers(clip_fraction=0.5):
    return {
        "Adam (Keras)": lambda: keras.optimizers.Adam(1e-3),
        "keras_optim.Adam": lambda: keras_optim.Adam(1e-3),
        "AdaBelief": lambda: keras_optim.AdaBelief(1e-3),
        "DiffGrad": lambda: keras_optim.DiffGrad(1e-3),
        f"Adam + clip {clip_fraction:g}, fast": lambda: keras_optim.Adam(
            1e-3, coordinate_clip=clip_fraction, clip_mode="fast"),
        f"Adam + clip {clip_fraction:g}, exact": lambda: keras_optim.Adam(
            1e-3, coordinate_clip=clip_fraction, clip_mode="exact"),
        "SGD momentum (Keras)": lambda: keras.optimizers.SGD(1e-2, momentum=0.9),
        "keras_optim.SGD momentum": lambda: keras_optim.SGD(1e-2, momentum=0.9),
    }


def digits_batch(batch_size, rng):
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images / 16.0).astype("float32")[..., None]
        y = digits.target.astype("int32")
    except ImportError:  # the step time does not depend on the values
        x = rng.uniform(size=(batch_size, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 10, batch_size).astype("int32")
    index = rng.choice(len(x), batch_size, replace=len(x) < batch_size)
    return x[index], y[index]


def models(quick):
    """name -> (build model, make a batch, loss)."""
    seq_len, d_model, layers = (16, 32, 1) if quick else (64, 128, 2)
    width = 64 if quick else 1024
    return {
        "digits CNN (batch 128)": (
            lambda: small_cnn(5e-4),
            lambda rng: digits_batch(128, rng),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ),
        f"char transformer d{d_model} x{layers} (batch 32)": (
            lambda: transformer_lm(VOCAB_SIZE, seq_len, d_model, 4, layers),
            lambda rng: (rng.integers(1, VOCAB_SIZE, (32, seq_len)).astype("int32"),
                         rng.integers(1, VOCAB_SIZE, (32, seq_len)).astype("int32")),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        ),
        f"MLP 8 x {width} (batch 8)": (
            lambda: keras.Sequential(
                [keras.Input((width,))]
                + [keras.layers.Dense(width, activation="relu") for _ in range(8)]
                + [keras.layers.Dense(10)]),
            lambda rng: (rng.normal(size=(8, width)).astype("float32"),
                         rng.integers(0, 10, 8).astype("int32")),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ),
    }


def make_step(build, batch, loss, make_optimizer):
    keras.utils.set_random_seed(0)  # the same initial weights for every optimizer
    model = build()
    model.compile(optimizer=make_optimizer(), loss=loss, jit_compile=True)
    x, y = batch
    return lambda: model.train_on_batch(x, y)


def measure(build, make_batch, loss, candidates, rounds, seconds_per_round):
    batch = make_batch(np.random.default_rng(0))
    steps, repeats = {}, {}
    for name, make in candidates.items():
        train_step = make_step(build, batch, loss, make)
        # train_on_batch returns the loss as a NumPy value: the step has finished.
        steps[name] = lambda train_step=train_step: np.asarray(train_step())
        repeats[name] = timing.warm_up(steps[name], seconds_per_round)
    return timing.summarize(timing.interleaved(steps, repeats, rounds), "Adam (Keras)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds-per-round", type=float, default=0.5,
                        help="time each optimizer runs per round")
    parser.add_argument("--models", default=None,
                        help="comma-separated prefixes of the model names to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: small models, three optimizers, 2 short rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds_per_round = 2, 0.01
    print(f"# training step time, jit_compile=True, {stack_description()}")
    for model_name, (build, make_batch, loss) in models(args.quick).items():
        if args.models and not any(model_name.startswith(p) for p in args.models.split(",")):
            continue
        candidates = optimizers()
        if args.quick:  # one of each kind of update: a baseline, a slot written late, clipping
            candidates = {k: v for k, v in candidates.items()
                          if k in ("Adam (Keras)", "DiffGrad", "Adam + clip 0.5, fast")}
        results = measure(build, make_batch, loss, candidates, args.rounds,
                          args.seconds_per_round)
        print(f"\n{model_name}, {build().count_params() / 1e6:.3g}M parameters, "
              f"{args.rounds} rounds, x Keras' Adam")
        print(timing.HEADER)
        for name, figures in results.items():
            print(timing.row(name, *figures))


if __name__ == "__main__":
    main()
