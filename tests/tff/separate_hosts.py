"""Run inside a fresh user + network namespace (``unshare -rn``), by
tests/tff/test_async_separate_hosts.py: that namespace is the driver's host; two more network
namespaces, joined to it by veth links (10.0.1.0/24 and 10.0.2.0/24), are the workers' hosts,
each running ``python -m tff_experiments.workers`` over mutual TLS. Runs the command
line's driver against both, records which sockets listen where while the workers serve, and
writes ``report.json`` into the folder given as first argument.

    unshare -rn python tests/tff/separate_hosts.py FOLDER HOST_PID -- DRIVER FLAGS...
"""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.tff.certificates import make_certificates  # noqa: E402
from tests.tff.tls_workers import start_tls_worker, stop_tls_worker  # noqa: E402

PORT = 18443  # the TLS front of each worker host
WORKER_HOSTS = ("10.0.1.2", "10.0.2.2")


def ip(*args, pid=None):
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


def listening_ports(pid):
    """The TCP ports with a listening socket in the network namespace of process ``pid``."""
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def main(folder, host_pid, driver_args):
    folder = Path(folder)
    ip("link", "set", "lo", "up")
    certificates = make_certificates(folder, hosts=WORKER_HOSTS)
    host_before = listening_ports(host_pid)
    workers, report = [], {}
    try:
        for i, address in enumerate(WORKER_HOSTS, start=1):
            # the worker's host: a network namespace of its own, reached through one veth link
            worker = start_tls_worker(PORT, certificates, prefix=["unshare", "-n"],
                                      log=open(folder / f"worker{i}.err", "w"))
            workers.append(worker)
            ip("link", "add", f"to{i}", "type", "veth", "peer", "name", "eth0", "netns", str(worker.pid))
            ip("addr", "add", f"10.0.{i}.1/24", "dev", f"to{i}")
            ip("link", "set", f"to{i}", "up")
            for args in (("addr", "add", f"{address}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                         ("link", "set", "lo", "up")):
                ip(*args, pid=worker.pid)
        addresses = ",".join(f"{h}:{PORT}" for h in WORKER_HOSTS)
        driver = subprocess.run(
            [sys.executable, "-m", "tff_experiments.asynchronous", *driver_args, "--workers", addresses,
             "--tls-ca", certificates["ca"], "--tls-cert", certificates["driver_cert"],
             "--tls-key", certificates["driver_key"], "--out", str(folder / "run")],
            capture_output=True, text=True, timeout=600)
        report.update(
            returncode=driver.returncode, stderr=driver.stderr[-3000:], addresses=addresses,
            worker_listening=[listening_ports(w.pid) for w in workers],
            host_listening_new=sorted(set(listening_ports(host_pid)) - set(host_before)),
            plain_service_reachable=[_connects(h, 8000) for h in WORKER_HOSTS])
    finally:
        for worker in workers:
            stop_tls_worker(worker)
    (folder / "report.json").write_text(json.dumps(report))


def _connects(host, port):
    import socket

    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    separator = sys.argv.index("--")
    main(sys.argv[1], int(sys.argv[2]), sys.argv[separator + 1:])
