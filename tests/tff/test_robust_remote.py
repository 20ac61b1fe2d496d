"""The robust command line on TFF executor services (``--workers``): the honest machines' steps
split across two workers reachable only through mutual TLS give the models of the local runtime
bit for bit, and ``run.json`` says what each worker served; a lost worker ends the run in one
line and the same command resumes, once it is back, to the local models; bad worker flags are
refused in one line before anything is written."""
import csv
import json

import numpy as np
import portpicker
import pytest

tff = pytest.importorskip("tensorflow_federated")
pytest.importorskip("cryptography")

from tests.tff import cli_runs  # noqa: E402
from tests.tff.test_async_tls import certificates, tls_workers  # noqa: E402,F401  (module fixtures)
from tff_experiments.command_line.errors import UsageError  # noqa: E402
from tff_experiments.robust.cli import settings_from  # noqa: E402
from tff_experiments.workers.remote import stop  # noqa: E402
from tff_experiments.workers.service import start_worker_binary  # noqa: E402

MODULE = "tff_experiments.robust"
# 6 honest machines and an ALIE attacker, so that each worker's share holds 3 machines; two
# evaluations of every honest model.
FLAGS = ["--machines", "7", "--byzantine", "1", "--steps", "6", "--eval-every", "3", "--checkpoint-every", "3",
         "--batch-size", "8", "--no-progress"]


def run_command(args):
    process = cli_runs.start(MODULE, args)
    stdout, stderr = process.communicate(timeout=400)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def metrics_rows(out):
    with open(out / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_honest_machines_on_two_tls_workers_give_the_local_models(certificates, tls_workers, tmp_path):  # noqa: F811
    addresses, _ = tls_workers
    local, remote = tmp_path / "local", tmp_path / "remote"
    run_command(FLAGS + ["--out", str(local)])
    run_command(FLAGS + ["--out", str(remote), "--workers", ",".join(addresses), "--tls-ca", certificates["ca"],
                         "--tls-cert", certificates["driver_cert"], "--tls-key", certificates["driver_key"]])

    served = json.loads((remote / "run.json").read_text())["workers"]
    assert set(served) == set(addresses) and all(s["groups"] > 0 for s in served.values()), served
    assert "workers" not in json.loads((local / "run.json").read_text())
    want, got = metrics_rows(local), metrics_rows(remote)
    assert [r["step"] for r in got] == [r["step"] for r in want] == ["0", "3", "6"]
    for g, w in zip(got, want):
        for column in w:
            if column == "train_loss" and w[column]:  # a mean over the machines, summed per worker first
                np.testing.assert_allclose(float(g[column]), float(w[column]), rtol=1e-6)
            elif "seconds" not in column:
                assert g[column] == w[column], (g["step"], column)  # the models: every bit
    cli_runs.assert_same_exported_weights(remote, local)


def test_a_lost_worker_ends_the_run_in_one_line_and_the_rerun_resumes(tmp_path):
    flags = [*FLAGS, "--steps", "12"]  # the run goes on well past the checkpoint where the worker is lost
    reference = tmp_path / "local"
    run_command(flags + ["--out", str(reference)])
    ports = [portpicker.pick_unused_port() for _ in range(2)]
    workers = [start_worker_binary(port) for port in ports]
    try:
        out = tmp_path / "remote"
        args = flags + ["--workers", ",".join(f"localhost:{p}" for p in ports), "--out", str(out)]
        cli_runs.lose_a_worker_then_resume(MODULE, args, out, workers, ports, step=3)
    finally:
        stop(workers)
    cli_runs.assert_same_exported_weights(out, reference)


def test_a_worker_that_does_not_answer_is_refused_in_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    address = f"localhost:{portpicker.pick_unused_port()}"
    process = cli_runs.start(MODULE, FLAGS + ["--out", str(out), "--workers", address])
    _, stderr = process.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1 and address in lines[0], stderr[-2000:]
    assert not out.exists()


def test_bad_worker_flags_are_refused(certificates, tmp_path):  # noqa: F811
    out = ["--out", str(tmp_path / "out")]
    with pytest.raises(UsageError, match="--workers takes host:port"):
        settings_from(FLAGS + out + ["--workers", "nohost"])
    tls = ["--tls-ca", certificates["ca"], "--tls-cert", certificates["driver_cert"],
           "--tls-key", certificates["driver_key"]]
    with pytest.raises(UsageError, match="give --workers"):
        settings_from(FLAGS + out + tls)
    with pytest.raises(UsageError, match="--tls-"):
        settings_from(FLAGS + out + ["--workers", "localhost:1"] + tls[:2])
