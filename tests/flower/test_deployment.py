"""``python -m flower_async local`` on loopback, as a user runs it: a SuperLink with TLS and
SuperNode authentication, 3 SuperNodes (one slower), asynchronous FedAvg with the NumPy client
on Synthetic(1, 1), and the invariants of the run (not its arrival order): the number of
aggregations, one update each, staleness within bounds and weighted by FedBuff's staleness
rule, 3 nodes heard from, the held-out loss going down, the model exported, and no process of
the run left afterwards. A ServerApp that
crashes makes the command fail (``flwr run`` itself exits 0 then).

Needs flwr (in .venv: requirements/keras3.txt); skipped elsewhere.
"""
import csv
import math
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("flwr", reason="flwr is not installed: the Flower tests run in .venv (requirements/keras3.txt)")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_local(out, *args, timeout=400):
    command = [sys.executable, "-m", "flower_async", "local", "--out", str(out), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def processes_of(out):
    """Live processes whose environment names the run's FLWR_HOME (every daemon and app the
    command started inherits it)."""
    marker = f"FLWR_HOME={out / 'flwr_home'}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def test_async_fedavg_on_three_authenticated_nodes(tmp_path):
    out = tmp_path / "run"
    aggregations = 10
    done = run_local(out, "--algorithm", "async", "--nodes", "3", "--aggregations", str(aggregations),
                     "--model", "numpy-logistic", "--dataset", "synthetic", "--sleep", "0", "0", "2",
                     "--set", "policy='staleness'", "--set", "reply-timeout=240.0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert processes_of(out) == []
    assert "Uvicorn running on https://127.0.0.1" in (out / "logs" / "superlink.log").read_text()
    server = out / "server"
    metrics = rows(server / "metrics.csv")
    assert [int(m["step"]) for m in metrics] == list(range(aggregations))
    updates = rows(server / "updates.csv")
    assert [int(u["step"]) for u in updates] == list(range(aggregations))  # one update per step
    assert sorted({int(u["partition"]) for u in updates}) == [0, 1, 2]
    for u in updates:
        step, sent, staleness = int(u["step"]), int(u["sent_version"]), int(u["staleness"])
        assert 0 <= sent <= step and staleness == step - sent
        assert float(u["weight"]) == pytest.approx(1 / math.sqrt(1 + staleness))
    times = [float(m["time"]) for m in metrics]
    assert times == sorted(times)
    losses = [float(m["loss"]) for m in metrics]
    assert losses[-1] < losses[0]
    assert (server / "model.keras").is_file() and (server / "saved_model" / "saved_model.pb").is_file()
    assert f"step {aggregations}/{aggregations}" in done.stdout


def test_a_crashed_server_app_fails_the_command(tmp_path):
    out = tmp_path / "run"
    # the ServerApp cannot create its output folder under a file: it raises at start
    done = run_local(out, "--algorithm", "async", "--nodes", "1", "--aggregations", "2",
                     "--model", "numpy-logistic", "--set", "out='/dev/null/server'")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "finished:failed" in done.stderr
    assert processes_of(out) == []
