"""The keras-optim demo: a small CNN on scikit-learn's handwritten digits (real 8x8 scans,
bundled with scikit-learn, no download) trained with AdaBelief, diffGrad and Keras' Adam.
Prints each optimizer's test accuracy and saves a plot of the loss curves.

    .venv/bin/python examples/digits_demo.py            # ~1 minute on 2 CPU cores
    .venv/bin/python examples/digits_demo.py --quick    # a few seconds (used by the tests)
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # a command line: no TensorFlow C++ log lines (before it is imported)
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()

import keras_optim  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

OPTIMIZERS = {
    # Each with its documented defaults (AdaBelief: the authors' PyTorch 0.2.x defaults).
    "AdaBelief": lambda: keras_optim.AdaBelief(),
    "diffGrad": lambda: keras_optim.DiffGrad(),
    "Adam (Keras)": lambda: keras.optimizers.Adam(),
}


def load_digits_split(seed=0, test_fraction=0.25):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return train_test_split(x, digits.target.astype("int32"), test_size=test_fraction,
                            stratify=digits.target, random_state=seed)


def small_cnn(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


class _Progress(keras.callbacks.Callback):
    """One tqdm bar per optimizer, over epochs."""

    def __init__(self, label, epochs):
        super().__init__()
        from tqdm import tqdm

        self.bar = tqdm(total=epochs, desc=f"{label:>13}", unit="epoch", leave=True,
                        file=sys.stderr, disable=not sys.stderr.isatty())

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix(loss=f"{logs['loss']:.3f}", val_acc=f"{logs['val_accuracy']:.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def train(name, data, epochs, seed, batch_size=32):
    x_train, x_test, y_train, y_test = data
    model = small_cnn(seed)
    model.compile(optimizer=OPTIMIZERS[name](),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=epochs,
                        batch_size=batch_size, verbose=0, callbacks=[_Progress(name, epochs)])
    return dict(history.history, seconds=time.perf_counter() - start)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in results.items():
        epochs = np.arange(1, len(h["loss"]) + 1)
        axes[0].plot(epochs, h["loss"], label=name)
        axes[1].plot(epochs, h["val_loss"], label=name)
    for ax, title in zip(axes, ["training loss", "test loss"]):
        ax.set(title=title, xlabel="epoch", ylabel="cross-entropy", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Small CNN on scikit-learn digits")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    parser.add_argument("--out", default=os.path.join("examples", "output"),
                        help="folder for the plot (default examples/output)")
    parser.add_argument("--quick", action="store_true", help="3 epochs, for tests")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = 3 if args.quick else args.epochs

    data = load_digits_split()
    results = {name: train(name, data, epochs, args.seed) for name in OPTIMIZERS}

    print(f"\nsmall CNN on scikit-learn digits ({len(data[0])} train / {len(data[1])} test images, "
          f"{epochs} epochs, seed {args.seed})")
    print(f"{'optimizer':<14}{'test accuracy':>14}{'train loss':>12}{'seconds':>9}")
    for name, h in results.items():
        print(f"{name:<14}{h['val_accuracy'][-1]:>14.4f}{h['loss'][-1]:>12.4f}{h['seconds']:>9.1f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_demo_loss.png")
    plot(results, path)
    print(f"loss curves saved to {path}")
    return results


if __name__ == "__main__":
    main()
