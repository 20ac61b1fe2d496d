"""Separate hosts, emulated: the driver and two workers each in a network namespace of their
own, joined by veth links, over mutual TLS (tests/tff/separate_hosts.py runs them). The run
completes, gives the local run's result within the documented tolerance, and nothing listens
outside the namespaces the test made."""
import json
import os
import shutil
import subprocess
import sys

import pytest

tff = pytest.importorskip("tensorflow_federated")
pytest.importorskip("cryptography")
import tensorflow as tf  # noqa: E402

from tests.tff.cli_runs import REPO  # noqa: E402
from tff_experiments.asynchronous import cli as asynchronous_cli  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402


def _namespaces_unavailable():
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)} here"
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "unshare -n true && ip link add v0 type veth peer name v1"],
                           capture_output=True, text=True)
    if probe.returncode:
        return f"unprivileged network namespaces with veth links are not allowed here ({probe.stderr.strip()[:100]})"
    return None


UNAVAILABLE = _namespaces_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"separate hosts need namespaces: {UNAVAILABLE}")

# FedFix on 6 clients, steps of up to 6 local works in groups of 2: every step of several groups
# is split across the two workers.
FLAGS = ["--algorithm", "fedfix", "--delta-t", "0.5", "--clients", "6", "--scenario", "F-50", "--horizon", "1.5",
         "--model", "logistic", "--local-steps", "2", "--batch-size", "16", "--clients-per-group", "2",
         "--eval-every", "0.5", "--no-progress"]


def test_driver_and_workers_on_separate_hosts_over_mutual_tls(tmp_path, capfd):
    folder = tmp_path / "hosts"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = subprocess.run(["unshare", "-rn", sys.executable, str(REPO / "tests" / "tff" / "separate_hosts.py"),
                             str(folder), str(os.getpid()), "--", *FLAGS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert script.returncode == 0, script.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    assert report["returncode"] == 0, report["stderr"]
    assert all(ports == [18443] for ports in report["worker_listening"]), report  # the TLS front only
    assert report["plain_service_reachable"] == [False, False], report
    assert 18443 not in report["host_listening_new"] and 8000 not in report["host_listening_new"], report
    served = json.loads((folder / "run" / "run.json").read_text())["workers"]
    assert len(served) == 2 and all(s["groups"] > 0 for s in served.values()), served

    local = tmp_path / "local"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(asynchronous_cli.main, FLAGS + ["--out", str(local)])
    assert exit_info.value.code == 0, capfd.readouterr().err[-2000:]
    want = tf.keras.models.load_model(local / "model" / "model.keras").get_weights()
    got = tf.keras.models.load_model(folder / "run" / "model" / "model.keras").get_weights()
    for g, w in zip(got, want):
        # split steps: the sum of the groups is reassociated, so float32 rounding (docs/async_fl.md)
        tf.debugging.assert_near(g, w, rtol=1e-6, atol=1e-7)
