"""``python -m tff_experiments.robust`` (alias ``tff_experiments.monna``): outputs, exact resume after a kill,
export, one-line errors."""
import csv
import json

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import monna  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402
from tests.tff import cli_runs  # noqa: E402

TINY = ["--machines", "7", "--byzantine", "2", "--rule", "nna", "--attack", "alie", "--model", "logistic",
        "--batch-size", "8", "--steps", "40", "--eval-every", "5", "--lr-decay", "10", "--lr-decay-delta", "10",
        "--alpha", "1"]
WALL_CLOCK_COLUMNS = ("step_seconds",)


def cli(args, module="tff_experiments.robust"):
    return cli_runs.start(module, args)


def metrics_without_wall_clock(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    process = cli(TINY + ["--out", str(out), "--checkpoint-every", "1000", "--progress", "--export-machine", "3"])
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return out, stdout, stderr


def test_outputs(uninterrupted):
    out, stdout, stderr = uninterrupted
    assert "steps" in stderr and "40/40" in stderr.replace(".00", "")  # the progress bar
    assert not cli_runs.tensorflow_log_lines(stderr), stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 40
    rows = metrics_without_wall_clock(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(0, 41, 5))
    for column in ("mean_accuracy", "worst_accuracy", "spread", "honest_gradients_per_step", "attack_factor"):
        assert column in rows[-1]
    last = rows[-1]
    assert float(last["worst_accuracy"]) <= float(last["mean_accuracy"])
    assert float(last["honest_gradients_per_step"]) == 1.0
    assert float(rows[0]["spread"]) == 0.0  # every honest machine starts from the same model
    assert list((out / "tensorboard").rglob("events.out.tfevents*"))


def test_savedmodel_is_the_chosen_honest_machine(uninterrupted):
    from tff_experiments.data.digits import load_digits_split

    out, _, _ = uninterrupted
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exported_machine"] == 3
    _, _, x_test, y_test = load_digits_split(seed=0)
    served = tf.saved_model.load(str(out / "model" / "saved_model")).signatures["serving_default"]
    logits = served(x=tf.constant(x_test))["logits"].numpy()
    keras_model = tf.keras.models.load_model(out / "model" / "model.keras")
    np.testing.assert_allclose(logits, keras_model(x_test).numpy(), rtol=1e-5, atol=1e-5)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    assert accuracy == pytest.approx(summary["final_accuracies"][3], abs=1e-9)


def test_killed_run_resumes_exactly(uninterrupted, tmp_path):
    reference, _, _ = uninterrupted
    out = tmp_path / "run"
    args = TINY + ["--out", str(out), "--checkpoint-every", "5", "--no-progress", "--export-machine", "3"]
    cli_runs.kill_after_checkpoint(cli(args), out, step=10)
    assert not (out / "summary.json").exists()

    process = cli(args)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert metrics_without_wall_clock(out / "metrics.csv") == metrics_without_wall_clock(reference / "metrics.csv")
    cli_runs.assert_same_exported_weights(out, reference)
    summary, reference_summary = (json.loads((p / "summary.json").read_text()) for p in (out, reference))
    assert summary["final_accuracies"] == reference_summary["final_accuracies"]


def test_resume_with_other_settings_is_refused(uninterrupted, capfd):
    reference, _, _ = uninterrupted
    args = [a if a != "alie" else "foe" for a in TINY]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monna.main, args + ["--out", str(reference), "--export-machine", "3"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and "other settings" in err and "\n" not in err


@pytest.mark.parametrize("argv,message", [
    (["--machines", "10", "--byzantine", "5"], "0 <= f < n/2"),
    (["--machines", "10", "--byzantine", "7"], "0 <= f < n/2"),
    (["--byzantine", "-1"], "--byzantine must be"),
    (["--attack", "gaussian"], "invalid choice: 'gaussian'"),
    (["--attack", "none"], "need an --attack"),
    (["--byzantine", "0", "--attack", "alie"], "needs Byzantine machines"),
    (["--rule", "bulyan"], "invalid choice: 'bulyan'"),
    (["--attack", "mimic", "--mimic-target", "21"], "--mimic-target"),
    (["--attack", "sign_flipping", "--attack-factor", "2"], "--attack-factor is for alie and foe"),
    (["--momentum", "1"], "--momentum"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--alpha", "-1"], "--alpha"),
    (["--machines", "5", "--byzantine", "2", "--rule", "krum"], "krum"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capfd):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monna.main, argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and message in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_input_from_the_shell_is_one_line(tmp_path):
    process = cli(["--machines", "4", "--byzantine", "2", "--out", str(tmp_path / "x")], module="tff_experiments.monna")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("error:") and "f < n/2" in lines[-1]
