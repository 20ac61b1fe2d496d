"""CIFAR-10 with a ResNet: the image-classification experiment of the AdaBelief (Zhuang et al.,
NeurIPS 2020) and diffGrad (Dubey et al., IEEE TNNLS 2019) papers, in Keras.

The authors' recipe (AdaBelief's ``PyTorch_Experiments/classification_cifar10``): ResNet-34
(the kuangliu/pytorch-cifar one both papers use), batch 128, random crop (padding 4) and
horizontal flip, per-channel normalisation; 200 epochs, learning rate x0.1 at epoch 150;
adaptive methods lr 1e-3, betas (0.9, 0.999), eps 1e-8; SGD lr 0.1, momentum 0.9; L2 weight
decay 5e-4 on every parameter, added to the gradient (see ``examples.common``).

CIFAR-10 comes from TensorFlow Datasets. It is read only where it is already prepared
(``--data-dir``, default ``~/tensorflow_datasets``); ``--download`` lets TFDS fetch it (needs
internet). ``--synthetic`` trains on a small generated 32x32 dataset instead (the tests use it).
Every epoch is backed up under ``--out``: rerun the same command to resume after a crash.

    python -m examples.cifar10_resnet --optimizers AdaBelief SGD-momentum   # a GPU, ~hours
    python -m examples.cifar10_resnet --synthetic --quick                   # seconds, on a CPU
"""
import argparse
import os
import sys
import time

if __package__ in (None, ""):  # `python examples/cifar10_resnet.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

if __name__ == "__main__":  # a command line: no TensorFlow C++ log lines (before it is imported)
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()

from examples import common  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

import tensorflow as tf  # noqa: E402

# The authors' normalisation constants (transforms.Normalize in their main.py).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
ARCHITECTURES = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
NUM_CLASSES = 10


class CIFARNotFound(SystemExit):
    pass


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_tfds_cifar10(data_dir, download):
    """``(train, test)`` as tf.data of (uint8 image, int label); a one-line error if absent."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise CIFARNotFound(f"error: tensorflow-datasets is not installed ({error}); "
                            "`pip install tensorflow-datasets` or use --synthetic") from None
    try:
        (train, test), info = tfds.load("cifar10", split=["train", "test"], as_supervised=True,
                                        data_dir=data_dir, download=download, with_info=True)
    except Exception as error:  # DatasetNotFoundError, AssertionError, network errors
        where = data_dir or "~/tensorflow_datasets"
        hint = ("the download failed: check the network" if download else
                "rerun with --download (needs internet), or `tfds build cifar10`")
        raise CIFARNotFound(f"error: CIFAR-10 is not available in the TFDS data dir {where} "
                            f"({type(error).__name__}); {hint}, or use --synthetic") from None
    sizes = (info.splits["train"].num_examples, info.splits["test"].num_examples)
    return train, test, sizes


def synthetic_cifar(num_train, num_test, seed=0):
    """A small learnable stand-in: each class is a fixed smooth 32x32x3 pattern plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(NUM_CLASSES, 4, 4, 3))
    prototypes = np.kron(coarse, np.ones((1, 8, 8, 1)))  # upsample to 32x32

    def make(n):
        labels = rng.integers(0, NUM_CLASSES, size=n)
        images = prototypes[labels] + rng.normal(0, 60, size=(n, 32, 32, 3))
        return np.clip(images, 0, 255).astype("uint8"), labels.astype("int64")

    train, test = make(num_train), make(num_test)
    return (tf.data.Dataset.from_tensor_slices(train), tf.data.Dataset.from_tensor_slices(test),
            (num_train, num_test))


def normalize(image):
    image = tf.cast(image, "float32") / 255.0
    return (image - tf.constant(CIFAR_MEAN)) / tf.constant(CIFAR_STD)


def augment(image):
    """RandomCrop(32, padding=4) and RandomHorizontalFlip, as the authors' transforms."""
    image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.image.random_crop(image, [32, 32, 3])
    return tf.image.random_flip_left_right(image)


def pipelines(train, test, batch_size, seed):
    train = (train.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
             .map(lambda x, y: (normalize(augment(x)), y), num_parallel_calls=tf.data.AUTOTUNE)
             .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    test = (test.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return train, test


# ---------------------------------------------------------------------------------------------
# Model: kuangliu/pytorch-cifar's ResNet (BasicBlock; 3x3 stem, no max-pool; 4x4 average pool)
# ---------------------------------------------------------------------------------------------
def resnet(blocks=(3, 4, 6, 3), width=64, weight_decay=5e-4):
    reg = common.l2_penalty(weight_decay)
    conv = dict(padding="same", use_bias=False, kernel_regularizer=reg)
    bn = dict(momentum=0.9, epsilon=1e-5, gamma_regularizer=reg, beta_regularizer=reg)

    def basic_block(x, filters, stride):
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides=stride, **conv)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(**bn)(y))
        y = keras.layers.Conv2D(filters, 3, **conv)(y)
        y = keras.layers.BatchNormalization(**bn)(y)
        if stride != 1 or x.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, strides=stride, **conv)(x)
            shortcut = keras.layers.BatchNormalization(**bn)(shortcut)
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(width, 3, **conv)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(**bn)(x))
    for stage, count in enumerate(blocks):
        for i in range(count):
            x = basic_block(x, width * 2 ** stage, 2 if (stage > 0 and i == 0) else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)  # = avg_pool2d(4) on the 4x4 map
    outputs = keras.layers.Dense(NUM_CLASSES, kernel_regularizer=reg, bias_regularizer=reg)(x)
    return keras.Model(inputs, outputs, name=f"resnet_{'-'.join(map(str, blocks))}_w{width}")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def train_one(name, data, args, out_dir):
    train, test, (num_train, _) = data
    common.set_seed(args.seed)
    model = resnet(args.blocks, args.width, args.weight_decay)
    steps_per_epoch = int(np.ceil(num_train / args.batch_size))
    lr = args.lr if args.lr is not None else common.PAPER_LEARNING_RATES[name]
    schedule = common.step_decay(lr, steps_per_epoch, [args.decay_epoch] if args.decay_epoch else [])
    model.compile(optimizer=common.image_classification_optimizer(name, schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=args.jit_compile)
    train_ds, test_ds = pipelines(train, test, args.batch_size, args.seed)
    run_dir = common.output_dir(os.path.join(out_dir, "cifar10_runs", name))
    history_csv = os.path.join(run_dir, "history.csv")
    callbacks = [keras.callbacks.CSVLogger(history_csv, append=True)]
    if not args.no_backup:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")))
    start = time.perf_counter()
    model.fit(train_ds, validation_data=test_ds, epochs=args.epochs, callbacks=callbacks,
              shuffle=False,  # the tf.data pipeline shuffles
              verbose=common.keras_verbosity())
    history = read_history(history_csv)
    history["seconds"] = time.perf_counter() - start
    history["parameters"] = int(model.count_params())
    return history


def read_history(path):
    """The per-epoch CSV (it survives a resume, unlike ``fit``'s History)."""
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    by_epoch = {int(r["epoch"]): r for r in rows}  # a resumed epoch keeps its last record
    epochs = sorted(by_epoch)
    return {key: [float(by_epoch[e][key]) for e in epochs]
            for key in ("loss", "accuracy", "val_loss", "val_accuracy")}


def plot(results, args, out_dir):
    plt = common.pyplot()
    colors = {"SGD-momentum": "tab:orange", "Adam": "tab:blue", "AdaBelief": "tab:green",
              "diffGrad": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for name, h in results.items():
        epochs = np.arange(1, len(h["val_accuracy"]) + 1)
        axes[0].plot(epochs, 100 * np.array(h["val_accuracy"]), color=colors.get(name), label=name)
        axes[1].plot(epochs, 100 * np.array(h["accuracy"]), color=colors.get(name), label=name)
    for ax, title in zip(axes, ("test accuracy", "training accuracy (augmented batches)")):
        ax.set(title=title, xlabel="epoch", ylabel="%")
        ax.grid(alpha=0.3)
        ax.legend()
    data = "synthetic 32x32 data" if args.synthetic else "CIFAR-10"
    fig.suptitle(f"ResNet {args.blocks} width {args.width} on {data}")
    fig.tight_layout()
    return common.save_figure(fig, out_dir, "cifar10_resnet")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.cifar10_resnet",
        description="CIFAR-10 ResNet with the AdaBelief/diffGrad papers' hyperparameters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--optimizers", nargs="+", default=list(common.IMAGE_OPTIMIZERS),
                        choices=common.IMAGE_OPTIMIZERS)
    parser.add_argument("--model", choices=sorted(ARCHITECTURES), default="resnet34")
    parser.add_argument("--width", type=int, default=64, help="channels of the first stage")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--decay-epoch", type=int, default=150,
                        help="learning rate x0.1 after this epoch (0: never)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None,
                        help="override the papers' learning rate (SGD 0.1, adaptive 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="TFDS data dir")
    parser.add_argument("--download", action="store_true",
                        help="let TFDS download and prepare CIFAR-10 (needs internet)")
    parser.add_argument("--synthetic", action="store_true",
                        help="a small generated 32x32 10-class dataset instead of CIFAR-10")
    parser.add_argument("--synthetic-size", type=int, nargs=2, default=[2048, 512],
                        metavar=("TRAIN", "TEST"))
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA compilation of the train step (Keras' jit_compile)")
    parser.add_argument("--no-backup", action="store_true",
                        help="no per-epoch backup (no resume after a crash)")
    common.add_common_arguments(
        parser, "a tiny ResNet (one block per stage, width 8), 3 epochs, 512/256 images")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.blocks = ARCHITECTURES[args.model]
    args.jit_compile = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    if args.quick:
        args.blocks, args.width, args.epochs, args.decay_epoch = (1, 1, 1, 1), 8, 3, 2
        args.synthetic_size = [min(args.synthetic_size[0], 512), min(args.synthetic_size[1], 256)]
        args.jit_compile = False  # XLA's compile time dominates a tiny run on a CPU
    if args.epochs < 1 or args.batch_size < 1 or args.width < 1:
        parser.error("--epochs, --batch-size and --width must be >= 1")
    out_dir = common.output_dir(args.out)
    if args.synthetic:
        data = synthetic_cifar(*args.synthetic_size, seed=args.seed)
    else:
        data = load_tfds_cifar10(args.data_dir, args.download)

    results = {}
    for name in args.optimizers:
        print(f"== {name} ==", flush=True)
        results[name] = train_one(name, data, args, out_dir)
    rows = [[name, f"{100 * h['val_accuracy'][-1]:.2f}", f"{100 * max(h['val_accuracy']):.2f}",
             f"{100 * h['accuracy'][-1]:.2f}", h["loss"][-1], len(h["loss"]),
             f"{h['seconds']:.0f}"] for name, h in results.items()]
    dataset = (f"synthetic data ({args.synthetic_size[0]} train / {args.synthetic_size[1]} test)"
               if args.synthetic else "CIFAR-10")
    common.write_table(
        out_dir, "cifar10_resnet",
        f"ResNet blocks {list(args.blocks)}, width {args.width} "
        f"({next(iter(results.values()))['parameters']:,} parameters) on {dataset}, "
        f"{args.epochs} epochs, lr x0.1 after epoch {args.decay_epoch}",
        ["optimizer", "final test acc. (%)", "best test acc. (%)", "final train acc. (%)",
         "final train loss", "epochs", "seconds"], rows)
    plot(results, args, out_dir)
    config = dict(vars(args), blocks=list(args.blocks))
    common.save_json(out_dir, "cifar10_resnet", {"config": config, "runs": results})
    return results


if __name__ == "__main__":
    main()
