"""Shared helpers of the paper-reproduction examples: seeds, output folder, tables, plots,
progress bars and small Keras-version shims.

The examples run on Keras 3 (``.venv``) and import on tf.keras 2.14 (``.venv-tff``); the
differences they meet (how to make a variable, how to set seeds) live here.
"""
import json
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # `python examples/NAME.py` as well as `python -m examples.NAME`
    sys.path.insert(0, REPO_ROOT)

from keras_optim.backend import KERAS3, keras  # noqa: E402

DEFAULT_OUT = os.path.join(REPO_ROOT, "examples", "output")


def add_common_arguments(parser, quick_help):
    """``--out`` and ``--quick``, the same in every example."""
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="folder for tables, JSON results and PNG plots "
                             "(default: examples/output/)")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def output_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


def set_seed(seed):
    """Seeds Python, NumPy and TensorFlow (and Keras' own generators)."""
    keras.utils.set_random_seed(int(seed))


def variable(value, dtype="float32", name="x"):
    """A trainable variable that both Keras 3 and tf.keras 2 optimizers accept."""
    if KERAS3:
        return keras.Variable(np.asarray(value, dtype=dtype), dtype=dtype, name=name)
    import tensorflow as tf

    return tf.Variable(np.asarray(value, dtype=dtype), dtype=dtype, name=name)


def markdown_table(headers, rows):
    """A GitHub-flavoured Markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def write_table(out_dir, name, title, headers, rows):
    """Prints the table and saves it as ``<out_dir>/<name>.md``; returns the Markdown text."""
    text = f"{title}\n\n{markdown_table(headers, rows)}\n"
    print("\n" + text)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(text)
    return text


def save_json(out_dir, name, obj):
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=1)
    return path


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if np.isfinite(value) else None  # JSON has no NaN/inf
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_dir, name, dpi=130):
    plt = pyplot()
    path = os.path.join(out_dir, f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {path}")
    return path


def progress(iterable=None, total=None, desc=None):
    """A tqdm bar on stderr when it is a terminal; silent in logs and tests."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty(), dynamic_ncols=True)


def keras_verbosity():
    """Keras' own progress bar on a terminal, one line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2


def mean_and_std(values):
    values = np.asarray(values, dtype="float64")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# The image-classification recipe of the AdaBelief paper's CIFAR-10 code (Zhuang et al. 2020,
# PyTorch_Experiments/classification_cifar10), which the diffGrad paper's setting shares:
# adaptive methods lr 1e-3, betas (0.9, 0.999), eps 1e-8; SGD lr 0.1, momentum 0.9; weight
# decay 5e-4 as an L2 term added to the gradient of every parameter (PyTorch's
# ``weight_decay``, not decoupled); AdaBelief with rectify=False (the paper's reproducibility
# notes: "weight_decouple=False, fixed_decay=False, rectify=False for all the experiments").
# ---------------------------------------------------------------------------------------------
IMAGE_OPTIMIZERS = ("SGD-momentum", "Adam", "AdaBelief", "diffGrad")
PAPER_LEARNING_RATES = {"SGD-momentum": 0.1, "Adam": 1e-3, "AdaBelief": 1e-3, "diffGrad": 1e-3}
# Pan & Li 2023's coordinate clipping on the same recipe: SGD clips the top 10 % of the gradient's
# coordinates, Adam the top half of its first moment (exact mode); each keeps its base
# optimizer's learning rate.
CLIP_FRACTIONS = {"SGD-momentum + clip": 0.1, "Adam + clip": 0.5}
CLIPPED_IMAGE_OPTIMIZERS = tuple(CLIP_FRACTIONS)


def paper_learning_rate(name):
    """The recipe's learning rate of ``name``; a clipped optimizer takes its base optimizer's."""
    return PAPER_LEARNING_RATES[name.split(" + ")[0]]


def image_classification_optimizer(name, learning_rate, adabelief_epsilon=1e-8):
    """The papers' optimizer ``name``; ``learning_rate`` is a float or a Keras schedule.

    ``adabelief_epsilon``: the papers' 1e-8 by default; the authors' later releases use 1e-16.
    ``SGD-momentum + clip`` and ``Adam + clip``: keras_optim's SGD and Adam with Pan & Li's
    coordinate clipping (``CLIP_FRACTIONS``).
    """
    import keras_optim

    if name == "SGD-momentum":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "Adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8)
    if name == "AdaBelief":
        return keras_optim.AdaBelief(learning_rate=learning_rate, epsilon=adabelief_epsilon,
                                     rectify=False)
    if name == "diffGrad":
        return keras_optim.DiffGrad(learning_rate=learning_rate, epsilon=1e-8)
    if name == "SGD-momentum + clip":
        return keras_optim.SGD(learning_rate=learning_rate, momentum=0.9,
                               coordinate_clip=CLIP_FRACTIONS[name], clip_mode="exact")
    if name == "Adam + clip":
        return keras_optim.Adam(learning_rate=learning_rate, epsilon=1e-8,
                                coordinate_clip=CLIP_FRACTIONS[name], clip_mode="exact")
    raise ValueError(f"unknown optimizer {name!r}; choose from "
                     f"{IMAGE_OPTIMIZERS + CLIPPED_IMAGE_OPTIMIZERS}")


def l2_penalty(weight_decay):
    r"""Keras regularizer equal to PyTorch's coupled ``weight_decay`` (:math:`g \mathrel{+}=
    \lambda w`): the loss term :math:`\frac{\lambda}{2}\lVert w\rVert^2`; None for 0."""
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def step_decay(learning_rate, steps_per_epoch, decay_epochs, factor=0.1):
    """``learning_rate`` times ``factor`` after each epoch in ``decay_epochs`` (e.g. [150])."""
    boundaries = [int(e * steps_per_epoch) for e in sorted(decay_epochs)]
    if not boundaries:
        return learning_rate
    values = [learning_rate * factor ** i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
