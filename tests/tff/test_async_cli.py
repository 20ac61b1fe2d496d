"""``python -m tff_experiments.asynchronous`` (alias ``tff_experiments.fedfix``): outputs, exact resume after
a kill, export, one-line errors."""
import collections
import csv

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import fedfix  # noqa: E402  (the alias)
from tff_experiments.asynchronous import experiment  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402
from tests.tff import cli_runs  # noqa: E402

TINY = ["--algorithm", "async", "--dataset", "digits", "--model", "logistic", "--clients", "5",
        "--scenario", "F-80", "--horizon", "3", "--local-steps", "2", "--batch-size", "16",
        "--eval-every", "0.5"]


def cli(args, module="tff_experiments.asynchronous"):
    return cli_runs.start(module, args)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    process = cli(TINY + ["--out", str(out), "--checkpoint-every", "1000", "--progress"])
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return out, stdout, stderr


def test_outputs(uninterrupted):
    out, stdout, stderr = uninterrupted
    assert "virtual time" in stderr  # the progress bar
    assert not cli_runs.tensorflow_log_lines(stderr), stderr[-3000:]
    assert "server steps to virtual time" in stdout
    events = read_csv(out / "events.csv")
    assert events[0] == ["step", "time", "clients", "mean_staleness", "max_staleness", "total_weight", "train_loss"]
    steps = [int(row[0]) for row in events[1:]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 20
    times = [float(row[1]) for row in events[1:]]
    assert times == sorted(times) and times[-1] <= 3.0
    assert any(row[4] and int(row[4]) > 0 for row in events[1:])  # stale work was aggregated
    updates = read_csv(out / "updates.csv")  # one row per client update
    assert updates[0] == ["step", "time", "client", "sent_version", "staleness", "weight"]
    per_step = collections.Counter(int(row[0]) for row in updates[1:])
    assert [per_step.get(step, 0) for step in steps] == [int(row[2]) for row in events[1:]]
    assert all(int(row[4]) == int(row[0]) - 1 - int(row[3]) >= 0 for row in updates[1:])
    metrics = read_csv(out / "metrics.csv")
    header = metrics[0]
    for column in ("step", "time", "test_loss", "test_accuracy", "federated_loss", "surrogate_loss"):
        assert column in header
    assert metrics[1][header.index("step")] == "0" and int(metrics[-1][header.index("step")]) == steps[-1]
    assert len(metrics) - 1 >= 6  # every 0.5 of virtual time, and at the start and end
    assert list((out / "tensorboard").rglob("events.out.tfevents*"))

    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    keras_model = tf.keras.models.load_model(out / "model" / "model.keras")
    served = tf.saved_model.load(str(out / "model" / "saved_model")).signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(served["logits"].numpy(), keras_model(x).numpy(), rtol=1e-6)


def test_killed_run_resumes_exactly(uninterrupted, tmp_path):
    reference, _, _ = uninterrupted
    out = tmp_path / "run"
    args = TINY + ["--out", str(out), "--checkpoint-every", "4", "--no-progress"]
    cli_runs.kill_after_checkpoint(cli(args), out, step=8)
    assert not (out / "model").exists()

    # Resumed without the private namespace (as where the OS has none): same results, one warning.
    process = cli_runs.start("tff_experiments.asynchronous", args, env={"KERAS_OPTIM_NAMESPACE": "off"})
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert stderr.startswith("warning: no private namespace here (KERAS_OPTIM_NAMESPACE=off)")
    assert stderr.count("\n") == 1, stderr[-3000:]
    assert read_csv(out / "events.csv") == read_csv(reference / "events.csv")
    assert read_csv(out / "updates.csv") == read_csv(reference / "updates.csv")
    assert read_csv(out / "metrics.csv") == read_csv(reference / "metrics.csv")
    cli_runs.assert_same_exported_weights(out, reference)


def test_resume_with_other_settings_is_refused(uninterrupted, capfd):
    reference, _, _ = uninterrupted
    with pytest.raises(SystemExit) as exit_info:
        run_cli(fedfix.main, TINY[:-2] + ["--eval-every", "0.25", "--out", str(reference)])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and "other settings" in err and "\n" not in err


@pytest.mark.parametrize("argv,message", [
    (["--algorithm", "fedfix", "--delta-t", "0"], "--delta-t must be a finite number > 0"),
    (["--algorithm", "fedfix", "--delta-t", "-0.5"], "--delta-t must be a finite number > 0"),
    (["--algorithm", "fedfix"], "needs --delta-t"),
    (["--algorithm", "fedbuff", "--buffer-size", "30", "--clients", "20"], "larger than the 20 clients training at once"),
    (["--algorithm", "fedbuff", "--buffer-size", "8", "--clients", "20", "--concurrency", "5"],
     "larger than the 5 clients training at once"),
    (["--algorithm", "async", "--clients", "20", "--concurrency", "21"], "--concurrency must be a finite number >= 1 and <= 20"),
    (["--algorithm", "async", "--alpha", "-1"], "--alpha must be"),
    (["--algorithm", "async", "--scenario", "F-120"], "--scenario"),
    (["--algorithm", "async", "--clients", "5000", "--horizon", "3"], "5000 clients need at least one example"),
    (["--algorithm", "async", "--dataset", "shakespeare"], "fetch_data.sh"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("KERAS_OPTIM_DATA", str(tmp_path / "no-data"))  # Shakespeare is missing
    with pytest.raises(SystemExit) as exit_info:
        run_cli(fedfix.main, argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and message in err, err
    assert "\n" not in err and "Traceback" not in err


def test_unknown_algorithm_exits_with_one_line(tmp_path):
    process = cli(["--algorithm", "fedsgd", "--out", str(tmp_path)], module="tff_experiments.fedfix")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "fedsgd" in lines[0], stderr


def test_help_explains_every_flag():
    parser = fedfix.build_parser()
    text = parser.format_help()
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, f"{action.option_strings} has no help"


@pytest.mark.parametrize("dataset,shape,classes", [("emnist", (28, 28, 1), 10), ("cifar100", (32, 32, 3), 100)])
def test_real_datasets_on_generated_data(dataset, shape, classes, monkeypatch):
    """The EMNIST / CIFAR-100 path of the command line (TFF's loaders need internet: here they
    return small generated ClientData of the same element structure)."""
    from tff_experiments.data import real
    from tff_experiments.data.in_memory import array_client_data

    rng = np.random.default_rng(0)

    def fake(num_clients):
        return array_client_data({f"writer_{i}": {"x": rng.random((6,) + shape, dtype=np.float32),
                                                  "y": rng.integers(0, classes, 6).astype(np.int32)}
                                  for i in range(num_clients)})

    loader = {"emnist": "emnist_client_data", "cifar100": "cifar100_client_data"}[dataset]
    monkeypatch.setattr(real, loader, lambda *a, **k: (fake(12), fake(3)))
    settings = fedfix.settings_from(["--algorithm", "async", "--dataset", dataset, "--clients", "5", "--out", "unused"])
    client_data, ids, (x_test, y_test) = experiment.DATASET_LOADERS[dataset](settings)
    builder = experiment.keras_builder(settings.dataset, settings.model)
    assert len(ids) == len(set(ids)) == 5 and set(ids) <= set(client_data.client_ids)
    assert x_test.shape == (18,) + shape and y_test.shape == (18,)
    assert builder(seed=0)(x_test[:2]).shape == (2, classes)
    settings.clients = 13
    with pytest.raises(fedfix.UsageError, match="only 12 clients"):
        experiment.DATASET_LOADERS[dataset](settings)


def test_a_population_with_concurrency(tmp_path):
    """--concurrency C: at most C of the --clients work at once, new ones drawn as others finish;
    the run's updates.csv is the schedule's (the rule itself: tests/tff/test_async_population.py)."""
    from tff_experiments.asynchronous import ClientTimes, build_schedule, client_importance

    clients, concurrency = 50, 5
    args = ["--algorithm", "fedbuff-keep-training", "--buffer-size", "2", "--dataset", "synthetic",
            "--clients", str(clients), "--concurrency", str(concurrency), "--horizon", "3", "--local-steps", "1",
            "--batch-size", "8", "--client-optimizer", "sgd", "--seed", "3", "--no-progress", "--out", str(tmp_path)]
    process = cli(args)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    rows = read_csv(tmp_path / "updates.csv")[1:]
    schedule = build_schedule("fedbuff-keep-training", ClientTimes.from_scenario(clients, "F-80"), 3.0,
                              client_importance("uniform", [1] * clients), buffer_size=2,
                              concurrency=concurrency, seed=3)
    expected = [(n, c.client, c.sent_version) for n, s in enumerate(schedule.steps, start=1) for c in s.contributions]
    assert [(int(r[0]), int(r[2]), int(r[3])) for r in rows] == expected
    assert len({client for _, client, _ in expected}) > concurrency  # clients were drawn as others finished
