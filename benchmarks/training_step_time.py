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
wall-time and CPU-time ratios to Keras' Adam timed in the same round, and Keras' plain SGD (no
optimizer state) as the floor the ratios can reach.

On the example models the update is a small share of the step, and the step's ratios move by
more than it costs (the floor row shows by how much). So each model's update is also timed
alone, on the model's own variables with fixed gradients, compiled as in
``optimizer_step_time.py``; what it adds to Adam's step gives the step ratio it implies,
:math:`1 + (u - u_{Adam}) / s_{Adam}` (best times). Targets (issue 12), each printed with both
figures: AdaBelief and DiffGrad <= 1.03x, Adam with coordinate clipping (fast mode) <= 1.10x, on
the two example models; DiffGrad <= 1.35x on the MLP on the JAX backend. On tf.keras 2.14 the
transformer's padding is masked by sample weights instead of ``ignore_class`` (which 2.14
implements with a ``boolean_mask`` that XLA cannot compile).

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
from benchmarks.optimizer_step_time import (  # noqa: E402
    BACKEND, make_jax_step, make_tf_step, on_accelerator, stack_description)
from examples.digits_comparison import small_cnn  # noqa: E402
from examples.shakespeare_transformer import PAD, transformer_lm  # noqa: E402
from keras_optim.backend import KERAS3, keras  # noqa: E402

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
        # No optimizer state: what the rest of the step costs (the floor of the ratios).
        "SGD (Keras)": lambda: keras.optimizers.SGD(1e-2),
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


def transformer_batch(seq_len, rng):
    """Token ids drawn at random (step time does not depend on them), none of them ``PAD``."""
    x, y = (rng.integers(1, VOCAB_SIZE, (32, seq_len)).astype("int32") for _ in range(2))
    if KERAS3:
        return x, y
    # tf.keras 2.14 masks ``ignore_class`` with a boolean_mask, which XLA cannot compile
    # (dynamic shape); the padding mask as sample weights does the same work, and with no PAD
    # in the batch gives the same loss.
    return x, y, (y != PAD).astype("float32")


def transformer_loss():
    if KERAS3:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


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
            lambda rng: transformer_batch(seq_len, rng),
            transformer_loss(),
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
    return lambda: model.train_on_batch(*batch)


def measure(build, make_batch, loss, candidates, rounds, seconds_per_round):
    batch = make_batch(np.random.default_rng(0))
    steps = {}
    for name, make in candidates.items():
        train_step = make_step(build, batch, loss, make)
        # train_on_batch returns the loss as a NumPy value: the step has finished.
        steps[name] = lambda train_step=train_step: np.asarray(train_step())
    return time_interleaved(steps, rounds, seconds_per_round)


def measure_updates(shapes, candidates, rounds, seconds_per_round):
    """The update alone on variables of the model's ``shapes``, fixed gradients."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(scale=1e-2, size=s).astype("float32") for s in shapes]
    make_update = make_jax_step if BACKEND == "jax" else make_tf_step
    steps = {name: make_update(make, shapes, grads) for name, make in candidates.items()}
    return time_interleaved(steps, rounds, seconds_per_round)


def time_interleaved(steps, rounds, seconds_per_round):
    repeats = {name: timing.warm_up(step, seconds_per_round) for name, step in steps.items()}
    return timing.summarize(timing.interleaved(steps, repeats, rounds), "Adam (Keras)")


def implied_step_ratios(step_results, update_results):
    """``1 + (u - u_Adam) / s_Adam`` per optimizer, from best times: the step ratio that the
    update's own cost accounts for."""
    adam_step, adam_update = step_results["Adam (Keras)"][0], update_results["Adam (Keras)"][0]
    return {name: 1.0 + (figures[0] - adam_update) / adam_step
            for name, figures in update_results.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds-per-round", type=float, default=0.5,
                        help="time each optimizer runs per round")
    parser.add_argument("--models", default=None,
                        help="comma-separated prefixes of the model names to run (default: all)")
    parser.add_argument("--optimizers", default=None,
                        help="prefixes of the optimizer names to run besides Keras' Adam, "
                             "separated by ';' (names hold commas; default: all)")
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
        if args.optimizers:
            candidates = {k: v for k, v in candidates.items() if k == "Adam (Keras)" or any(
                k.startswith(p) for p in args.optimizers.split(";"))}
        if args.quick:  # one of each kind of update: a baseline, a slot written late, clipping
            candidates = {k: v for k, v in candidates.items()
                          if k in ("Adam (Keras)", "DiffGrad", "Adam + clip 0.5, fast")}
        results = measure(build, make_batch, loss, candidates, args.rounds,
                          args.seconds_per_round)
        model = build()
        print(f"\n{model_name}, {model.count_params() / 1e6:.3g}M parameters, "
              f"{args.rounds} rounds, x Keras' Adam")
        print(timing.HEADER)
        for name, figures in results.items():
            print(timing.row(name, *figures))
        updates = measure_updates([tuple(w.shape) for w in model.trainable_weights], candidates,
                                  args.rounds, args.seconds_per_round)
        implied = implied_step_ratios(results, updates)
        print(f"update alone on the model's {len(model.trainable_weights)} variables, "
              f"x Keras Adam's update; implied step ratio")
        for name, figures in updates.items():
            print(f"{timing.row(name, *figures)}{implied[name]:>9.3f}")
        for line in target_lines(model_name, results, implied):
            print(line)


def target_lines(model_name, results, implied):
    """Issue 12's targets for this model: by the step's CPU-time ratio on a CPU (the steadier
    one when the machine is shared), its wall-time ratio on a GPU (where the host mostly waits);
    and by the step ratio that the update alone implies."""
    column, clock = (1, "wall") if on_accelerator() else (2, "CPU")
    if model_name.startswith("MLP"):
        targets = {"DiffGrad": 1.35} if BACKEND == "jax" else {}
    else:
        targets = {"AdaBelief": 1.03, "DiffGrad": 1.03, "Adam + clip 0.5, fast": 1.10}
    for name, limit in targets.items():
        if name in results:
            ratio = results[name][column]
            yield (f"target {name} <= {limit:.2f}x: step {ratio:.2f} by {clock} time "
                   f"({verdict(ratio, limit)}); update alone implies {implied[name]:.3f} "
                   f"({verdict(implied[name], limit)})")


def verdict(ratio, limit):
    return "met" if ratio <= limit else "NOT met"


if __name__ == "__main__":
    main()
