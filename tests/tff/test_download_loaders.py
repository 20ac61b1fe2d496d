"""The downloaded data sets, offline: TFF's EMNIST and CIFAR-100 from a filled cache, TFDS' CIFAR-10.

TFF 0.87's ``emnist.load_data`` / ``cifar100.load_data`` call
``download.get_compressed_file(origin=.../emnist_all.sqlite.lzma, cache_dir=cache_dir)``, which
returns ``cache_dir/emnist_all.sqlite`` (``cifar100.sqlite``) when that file exists and
downloads only otherwise; ``SqlClientData(path, split_name)`` then reads its ``examples`` table
(``split_name``, ``client_id``, ``serialized_example_proto``: a ``tf.train.Example``) and
``client_metadata``. The tests write small databases of that layout (the splits and features
TFF's parsers read: EMNIST's ``digits_only_train``/``digits_only_test`` with ``pixels`` (784
floats) and ``label``; CIFAR-100's ``train``/``test`` with ``image`` (3072 integers),
``label``, ``coarse_label``) and run the loaders through ``tff_experiments.data.real`` and the
asynchronous command line's ``--cache-dir``, with the network made unreachable.

TFDS' CIFAR-10 is read where TFDS' own builder prepared it (a data folder written from generated
images); a folder without it is the one-line error at once, with no network.

TFF's Shakespeare and Stack Overflow have no loader in the project (its Shakespeare is read
from the plays, ``tff_experiments.data.shakespeare``).
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments.data import real  # noqa: E402
from tests.tff import cli_runs  # noqa: E402

# A download fails at once (urllib honours the proxy variables; the runs' private network
# namespace, where Linux gives one, has no network anyway); TFF's gRPC to its local executor
# service honours them too, hence no_proxy.
_NOWHERE = "http://127.0.0.1:9"
NO_NETWORK = {"http_proxy": _NOWHERE, "https_proxy": _NOWHERE, "HTTP_PROXY": _NOWHERE, "HTTPS_PROXY": _NOWHERE,
              "no_proxy": "localhost,127.0.0.1,::1", "NO_PROXY": "localhost,127.0.0.1,::1"}


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """A test that reached TFF's downloader would fetch gigabytes: fail instead."""
    from tensorflow_federated.python.simulation.datasets import download

    def refuse(origin, filename):
        raise AssertionError(f"TFF tried to download {origin} to {filename}")

    monkeypatch.setattr(download, "_fetch_lzma_file", refuse)
    for name, value in NO_NETWORK.items():
        monkeypatch.setenv(name, value)


def example_proto(features):
    """A serialized ``tf.train.Example`` of ``{name: ("float" | "int64", values)}``."""
    feature = {}
    for name, (kind, values) in features.items():
        values = np.asarray(values).reshape(-1).tolist()
        feature[name] = (tf.train.Feature(float_list=tf.train.FloatList(value=values)) if kind == "float"
                         else tf.train.Feature(int64_list=tf.train.Int64List(value=values)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tff_database(path, splits):
    """A SQLite file in the layout of TFF's: ``splits`` is ``{split: {client_id: [proto, ...]}}``."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE examples (split_name TEXT NOT NULL, client_id TEXT NOT NULL, "
                           "serialized_example_proto BLOB NOT NULL);")
        connection.execute("CREATE TABLE client_metadata (client_id TEXT NOT NULL, split_name TEXT NOT NULL, "
                           "num_examples INTEGER NOT NULL);")
        for split, clients in splits.items():
            for client_id, protos in clients.items():
                connection.executemany("INSERT INTO examples VALUES (?, ?, ?);",
                                       [(split, client_id, proto) for proto in protos])
                connection.execute("INSERT INTO client_metadata VALUES (?, ?, ?);", (client_id, split, len(protos)))
    connection.close()


def emnist_cache(folder, writers=4, train=12, test=3, seed=0):
    """``folder/emnist_all.sqlite`` with digits-only writers; returns ``{split: {writer: (pixels, labels)}}``."""
    rng = np.random.default_rng(seed)
    raw = {}
    for split, count in (("digits_only_train", train), ("digits_only_test", test)):
        raw[split] = {}
        for w in range(writers):
            pixels = np.where(rng.random((count, 28, 28)) < 0.8, 1.0, rng.random((count, 28, 28))).astype(np.float32)
            labels = rng.integers(0, 10, size=count)
            raw[split][f"f{w:04d}_{w + 10:02d}"] = (pixels, labels)
    write_tff_database(folder / "emnist_all.sqlite", {
        split: {cid: [example_proto({"pixels": ("float", p), "label": ("int64", [y])}) for p, y in zip(*arrays)]
                for cid, arrays in clients.items()}
        for split, clients in raw.items()})
    return raw


def cifar100_cache(folder, train_clients=3, test_clients=2, per_client=10, seed=1):
    """``folder/cifar100.sqlite``; returns ``{split: {client: (images, labels, coarse_labels)}}``."""
    rng = np.random.default_rng(seed)
    raw = {}
    for split, clients in (("train", train_clients), ("test", test_clients)):
        raw[split] = {}
        for c in range(clients):
            labels = rng.integers(0, 100, size=per_client)
            raw[split][str(c)] = (rng.integers(0, 256, size=(per_client, 32, 32, 3)), labels, labels // 5)
    write_tff_database(folder / "cifar100.sqlite", {
        split: {cid: [example_proto({"image": ("int64", im), "label": ("int64", [y]), "coarse_label": ("int64", [c])})
                      for im, y, c in zip(*arrays)]
                for cid, arrays in clients.items()}
        for split, clients in raw.items()})
    return raw


def test_emnist_loader_reads_tffs_cache(tmp_path):
    raw = emnist_cache(tmp_path)
    train, test = real.emnist_client_data(cache_dir=str(tmp_path))
    assert train.client_ids == sorted(raw["digits_only_train"]) == test.client_ids
    assert train.element_type_structure == {"x": tf.TensorSpec((28, 28, 1), tf.float32),
                                            "y": tf.TensorSpec((), tf.int32)}
    for split, data in (("digits_only_train", train), ("digits_only_test", test)):
        for cid, (pixels, labels) in raw[split].items():
            got = list(data.create_tf_dataset_for_client(cid).as_numpy_iterator())
            np.testing.assert_array_equal(np.stack([g["x"] for g in got])[..., 0], pixels)
            np.testing.assert_array_equal([g["y"] for g in got], labels)
    x, y = real.client_data_to_arrays(test)
    assert x.shape == (12, 28, 28, 1) and y.dtype == np.int32


def test_cifar100_loader_reads_tffs_cache(tmp_path):
    raw = cifar100_cache(tmp_path)
    for label, column in (("fine", 1), ("coarse", 2)):
        train, test = real.cifar100_client_data(label=label, cache_dir=str(tmp_path))
        assert train.client_ids == ["0", "1", "2"] and test.client_ids == ["0", "1"]
        for split, data in (("train", train), ("test", test)):
            for cid, arrays in raw[split].items():
                got = list(data.create_tf_dataset_for_client(cid).as_numpy_iterator())
                np.testing.assert_allclose(np.stack([g["x"] for g in got]), arrays[0] / 255.0, rtol=1e-6)
                np.testing.assert_array_equal([g["y"] for g in got], arrays[column])


def test_an_empty_cache_is_a_one_line_error_without_download(tmp_path, monkeypatch):
    from tensorflow_federated.python.simulation.datasets import download

    def offline(origin, filename):
        raise OSError(f"<urlopen error [Errno 111] Connection refused>\nfor {origin}")

    monkeypatch.setattr(download, "_fetch_lzma_file", offline)
    with pytest.raises(real.DataUnavailableError) as info:
        real.emnist_client_data(cache_dir=str(tmp_path))
    assert "EMNIST" in str(info.value) and "Connection refused" in str(info.value) and "\n" not in str(info.value)


TINY = ["--algorithm", "fedbuff", "--buffer-size", "2", "--clients", "3", "--scenario", "F-80", "--horizon", "2",
        "--local-steps", "2", "--batch-size", "4", "--eval-every", "1", "--no-progress"]


def run_cli(args):
    process = cli_runs.start("tff_experiments.asynchronous", args, env=NO_NETWORK)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


@pytest.mark.parametrize("dataset,model", [("emnist", "logistic"), ("cifar100", "cnn")])
def test_asynchronous_cli_reads_the_cache_dir(dataset, model, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    raw = emnist_cache(cache) if dataset == "emnist" else cifar100_cache(cache)
    out = tmp_path / "out"
    stdout = run_cli(TINY + ["--dataset", dataset, "--model", model, "--cache-dir", str(cache), "--out", str(out)])
    assert "server steps to virtual time 2.00" in stdout
    assert "cache_dir" not in json.loads((out / "run.json").read_text())["config"]  # where, not what
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # time 0, 1, 2
    # Evaluated on the database's test split (12 EMNIST, 20 CIFAR-100 images).
    test_split = raw["digits_only_test"] if dataset == "emnist" else raw["test"]
    num_test = sum(len(arrays[1]) for arrays in test_split.values())
    column = rows[0].split(",").index("test_accuracy")
    for row in rows[1:]:
        correct = float(row.split(",")[column]) * num_test
        assert abs(correct - round(correct)) < 1e-6
    keras_model = tf.keras.models.load_model(out / "model" / "model.keras")
    shape, classes = ((28, 28, 1), 10) if dataset == "emnist" else ((32, 32, 3), 100)
    assert keras_model.input_shape == (None,) + shape and keras_model.output_shape == (None, classes)


def prepared_tfds_cifar10(data_dir, train=12, test=6, seed=2):
    """A CIFAR-10 prepared in ``data_dir`` by TFDS' own builder and writer, from generated images
    (the builder's split generators replaced: no download); returns ``{split: (images, labels)}``."""
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(seed)
    raw = {split: (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n))
           for split, n in (("train", train), ("test", test))}
    from tensorflow_datasets.core.utils import gcs_utils

    def examples(split):
        for i, (image, label) in enumerate(zip(*raw[split])):
            yield f"{split}_{i:05d}", {"id": f"{split}_{i:05d}", "image": image, "label": int(label)}

    with pytest.MonkeyPatch.context() as patch:
        # A builder whose data is not prepared yet first looks for it on Google Cloud Storage,
        # and TensorFlow's GCS file system retries the unreachable network for minutes.
        patch.setattr(gcs_utils, "_is_gcs_disabled", True)
        builder = tfds.builder("cifar10", data_dir=str(data_dir))
        patch.setattr(type(builder), "_split_generators", lambda self, dl_manager: {
            "train": examples("train"), "test": examples("test")})
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return raw


def test_asynchronous_cli_reads_a_prepared_tfds_cifar10(tmp_path):
    data_dir = tmp_path / "tfds"
    raw = prepared_tfds_cifar10(data_dir)
    x_train, y_train, x_test, y_test = real.load_cifar10_split(data_dir=str(data_dir))
    # TFDS' reader may shuffle the file's order: the same examples as a set, scaled by 1/255.
    order = lambda x, y: sorted(zip(y.tolist(), (x.reshape(len(x), -1) * 255).round().astype(int).tolist()))  # noqa: E731
    assert order(x_train, y_train) == order(raw["train"][0].astype(np.float32) / 255, raw["train"][1])
    assert order(x_test, y_test) == order(raw["test"][0].astype(np.float32) / 255, raw["test"][1])
    out = tmp_path / "out"
    stdout = run_cli(TINY + ["--dataset", "cifar10", "--model", "cnn", "--partition", "extreme",
                             "--cache-dir", str(data_dir), "--out", str(out)])
    assert "server steps to virtual time 2.00" in stdout
    rows = (out / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("test_accuracy")
    for row in rows[1:]:  # evaluated on the 6 test images
        correct = float(row.split(",")[column]) * len(raw["test"][1])
        assert abs(correct - round(correct)) < 1e-6
    keras_model = tf.keras.models.load_model(out / "model" / "model.keras")
    assert keras_model.input_shape == (None, 32, 32, 3) and keras_model.output_shape == (None, 10)


def test_asynchronous_cli_without_prepared_cifar10_is_a_one_line_error_at_once(tmp_path):
    """No CIFAR-10 in the data folder and no network: the one-line error, not TFDS' look-up on
    Google Cloud Storage and download, which retry the unreachable network for minutes. Run in a
    network namespace of its own where Linux gives one (the proxies of NO_NETWORK otherwise)."""
    empty = tmp_path / "tfds"
    empty.mkdir()
    unshare = shutil.which("unshare")
    offline = [unshare, "-rn"] if unshare and subprocess.run(
        [unshare, "-rn", "true"], capture_output=True, check=False).returncode == 0 else []
    env = dict({k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, **NO_NETWORK,
               PYTHONPATH=str(cli_runs.REPO))
    command = offline + [sys.executable, "-m", "tff_experiments.asynchronous", *TINY, "--dataset", "cifar10",
                         "--model", "cnn", "--cache-dir", str(empty), "--out", str(tmp_path / "out")]
    # The timeout only guards the suite: without the prepared-folder check the run waited minutes.
    result = subprocess.run(command, cwd=cli_runs.REPO, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    # (a "warning: no private namespace" line where the run cannot make its own namespace)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: CIFAR-10 is not prepared in the TFDS data folder "
                                                   f"{empty} "), result.stderr[-3000:]
    assert f"tfds build cifar10 --data_dir {empty}" in lines[0]
    assert not any(empty.iterdir())  # nothing downloaded or half-prepared


@pytest.mark.parametrize("dataset,cached,downloads", [
    ("emnist", False, True), ("emnist", True, False), ("cifar100", False, True), ("digits", False, False)])
def test_a_tff_data_set_not_yet_cached_keeps_the_real_network_for_its_download(dataset, cached, downloads, tmp_path,
                                                                                monkeypatch):
    """The command line runs in a namespace without network unless it needs one: TFF's first
    load of EMNIST or CIFAR-100 downloads into the cache, so that run keeps the real network."""
    from tff_experiments.asynchronous import cli

    cache = tmp_path / "cache"
    cache.mkdir()
    if cached:
        emnist_cache(cache)
    launched = []
    monkeypatch.setattr(cli, "launch", lambda run, settings, **options: launched.append(options) or 0)
    model = "cnn" if dataset == "cifar100" else "logistic"
    cache_flags = [] if dataset == "digits" else ["--cache-dir", str(cache)]
    assert cli.main(TINY + ["--dataset", dataset, "--model", model, *cache_flags, "--out", str(tmp_path / "out")]) == 0
    reason = launched[0]["network_needed_for"]
    if downloads:
        assert reason is not None and f"downloading {dataset}" in reason
    else:
        assert reason is None
