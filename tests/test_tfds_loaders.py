"""CIFAR-10 through TensorFlow Datasets, offline: ``tff_experiments.data.real.load_cifar10_split``
and ``examples/cifar10_resnet.py`` on ``tfds.testing.mock_data``.

TFDS is only in ``.venv`` (the tests skip elsewhere). The mock generates the examples; the data
folder holds what a prepared CIFAR-10 has besides its records, ``cifar10/<version>/``'s
``dataset_info.json`` and ``features.json``, written from TFDS's own CIFAR-10 builder with the
split sizes set, so that the loaders read the split sizes they would read from a real download.
"""
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

NUM_EXAMPLES = 48


@pytest.fixture
def cifar10_dir(tmp_path):
    """A TFDS data folder with CIFAR-10's metadata (train and test of NUM_EXAMPLES), mocked."""
    builder = tfds.builder("cifar10", data_dir=str(tmp_path))
    splits = [tfds.core.SplitInfo(name=name, shard_lengths=[NUM_EXAMPLES], num_bytes=0) for name in ("train", "test")]
    builder.info.set_splits(tfds.core.SplitDict(splits))
    version_dir = tmp_path / "cifar10" / str(builder.version)
    version_dir.mkdir(parents=True)
    builder.info.write_to_directory(str(version_dir))
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(tmp_path)):
        yield tmp_path


def test_load_cifar10_split_is_tfds_cifar10_scaled(cifar10_dir):
    from tff_experiments.data import partitions, real

    x_train, y_train, x_test, y_test = real.load_cifar10_split(data_dir=str(cifar10_dir))
    assert x_train.shape == x_test.shape == (NUM_EXAMPLES, 32, 32, 3)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    # The same images as TFDS gives, divided by 255 (read here example by example).
    raw = list(tfds.as_numpy(tfds.load("cifar10", split="train", as_supervised=True, data_dir=str(cifar10_dir))))
    np.testing.assert_array_equal(x_train * 255.0, np.stack([image for image, _ in raw]).astype(np.float32))
    np.testing.assert_array_equal(y_train, [label for _, label in raw])
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and set(y_train.tolist()) <= set(range(10))
    # What cifar10_client_data splits across the clients (its ClientData needs TFF, not here).
    parts = partitions.partition("extreme", y_train, 4)
    assert sorted(np.concatenate(parts).tolist()) == list(range(NUM_EXAMPLES))


def test_cifar10_resnet_example_trains_on_tfds_data(cifar10_dir, tmp_path, capsys):
    from examples import cifar10_resnet

    results = cifar10_resnet.main(["--data-dir", str(cifar10_dir), "--quick", "--optimizers", "SGD-momentum",
                                   "--no-backup", "--out", str(tmp_path / "out")])
    history = results["SGD-momentum"]
    assert len(history["loss"]) == 3 and np.isfinite(history["loss"]).all()
    table = (tmp_path / "out" / "cifar10_resnet.md").read_text()
    assert "on CIFAR-10" in table and "SGD-momentum" in table
    # The split sizes come from the data folder's metadata (for the schedule's steps per epoch).
    train, test, sizes = cifar10_resnet.load_tfds_cifar10(str(cifar10_dir), download=False)
    assert sizes == (NUM_EXAMPLES, NUM_EXAMPLES)
    images, labels = next(iter(train.batch(5)))
    assert images.shape == (5, 32, 32, 3) and images.dtype.name == "uint8" and labels.shape == (5,)
