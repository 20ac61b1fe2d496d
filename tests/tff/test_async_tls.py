"""Workers reachable only through mutual TLS (``python -m tff_experiments.workers``):
a run through TLS gives the run on plain workers; a driver whose certificate the workers' CA did
not sign is refused at once, in one line; a client without a certificate gets no answer."""
import socket
import ssl
import time

import numpy as np
import portpicker
import pytest

tff = pytest.importorskip("tensorflow_federated")
pytest.importorskip("cryptography")

from tests.tff import cli_runs  # noqa: E402
from tests.tff.certificates import make_certificates  # noqa: E402
from tests.tff.test_async_remote import ASYNC_FLAGS, fedfix_driver, final_weights  # noqa: E402
from tests.tff.tls_workers import start_tls_worker, stop_tls_worker, wait_until  # noqa: E402
from tff_experiments import runtime  # noqa: E402
from tff_experiments.workers.remote import local_worker_services, remote_execution  # noqa: E402
from tff_experiments.asynchronous.cli import settings_from  # noqa: E402
from tff_experiments.workers.tls import MutualTls  # noqa: E402
from tff_experiments.command_line.errors import UsageError  # noqa: E402



@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def tls_workers(certificates, tmp_path_factory):
    unavailable = runtime.namespace_unavailable(private_network=True)
    if unavailable is not None:
        pytest.skip(f"the TLS worker needs a private namespace: {unavailable}")
    logs = tmp_path_factory.mktemp("worker_logs")
    workers, addresses = [], []
    try:
        for i in range(2):
            port = portpicker.pick_unused_port()
            workers.append(start_tls_worker(port, certificates, log=open(logs / f"{i}.err", "w")))
            addresses.append(f"localhost:{port}")
        yield addresses, [logs / f"{i}.err" for i in range(2)]
    finally:
        for worker in workers:
            stop_tls_worker(worker)


def driver_tls(certificates, who="driver"):
    return MutualTls(certificates["ca"], certificates[f"{who}_cert"], certificates[f"{who}_key"])


def test_a_run_through_tls_gives_the_run_on_plain_workers(certificates, tls_workers):
    addresses, _ = tls_workers
    driver = fedfix_driver(clients_per_group=2)  # split across both workers
    with local_worker_services(2) as plain:
        with remote_execution(plain):
            want = final_weights(driver)
    with remote_execution(addresses, tls=driver_tls(certificates)) as usage:
        got = final_weights(driver)
    assert all(served["groups"] > 0 for served in usage.values()), usage
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # the same split, the same sums: TLS changes no bit


def test_a_driver_with_a_foreign_certificate_is_refused_at_once_in_one_line(certificates, tls_workers, tmp_path):
    addresses, logs = tls_workers
    out = tmp_path / "out"
    started = time.monotonic()
    process = cli_runs.start("tff_experiments.asynchronous", ASYNC_FLAGS + [
        "--workers", ",".join(addresses), "--tls-ca", certificates["ca"], "--tls-cert", certificates["stranger_cert"],
        "--tls-key", certificates["stranger_key"], "--out", str(out)])
    _, stderr = process.communicate(timeout=60)
    lines = stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1 and addresses[0] in lines[0], stderr[-2000:]
    assert "refused our certificate" in lines[0]
    assert time.monotonic() - started < 15 and not out.exists()
    assert wait_until(lambda: "refused" in logs[0].read_text()), "the worker logged no refusal"


def test_a_client_without_a_certificate_gets_no_answer(certificates, tls_workers):
    addresses, logs = tls_workers
    host, port = addresses[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=certificates["ca"])
    context.set_alpn_protocols(["h2"])
    started = time.monotonic()
    with context.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host) as conn:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            answer = conn.recv(1)
        except (ssl.SSLError, ConnectionError):
            answer = b""
    assert answer == b"" and time.monotonic() - started < 5, "the worker answered a client without a certificate"
    assert wait_until(lambda: "peer did not return a certificate" in logs[1].read_text()), logs[1].read_text()


@pytest.mark.parametrize("flags, message", [
    (["--tls-ca", "{ca}"], "--tls-cert, --tls-key missing"),
    (["--tls-ca", "{ca}", "--tls-cert", "{driver_cert}", "--tls-key", "{tmp}/nothing.key"], "no readable file"),
    (["--tls-ca", "{ca}", "--tls-cert", "{driver_cert}", "--tls-key", "{stranger_key}"], "--tls-ca/-cert/-key"),
    (["--tls-ca", "{ca}", "--tls-cert", "{driver_cert}", "--tls-key", "{driver_key}"], "give --workers"),
])
def test_bad_tls_flags_are_one_line(flags, message, certificates, tmp_path):
    """All three or none; readable files; a key that is the certificate's; only with --workers."""
    flags = [f.format(tmp=tmp_path, **certificates) for f in flags]
    workers = [] if message == "give --workers" else ["--workers", "localhost:1"]
    with pytest.raises(UsageError) as error:
        settings_from(ASYNC_FLAGS + workers + flags + ["--out", str(tmp_path / "out")])
    assert message in str(error.value) and "\n" not in str(error.value)
