"""Packaging: the core package stands alone (keras_optim never imports TFF), and its wheel
needs Keras and NumPy only, so a Keras 3 user on JAX installs no TensorFlow. The wheel is built
and installed offline, with the build tools of the environment the tests run in."""
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_keras_optim_imports_without_tff():
    code = (
        "import sys, keras_optim, keras_optim.math, keras_optim.optimizers;"
        "print(sorted(m for m in sys.modules if m.startswith('tensorflow_federated')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _pip(*args, cwd=None):
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """keras-optim's wheel, built from a copy of the sources (the work tree stays clean)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    for package in ("keras_optim", "tff_experiments", "flower_async"):
        shutil.copytree(os.path.join(ROOT, package), source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"),
               str(source))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (built,) = (tmp / "dist").glob("keras_optim-*.whl")
    return built


def _requirements(wheel_path):
    with zipfile.ZipFile(wheel_path) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def _name(requirement):
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower()


def test_wheel_requires_keras_and_numpy_only(wheel):
    requirements = _requirements(wheel)
    core = {_name(r) for r in requirements if "extra ==" not in r}
    assert core == {"keras", "numpy"}, requirements
    tensorflow_extras = {
        re.search(r'extra == "([^"]+)"', r).group(1)
        for r in requirements if _name(r) == "tensorflow"
    }
    assert tensorflow_extras == {"tensorflow", "federated", "flower"}, requirements
    extras = {re.search(r'extra == "([^"]+)"', r).group(1) for r in requirements if "extra ==" in r}
    assert {"tensorflow", "jax", "torch", "federated", "flower", "test", "examples"} <= extras


def test_wheel_installs_here_and_trains(wheel, tmp_path):
    """Installing the wheel into this environment needs nothing that is not here (offline: on
    .venv-jax, where TensorFlow is absent, a TensorFlow requirement would fail), and the
    installed copy trains a model on the environment's Keras and backend."""
    dry_run = _pip("install", "--dry-run", "--no-index", str(wheel))
    assert dry_run.returncode == 0, dry_run.stdout[-2000:] + dry_run.stderr[-2000:]
    site = tmp_path / "site"
    out = _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    code = (
        "import sys, numpy as np, keras_optim\n"
        "from keras_optim.backend import keras\n"
        "x = np.random.default_rng(0).normal(size=(64, 3)).astype('float32')\n"
        "y = x @ np.array([[1.0], [-2.0], [0.5]], 'float32')\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "model.compile(optimizer=keras_optim.AdaBelief(learning_rate=0.1), loss='mse')\n"
        "losses = model.fit(x, y, batch_size=16, epochs=5, verbose=0).history['loss']\n"
        "print(keras_optim.__file__)\n"
        "print(losses[0], losses[-1])\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    where, losses, imported_tensorflow = run.stdout.strip().splitlines()[-3:]
    assert where.startswith(str(site)), where  # the installed copy, not the work tree
    first, last = map(float, losses.split())
    assert last < 0.5 * first
    if os.environ.get("KERAS_BACKEND") == "jax":
        assert imported_tensorflow == "False"
