"""Command-line plumbing: one-line errors, progress, metrics/event logs, checkpoints with exact
resume (a toy driver killed mid-run), model export."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import models  # noqa: E402
from tff_experiments.command_line import errors  # noqa: E402
from tff_experiments.program import run_dir  # noqa: E402
from tff_experiments.program.checkpoints import Checkpointer  # noqa: E402
from tff_experiments.program.export import export_keras_and_savedmodel  # noqa: E402
from tff_experiments.program.metrics import EventLog, MetricsLogger, read_metrics  # noqa: E402
from tff_experiments.program.progress import VirtualTimeProgress  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# errors


def exit_of(main, argv=None):
    with pytest.raises(SystemExit) as info:
        errors.run_cli(main, argv)
    return info.value.code


@pytest.mark.parametrize(
    "error, message",
    [
        (errors.UsageError("unknown algorithm 'fedfoo'"), "error: unknown algorithm 'fedfoo'"),
        (ValueError("Delta t must be > 0,\n  got -1"), "error: Delta t must be > 0, got -1"),
        (FileNotFoundError("no Shakespeare texts in data/: run it"), "error: no Shakespeare texts in data/: run it"),
    ],
)
def test_run_cli_turns_user_errors_into_one_line(error, message, capsys, monkeypatch):
    monkeypatch.delenv("KERAS_OPTIM_TRACEBACK", raising=False)

    def main(argv):
        raise error

    assert exit_of(main) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n" and captured.out == ""


def test_run_cli_exit_codes_and_other_errors(capsys, monkeypatch):
    monkeypatch.delenv("KERAS_OPTIM_TRACEBACK", raising=False)
    seen = []
    assert exit_of(lambda argv: seen.append(argv), ["--x"]) == 0 and seen == [["--x"]]
    assert exit_of(lambda argv: 3) == 3

    def interrupted(argv):
        raise KeyboardInterrupt

    assert exit_of(interrupted) == 130 and capsys.readouterr().err == "error: interrupted\n"

    def bug(argv):
        raise RuntimeError("a bug keeps its traceback")

    with pytest.raises(RuntimeError):
        errors.run_cli(bug)
    monkeypatch.setenv("KERAS_OPTIM_TRACEBACK", "1")
    with pytest.raises(ValueError):
        errors.run_cli(lambda argv: (_ for _ in ()).throw(ValueError("debugging")))


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "/out/metrics.csv"),
                                   OSError(28, "No space left on device"), IsADirectoryError(21, "Is a directory")])
def test_run_cli_turns_os_errors_into_one_line(error, capsys, monkeypatch):
    monkeypatch.delenv("KERAS_OPTIM_TRACEBACK", raising=False)

    def main(argv):
        raise error

    assert exit_of(main) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and error.strerror in err


def test_run_cli_turns_os_errors_into_one_line_without_a_bare_traceback(capfd):
    code = "from tff_experiments.command_line.errors import run_cli\ndef main(argv): open('/proc/no/such/file')\nrun_cli(main)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 2 and done.stderr.startswith("error:") and done.stderr.count("\n") == 1, done.stderr


def test_argument_parser_errors_are_one_line(capsys):
    parser = errors.CliArgumentParser(prog="fedfix")
    parser.add_argument("--algorithm", choices=["fedavg", "fedfix"], required=True)

    assert exit_of(lambda argv: parser.parse_args(argv), ["--algorithm", "fedfoo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument --algorithm: invalid choice: 'fedfoo'")
    assert exit_of(lambda argv: parser.parse_args(argv), ["--bogus"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_follows_virtual_time_and_hides_off_terminal(monkeypatch):
    monkeypatch.delenv("KERAS_OPTIM_PROGRESS", raising=False)
    tty = FakeTTY()
    with VirtualTimeProgress(horizon=10.0, initial=1.0, file=tty) as bar:
        bar.advance_to(3.5, step=2)
        bar.advance_to(2.0)  # never backwards
        assert bar.now == 3.5
        bar.advance_to(12.0)  # clamped to the horizon
        assert bar.now == 10.0
    assert "10.00/10.00" in tty.getvalue() and "step=2" in tty.getvalue()

    piped = io.StringIO()
    with VirtualTimeProgress(horizon=10.0, file=piped) as bar:
        bar.advance_to(5.0)
    assert piped.getvalue() == ""
    monkeypatch.setenv("KERAS_OPTIM_PROGRESS", "1")
    with VirtualTimeProgress(horizon=4.0, file=piped) as bar:
        bar.advance_to(4.0)
    assert "4.00/4.00" in piped.getvalue()
    with pytest.raises(ValueError):
        VirtualTimeProgress(horizon=0.0)


# ---------------------------------------------------------------------------------------------
# metrics and event logs


def tensorboard_scalars(folder):
    """Sorted (tag, step, value) of every scalar in a TensorBoard folder."""
    found = []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.append((value.tag, event.step, float(tf.make_ndarray(value.tensor))))
    return sorted(found)


def test_metrics_logger_writes_csv_and_tensorboard_and_truncates_on_resume(tmp_path):
    with MetricsLogger(tmp_path) as metrics:
        for step in range(5):
            metrics.log(step, {"loss": np.float32(1.0 / (step + 1)), "accuracy": 0.1 * step}, time=0.5 * step)
        rows = metrics.rows()
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[2] == {"step": 2, "time": 1.0, "loss": float(np.float32(1 / 3)), "accuracy": 0.2}
    assert list(read_metrics(tmp_path / "metrics.csv")[0]) == ["step", "accuracy", "loss", "time"]  # TFF sorts names
    assert ("accuracy", 4, pytest.approx(0.4)) in tensorboard_scalars(tmp_path / "tensorboard")

    # Resume from a checkpoint at step 2: rows 3 and 4 are dropped, then logged again.
    with MetricsLogger(tmp_path, resume_step=2) as metrics:
        assert [r["step"] for r in metrics.rows()] == [0, 1, 2]
        metrics.log(3, {"loss": 9.0, "accuracy": 0.9}, time=7.0)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.csv")] == [0, 1, 2, 3]
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert sorted(step for tag, step, _ in scalars if tag == "loss") == [0, 1, 2, 3]
    assert ("loss", 3, 9.0) in scalars
    # A fresh run in the same folder starts empty.
    MetricsLogger(tmp_path).close()
    assert read_metrics(tmp_path / "metrics.csv") == []


def test_event_log_appends_lines_and_drops_a_torn_last_line_on_resume(tmp_path):
    fields = ["step", "time", "clients", "weights"]
    with EventLog(tmp_path, fields) as events:
        events.append(step=1, time=0.25, clients=[3, 7], weights=np.array([0.5, 0.5]))
        events.append({"step": 2, "time": 0.5, "clients": (1,)})
        with pytest.raises(ValueError, match="unknown event fields"):
            events.append(step=3, colour="red")
        with pytest.raises(ValueError, match="step"):
            events.append(time=1.0)
    assert events.rows() == [
        {"step": "1", "time": "0.25", "clients": "3;7", "weights": "0.5;0.5"},
        {"step": "2", "time": "0.5", "clients": "1", "weights": ""},
    ]
    with open(tmp_path / "events.csv", "a") as f:
        f.write("3,0.75,4;5")  # killed mid-line
    with EventLog(tmp_path, fields, resume_step=2) as events:
        assert [r["step"] for r in events.rows()] == ["1", "2"]
        events.append(step=3, time=0.75, clients=[4], weights=[1.0])
    assert [r["step"] for r in events.rows()] == ["1", "2", "3"]
    with EventLog(tmp_path, fields, resume_step=1) as events:
        assert [r["step"] for r in events.rows()] == ["1"]
    with pytest.raises(ValueError, match="columns"):
        EventLog(tmp_path, ["step", "other"], resume_step=1)


# ---------------------------------------------------------------------------------------------
# checkpoints


def assert_same_leaves(got, want):
    got_leaves, want_leaves = tf.nest.flatten(got), tf.nest.flatten(want)
    assert len(got_leaves) == len(want_leaves)
    tf.nest.assert_same_structure(got, want)
    for a, b in zip(got_leaves, want_leaves):
        if isinstance(b, np.random.Generator):
            assert repr(a.bit_generator.state) == repr(b.bit_generator.state)
        elif isinstance(b, (np.ndarray, np.generic, tf.Tensor)):
            b = np.asarray(b)
            assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes())
        else:
            assert type(a) is type(b) and a == b


def test_checkpointer_round_trips_every_kind_of_leaf_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    state = {
        "weights": tff.learning.models.ModelWeights(
            trainable=[np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5, np.nan, -0.0])],
            non_trainable=[],
        ),
        "unsigned": [np.array([2**64 - 1, 3], np.uint64), np.array([2**32 - 1], np.uint32)],
        "clock": 0.1 + 0.2,
        "step": 7,
        "huge": 2**80,
        "flag": True,
        "name": "h\u00e9llo",
        "nothing": None,
        "rng": rng,
        "mt": np.random.Generator(np.random.MT19937(3)),
        "scalars": (np.float32(2.5), np.int8(-3), float("-inf")),
        "text": np.array(["a", "b\u00e9"]),
        "tensor": tf.constant([1, 2]),
        "empty": [np.zeros((0, 3)), []],
        "half": np.array([1.1], np.float16),
    }
    checkpointer = Checkpointer(tmp_path, every=2, keep=2, config={"alpha": 0.1})
    assert checkpointer.load_latest(state) == (None, 0)
    assert checkpointer.maybe_save(state, 3) is False and checkpointer.versions() == []
    assert checkpointer.maybe_save(state, 4) is True
    assert checkpointer.save(state, 4) is False  # already there
    loaded, step = Checkpointer(tmp_path, every=2, config={"alpha": 0.1}).load_latest(state)
    assert step == 4
    want = dict(state, tensor=np.array([1, 2], np.int32))
    assert_same_leaves(loaded, want)
    assert loaded["rng"].random() == state["rng"].random()  # the stream goes on identically
    assert isinstance(loaded["weights"], tff.learning.models.ModelWeights)

    for step in (6, 8, 10):
        checkpointer.save(state, step)
    assert checkpointer.versions() == [8, 10]


def test_checkpointer_refuses_another_runs_checkpoint(tmp_path):
    state = {"w": np.zeros((2, 3)), "clock": 1.0}
    Checkpointer(tmp_path, every=1, config={"alpha": 0.1, "clients": 20}).save(state, 1)
    with pytest.raises(ValueError, match=r"other settings \(alpha\)"):
        Checkpointer(tmp_path, every=1, config={"alpha": 0.5, "clients": 20}).load_latest(state)
    same = Checkpointer(tmp_path, every=1, config={"alpha": 0.1, "clients": 20})
    with pytest.raises(ValueError, match="another layout"):
        same.load_latest({"w": np.zeros((3, 3)), "clock": 1.0})
    with pytest.raises(ValueError, match="another layout"):
        same.load_latest({"w": np.zeros((2, 3)), "clock": 1.0, "extra": 2})
    with pytest.raises(ValueError, match="interval"):
        Checkpointer(tmp_path, every=0)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capfd):
    states = {step: {"w": np.full((2, 3), float(step)), "clock": 0.5 * step} for step in (4, 8, 12)}
    saver = Checkpointer(tmp_path, every=4, keep=3, config={"steps": 12})
    for step, state in states.items():
        saver.save(state, step)
    index = tmp_path / "checkpoints" / "step_12" / "variables" / "variables.index"
    index.write_bytes(b"not a checkpoint")
    loader = Checkpointer(tmp_path, every=4, keep=3, config={"steps": 12})
    state, step = loader.load_latest(states[4])
    assert step == 8
    np.testing.assert_array_equal(state["w"], states[8]["w"])
    warning = capfd.readouterr().err.strip()
    assert "\n" not in warning and "step_12" in warning and "resuming from step_8" in warning
    assert "same command" not in warning  # it would fail the same way again
    assert loader.versions() == [4, 8]  # step 12 is set aside, so the run saves it again
    assert loader.save(states[12], 12) and loader.load_latest(states[4])[1] == 12


def test_no_readable_checkpoint_is_one_line(tmp_path):
    saver = Checkpointer(tmp_path, every=1, config=None)
    saver.save({"w": np.zeros(2)}, 1)
    (tmp_path / "checkpoints" / "step_1" / "variables" / "variables.index").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="no older checkpoint") as info:
        Checkpointer(tmp_path, every=1).load_latest({"w": np.zeros(2)})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Exact resume: a toy driver (SGD with momentum on least squares, a random clock, a small TF
# computation) that saves its whole state, killed mid-run, then restarted.

TOY_FIELDS = ["step", "time", "clients", "weights"]


class ToyCrash(RuntimeError):
    pass


def toy_template():
    return {
        "w": np.zeros(5),
        "momentum": np.zeros(5, np.float32),
        "clock": 0.0,
        "tf_state": np.zeros(3, np.float32),
        "rng": np.random.default_rng(2024),
    }


def run_toy(out_dir, steps=24, every=4, crash_at=None, pause=0.0, announce=False):
    data_rng = np.random.default_rng(7)
    x = data_rng.normal(size=(64, 5))
    y = x @ np.arange(1.0, 6.0) + data_rng.normal(size=64)
    checkpointer = Checkpointer(out_dir, every=every, config={"steps": steps, "every": every})
    loaded, start = checkpointer.load_latest(toy_template())
    state = loaded if loaded is not None else toy_template()
    resume = start if loaded is not None else None
    metrics = MetricsLogger(out_dir, resume_step=resume)
    events = EventLog(out_dir, TOY_FIELDS, resume_step=resume)
    loss = lambda w: float(np.mean((x @ w - y) ** 2))  # noqa: E731
    if loaded is None:
        metrics.log(0, {"loss": loss(state["w"])}, time=0.0)
    try:
        with VirtualTimeProgress(horizon=2.0 * steps, initial=state["clock"], force=False) as bar:
            for step in range(start + 1, steps + 1):
                rng = state["rng"]
                batch = rng.choice(64, size=8, replace=False)
                grad = 2 * x[batch].T @ (x[batch] @ state["w"] - y[batch]) / 8
                state["momentum"] = np.float32(0.9) * state["momentum"] + grad.astype(np.float32)
                state["w"] = state["w"] - 0.01 * state["momentum"].astype(np.float64)
                state["clock"] += float(rng.exponential(1.0))
                state["tf_state"] = (tf.constant(state["tf_state"]) * 0.5 + tf.reduce_sum(tf.cast(grad, tf.float32))).numpy()
                metrics.log(step, {"loss": loss(state["w"]), "tf": state["tf_state"][0]}, time=state["clock"])
                events.append(step=step, time=state["clock"], clients=rng.choice(10, 3, replace=False), weights=rng.random(3))
                if step == crash_at:
                    raise ToyCrash(step)
                if checkpointer.maybe_save(state, step) and announce:
                    print(f"saved {step}", flush=True)
                bar.advance_to(state["clock"])
                time.sleep(pause)
        checkpointer.save(state, steps)
    finally:
        metrics.close()
        events.close()
    return state


def run_outputs(out_dir):
    return (
        read_metrics(Path(out_dir) / "metrics.csv"),
        (Path(out_dir) / "events.csv").read_bytes(),
        tensorboard_scalars(Path(out_dir) / "tensorboard"),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    state = run_toy(out)
    return state, run_outputs(out)


def assert_same_run(state, out_dir, uninterrupted):
    want_state, (want_metrics, want_events, want_scalars) = uninterrupted
    assert_same_leaves(state, want_state)
    metrics, events, scalars = run_outputs(out_dir)
    assert [r["step"] for r in metrics] == list(range(25))
    assert metrics == want_metrics  # every step once, same values and times
    assert events == want_events
    assert scalars == want_scalars


def test_a_run_that_raises_resumes_exactly(tmp_path, uninterrupted):
    with pytest.raises(ToyCrash):
        run_toy(tmp_path, crash_at=10)  # after logging step 10, before its checkpoint
    assert Checkpointer(tmp_path, every=4).versions()[-1] == 8
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.csv")][-1] == 10
    state = run_toy(tmp_path)  # the same command again
    assert_same_run(state, tmp_path, uninterrupted)


def test_a_run_killed_with_sigkill_resumes_exactly(tmp_path, uninterrupted):
    code = "import sys; from tests.tff.test_program import run_toy; run_toy(sys.argv[1], pause=0.05, announce=True)"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    try:
        for line in proc.stdout:
            if line.strip() == "saved 8":
                time.sleep(0.12)  # somewhere in steps 9-11: mid-step, mid-log or mid-save
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert Checkpointer(tmp_path, every=4).versions()[-1] < 24  # it really was cut short
    state = run_toy(tmp_path)
    assert_same_run(state, tmp_path, uninterrupted)


# ---------------------------------------------------------------------------------------------
# export


def test_export_serves_the_same_outputs_as_the_keras_model(tmp_path):
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype(w.dtype) * 0.3 for w in models.initial_weights(models.digits_cnn)]
    paths = export_keras_and_savedmodel(models.digits_cnn, weights, tmp_path / "model")
    assert paths == {"keras": tmp_path / "model" / "model.keras", "saved_model": tmp_path / "model" / "saved_model"}
    x = rng.random((6, 8, 8, 1)).astype(np.float32)
    reference = models.assign_weights(models.digits_cnn(seed=0), weights)(x).numpy()

    keras_model = tf.keras.models.load_model(paths["keras"])
    np.testing.assert_allclose(keras_model(x).numpy(), reference, rtol=1e-6, atol=1e-6)

    served = tf.saved_model.load(str(paths["saved_model"])).signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(served["logits"].numpy(), reference, rtol=1e-6, atol=1e-6)
    softmax = np.exp(reference - reference.max(axis=1, keepdims=True))
    np.testing.assert_allclose(served["probabilities"].numpy(), softmax / softmax.sum(axis=1, keepdims=True), rtol=1e-5)

    # Exporting again replaces the old export.
    export_keras_and_savedmodel(models.digits_cnn, models.initial_weights(models.digits_cnn), tmp_path / "model")
    again = tf.saved_model.load(str(paths["saved_model"])).signatures["serving_default"](x=tf.constant(x))
    assert not np.allclose(again["logits"].numpy(), reference)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.keras", "saved_model"]


def test_run_paths_layout(tmp_path):
    paths = run_dir.run_paths(tmp_path)
    assert {k: p.name for k, p in paths.items()} == {
        "metrics": "metrics.csv", "events": "events.csv", "updates": "updates.csv", "tensorboard": "tensorboard",
        "checkpoints": "checkpoints", "model": "model",
    }


# ---------------------------------------------------------------------------------------------
# the program logic of every run (program.training.train_model)


class CountingTrack:
    """A toy track: the state is a step counter and a running sum; ``fail_at`` raises in that step."""

    num_steps = 7

    def __init__(self, fail_at=None):
        self.fail_at = fail_at

    def initial_state(self):
        return {"step": np.int64(0), "total": np.float64(0.0)}

    def program_state_template(self):
        return self.initial_state()

    def to_program_state(self, state):
        return state

    def from_program_state(self, saved):
        return {"step": np.int64(saved["step"]), "total": np.float64(saved["total"])}

    def steps_done(self, state):
        return int(state["step"])

    def next(self, state):
        step = int(state["step"]) + 1
        if step == self.fail_at:
            raise RuntimeError("killed")
        return {"step": np.int64(step), "total": state["total"] + 1.0 / step}, {"loss": 1.0 / step}

    def model_release(self, state):
        return float(state["total"])

    def final_model(self, state):
        return float(state["total"])


def train_counting(track, directory, **kwargs):
    from tff_experiments.program.sync import run_sync
    from tff_experiments.program.training import train_model

    managers = {name: tff.program.MemoryReleaseManager() for name in ("train", "model", "final")}
    done = run_sync(train_model(
        track, program_state_manager=tff.program.FileProgramStateManager(str(directory)),
        train_metrics_manager=managers["train"], model_manager=managers["model"],
        model_output_manager=managers["final"], checkpoint_every=3, **kwargs))
    return done, {name: dict(manager.values()) for name, manager in managers.items()}


def test_train_model_releases_every_step_then_resumes_after_the_saved_state(tmp_path):
    done, whole = train_counting(CountingTrack(), tmp_path / "whole")
    assert done == 7 and sorted(whole["train"]) == list(range(1, 8)) and sorted(whole["model"]) == list(range(8))
    assert whole["final"]["final_model"] == pytest.approx(sum(1.0 / k for k in range(1, 8)), rel=0, abs=0)
    # a run that dies in step 5 has saved step 3: the rerun releases steps 4.. again, none before
    with pytest.raises(RuntimeError, match="killed"):
        train_counting(CountingTrack(fail_at=5), tmp_path / "killed")
    done, resumed = train_counting(CountingTrack(), tmp_path / "killed")
    assert done == 7 and sorted(resumed["train"]) == list(range(4, 8)) and sorted(resumed["model"]) == list(range(4, 8))
    assert resumed["final"] == whole["final"]
    for step in range(4, 8):
        assert resumed["model"][step] == whole["model"][step]
    # a scheduled stop saves where it stops, releases no final model
    done, stopped = train_counting(CountingTrack(), tmp_path / "stopped", stop_after=5)
    assert done == 5 and stopped["final"] == {}
    assert train_counting(CountingTrack(), tmp_path / "stopped")[1]["train"].keys() == {6, 7}
