"""Both command lines under the faults a user meets: bad ``--out``, two runs on one folder,
numbers that are not finite, huge horizons, unreachable workers, NaN results."""
import json
import math
import os
import subprocess

import pytest

tff = pytest.importorskip("tensorflow_federated")

from tests.tff import cli_runs  # noqa: E402
from tff_experiments.asynchronous import cli as asynchronous_cli  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402
from tff_experiments.robust import cli as robust_cli  # noqa: E402

ASYNC = ["--algorithm", "async", "--model", "logistic", "--clients", "3", "--horizon", "2", "--local-steps", "1",
         "--batch-size", "8", "--eval-every", "1", "--no-progress"]
ROBUST = ["--machines", "5", "--byzantine", "1", "--batch-size", "4", "--steps", "2", "--eval-every", "1",
          "--no-progress"]
COMMANDS = {"asynchronous": (asynchronous_cli.main, ASYNC), "robust": (robust_cli.main, ROBUST)}


def one_line_error(main, argv, capfd):
    """Runs the command line in this process; returns its one error line (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    err = capfd.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_empty_out_is_refused_and_the_current_folder_untouched(command, tmp_path, capfd, monkeypatch):
    main, argv = COMMANDS[command]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "mine").write_text("keep")
    assert "--out" in one_line_error(main, argv + ["--out", ""], capfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tensorboard"]
    assert (tmp_path / "tensorboard" / "mine").read_text() == "keep"


def unwritable_folder(tmp_path):
    if os.geteuid() == 0:  # root writes through permissions: /sys refuses everyone new entries
        return "/sys/keras-optim-test-out"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "run")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", ["a file", "under a file", "read-only"])
def test_out_that_cannot_be_a_folder_is_one_line(command, case, tmp_path, capfd):
    main, argv = COMMANDS[command]
    (tmp_path / "file").write_text("x")
    out = {"a file": str(tmp_path / "file"), "under a file": str(tmp_path / "file" / "run"),
           "read-only": unwritable_folder(tmp_path)}[case]
    err = one_line_error(main, argv + ["--out", out], capfd)
    assert "--out" in err and out in err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("command,flags,named", [
    ("asynchronous", ["--client-lr", "inf"], "--client-lr"),
    ("asynchronous", ["--server-lr", "nan"], "--server-lr"),
    ("asynchronous", ["--alpha", "inf"], "--alpha"),
    ("asynchronous", ["--seed", "-1"], "--seed"),
    ("robust", ["--l2", "nan"], "--l2"),
    ("robust", ["--l2", "inf"], "--l2"),
    ("robust", ["--lr-decay", "nan"], "--lr-decay"),
    ("robust", ["--clip-threshold", "nan"], "--clip-threshold"),
    ("robust", ["--attack-factor", "inf"], "--attack-factor"),
    ("robust", ["--seed", "-1"], "--seed"),
])
def test_numbers_that_are_not_finite_or_negative_are_refused_by_name(command, flags, named, tmp_path, capfd):
    main, argv = COMMANDS[command]
    err = one_line_error(main, argv + flags + ["--out", str(tmp_path / "out")], capfd)
    assert err.startswith(f"error: {named} must be"), err
    assert not (tmp_path / "out").exists()


def test_a_huge_horizon_is_refused_at_once(tmp_path):
    process = cli_runs.start("tff_experiments.asynchronous",
                             ASYNC + ["--horizon", "1e9", "--out", str(tmp_path / "out")])
    try:
        _, stderr = process.communicate(timeout=120)  # building the whole schedule never ends
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("--horizon 1e9 neither ran nor failed")
    assert process.returncode == 2 and stderr.strip().startswith("error: --horizon"), stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_unreachable_workers_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    process = cli_runs.start("tff_experiments.asynchronous", ASYNC + ["--workers", "127.0.0.1:9", "--out", str(out)])
    try:
        _, stderr = process.communicate(timeout=40)  # TFF alone waits 60 s, then writes
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the run waited for a worker that is not there")
    lines = stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1 and "127.0.0.1:9" in lines[0], stderr[-2000:]
    assert not out.exists()


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capfd):
    out = tmp_path / "out"
    first = cli_runs.start("tff_experiments.robust", ROBUST + ["--steps", "30", "--out", str(out)])
    try:
        cli_runs.wait_for_checkpoint(first, out, step=0)
        err = one_line_error(robust_cli.main, ROBUST + ["--steps", "30", "--out", str(out)], capfd)
        assert "in use" in err and str(out) in err
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 30


def test_the_summary_is_json_even_when_the_run_diverges(tmp_path):
    # A learning rate near float32's largest number: the test loss overflows to NaN by step 3.
    process = cli_runs.start("tff_experiments.robust", ROBUST + ["--steps", "3", "--momentum", "0", "--lr", "1e38",
                                                                 "--out", str(tmp_path)])
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]

    def no_bare_nan(constant):
        raise AssertionError(f"bare {constant} in the JSON")

    printed = json.loads(stdout.strip().splitlines()[-1], parse_constant=no_bare_nan)
    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=no_bare_nan)
    assert printed["mean_test_loss"] is None  # diverged: no number to report
    assert summary["final"]["mean_test_loss"] is None
    assert all(a is None or math.isfinite(a) for a in summary["final_accuracies"])
