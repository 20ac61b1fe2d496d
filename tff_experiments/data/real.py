"""The real federated image data sets, for users with internet access.

- EMNIST (Caldas et al. 2018, LEAF; one client per writer) through
  ``tff.simulation.datasets.emnist.load_data``;
- CIFAR-100 (Reddi et al. 2021, "Adaptive Federated Optimization"; 500 clients by a
  two-level Pachinko allocation) through ``tff.simulation.datasets.cifar100.load_data``;
- CIFAR-10 through TensorFlow Datasets, split across clients by a partition of its labels
  (``tff_experiments.data.partitions``; by default Dirichlet(alpha), as the papers' code does).

All come out in the element style of the digits and Shakespeare data:
``{'x': float32 image (H, W, C) in [0, 1], 'y': int32 label}``. TFF's data sets are downloaded
on first use, into a cache that later calls read without the network; CIFAR-10 is read only
where TFDS has prepared it:

- TFF (EMNIST, CIFAR-100) keeps the decompressed SQLite database ``emnist_all.sqlite`` /
  ``cifar100.sqlite`` in ``cache_dir`` (default ``~/.tff``;
  ``tff.simulation.datasets.download.get_compressed_file`` downloads only when that file is
  absent), whose ``examples`` table holds one serialized ``tf.train.Example`` per image
  (``split_name``, ``client_id``, ``serialized_example_proto``) and ``client_metadata`` the
  clients of each split;
- TFDS keeps CIFAR-10 prepared in ``data_dir/cifar10/<version>`` (``data_dir`` by default
  ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``), which ``tfds build cifar10 --data_dir
  DIR`` fills once, with internet access.

The asynchronous command line's ``--cache-dir`` is that folder. Without internet and without a
cache (for CIFAR-10: without the prepared folder, at once and whatever the network), the loaders
raise a one-line ``DataUnavailableError`` (a ``FileNotFoundError``). TFF is imported inside the
functions; ``load_cifar10_split`` needs no TFF.
"""
import os

import numpy as np

from tff_experiments.data import partitions
from tff_experiments.data.common import DataUnavailableError, one_line

# The file each TFF data set leaves in its cache folder; where it is, the loader reads it
# without the network.
TFF_CACHE_FILES = {"emnist": "emnist_all.sqlite", "cifar100": "cifar100.sqlite"}
TFF_DEFAULT_CACHE = os.path.join("~", ".tff")


def needs_download(dataset, cache_dir=None):
    """Whether loading ``dataset`` downloads it: a TFF data set whose file is not yet in
    ``cache_dir`` (default ``~/.tff``). TF-free, for the command line's choice of namespace.

    Args:
      dataset: the ``--dataset`` name.
      cache_dir: the ``--cache-dir``, or ``None``.
    """
    name = TFF_CACHE_FILES.get(dataset)
    folder = os.path.expanduser(cache_dir or TFF_DEFAULT_CACHE)
    return name is not None and not os.path.exists(os.path.join(folder, name))


def _load(name, loader, **kwargs):
    """Calls a TFF loader, turning a failed download into a one-line DataUnavailableError."""
    try:
        return loader(**kwargs)
    except Exception as error:  # URLError, keras' get_file "URL fetch failure"...
        raise DataUnavailableError(
            f"could not load {name} (downloaded on first use: needs internet access or a filled "
            f"cache): {type(error).__name__}: {one_line(error)}"
        ) from error


def _preprocess(client_data, convert):
    import tensorflow as tf

    def preprocess(dataset):
        return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    return client_data.preprocess(preprocess)


def emnist_client_data(only_digits=True, cache_dir=None):
    """Federated EMNIST, one client per writer (3383 writers for digits, 3400 with letters).

    Args:
      only_digits: the 10 digits only, or also the 52 letters.
      cache_dir: where TFF keeps the downloaded files (default: its own cache folder,
        ``~/.tff``); a folder holding ``emnist_all.sqlite`` is read without the network.

    Returns:
      ``(train, test)`` ``ClientData`` (same client ids) with elements
      ``{'x': float32 (28, 28, 1), 'y': int32 ()}``. The pixels are TFF's, in [0, 1] with
      1.0 for the background (white); labels 0..9 (0..61 with ``only_digits=False``).
    """
    import tensorflow as tf
    import tensorflow_federated as tff

    train, test = _load(
        "EMNIST", tff.simulation.datasets.emnist.load_data, only_digits=only_digits, cache_dir=cache_dir
    )

    def convert(element):
        return {
            "x": tf.reshape(tf.cast(element["pixels"], tf.float32), (28, 28, 1)),
            "y": tf.cast(element["label"], tf.int32),
        }

    return _preprocess(train, convert), _preprocess(test, convert)


def cifar100_client_data(label="fine", cache_dir=None):
    """Federated CIFAR-100: 500 training clients and 100 test clients of 100 images each.

    Args:
      label: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
      cache_dir: where TFF keeps the downloaded files (default: its own cache folder,
        ``~/.tff``); a folder holding ``cifar100.sqlite`` is read without the network.

    Returns:
      ``(train, test)`` ``ClientData`` with elements ``{'x': float32 (32, 32, 3) in [0, 1],
      'y': int32 ()}``.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    import tensorflow as tf
    import tensorflow_federated as tff

    train, test = _load("CIFAR-100", tff.simulation.datasets.cifar100.load_data, cache_dir=cache_dir)
    key = "label" if label == "fine" else "coarse_label"

    def convert(element):
        return {
            "x": tf.cast(element["image"], tf.float32) / 255.0,
            "y": tf.cast(element[key], tf.int32),
        }

    return _preprocess(train, convert), _preprocess(test, convert)


def _tfds_data_dir(data_dir=None):
    """The TFDS data folder: ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``
    (TFDS's own default), with ``~`` expanded."""
    return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets"))


def _load_cifar10_arrays(data_dir=None):
    """CIFAR-10 from TFDS as uint8/int64 NumPy arrays ``(x_train, y_train, x_test, y_test)``."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataUnavailableError(
            "CIFAR-10 is read through tensorflow-datasets, which this environment lacks "
            "(pip install tensorflow-datasets)"
        ) from None
    # Only a prepared folder is read: TFDS's builder of a prepared version reads its metadata
    # there, while the builder of data not prepared yet first looks it up on Google Cloud Storage
    # (and ``tfds.load`` then downloads it), retrying an unreachable network for minutes.
    folder = _tfds_data_dir(data_dir)
    version = str(tfds.builder_cls("cifar10").VERSION)
    prepared = os.path.join(folder, "cifar10", version)
    if not os.path.isfile(os.path.join(prepared, "dataset_info.json")):
        raise DataUnavailableError(
            f"CIFAR-10 is not prepared in the TFDS data folder {folder} (no cifar10/{version} in it): prepare it "
            f"once on a machine with internet access, `tfds build cifar10 --data_dir {folder}`, or copy a "
            f"prepared cifar10/{version} folder there"
        )
    try:
        builder = tfds.builder("cifar10", data_dir=folder)
        splits = builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
        (x_train, y_train), (x_test, y_test) = tfds.as_numpy(splits)
    except Exception as error:  # a partly copied or corrupted folder: TFDS, TensorFlow or OS errors
        raise DataUnavailableError(
            f"could not read the CIFAR-10 prepared in {prepared}: {type(error).__name__}: {one_line(error)}"
        ) from error
    return x_train, y_train, x_test, y_test


def load_cifar10_split(data_dir=None):
    """CIFAR-10's training and test sets from TFDS, as NumPy arrays (no TFF needed).

    Args:
      data_dir: the TFDS data folder (default: TFDS's own, ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``), where ``tfds build cifar10 --data_dir DIR`` prepared it.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images float32 in [0, 1] of shape
      ``(n, 32, 32, 3)`` (the 0..255 intensities divided by 255), labels int32 in 0..9.

    Raises:
      DataUnavailableError: tensorflow-datasets is missing, or CIFAR-10 is not prepared in
        ``data_dir`` (one line; nothing is downloaded).
    """
    x_train, y_train, x_test, y_test = _load_cifar10_arrays(data_dir)
    to_float = lambda x: np.asarray(x, dtype=np.float32) / np.float32(255.0)  # noqa: E731
    to_labels = lambda y: np.asarray(y).astype(np.int32).reshape(-1)  # noqa: E731
    return to_float(x_train), to_labels(y_train), to_float(x_test), to_labels(y_test)


def cifar10_client_data(num_clients, alpha, seed=0, data_dir=None, partition="dirichlet"):
    """CIFAR-10's training set split across ``num_clients`` clients by a partition of its labels.

    Args:
      num_clients: the number of clients :math:`M`.
      alpha: the Dirichlet concentration, >= 0 (0: one class per client).
      seed: the partition's seed.
      data_dir: the TFDS data folder (default: TFDS's own).
      partition: one of ``tff_experiments.data.partitions.PARTITIONS`` (default
        ``"dirichlet"``, ``tff_experiments.data.digits.dirichlet_partition``).

    Returns:
      ``(client_data, (x_test, y_test))``: client ids ``"0"`` .. ``"M-1"``, elements
      ``{'x': float32 (32, 32, 3) in [0, 1], 'y': int32 ()}``, and the 10000 test images as
      NumPy arrays. See ``tff_experiments.data.partitions.partition`` for the split and its
      errors.
    """
    partitions.check_partition(partition, alpha)  # before the download
    x_train, y_train, x_test, y_test = load_cifar10_split(data_dir)
    parts = partitions.partition(partition, y_train, num_clients, alpha, seed)
    return partitions.partitioned_client_data(x_train, y_train, parts), (x_test, y_test)


def client_data_to_arrays(client_data, max_examples=None):
    """All examples of the ``client_data`` (in client-id order) as ``(x, y)`` NumPy arrays.

    For global evaluation on a federated test set (e.g. EMNIST's or CIFAR-100's ``test``);
    ``max_examples`` stops early.
    """
    xs, ys, count = [], [], 0
    for cid in client_data.client_ids:
        if max_examples is not None and count >= max_examples:
            break
        for batch in client_data.create_tf_dataset_for_client(cid).batch(4096).as_numpy_iterator():
            xs.append(batch["x"])
            ys.append(batch["y"])
            count += len(batch["y"])
    if not xs:
        raise ValueError("the ClientData has no examples")
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x, y) if max_examples is None else (x[:max_examples], y[:max_examples])
