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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
