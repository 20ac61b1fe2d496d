"""The command lines' ``--workers`` and mutual-TLS flags, checked once for both tracks.

``add_worker_arguments(group)`` adds ``--workers``, ``--tls-ca``, ``--tls-cert`` and
``--tls-key``; ``checked_worker_flags`` turns their values into the addresses and the
``MutualTls`` (one-line ``UsageError`` naming the flag); ``check_workers`` refuses, before a run
writes anything, a worker that does not answer; ``run_on_workers`` runs a run's body on the
workers and records in its ``run.json`` what each one served. Only ``run_on_workers`` imports
TFF, so the command lines check their flags within seconds.
"""
import contextlib
import json

from tff_experiments.command_line.errors import UsageError
from tff_experiments.workers.tls import MutualTls, WorkerUnusable, check_worker

# Settings of how a run is run, not of its result: a resume may change them.
WORKER_FLAGS = ("workers", "tls_ca", "tls_cert", "tls_key")


def add_worker_arguments(group):
    """Adds the worker flags to ``group`` (an ``argparse`` argument group)."""
    group.add_argument("--workers", default=None,
                       help="comma-separated host:port of TFF executor services (worker_binary) to run the "
                            "clients on; default: the local TFF runtime")
    group.add_argument("--tls-ca", default=None,
                       help="with --workers: mutual TLS; the CA (PEM) that signed the workers' certificates "
                            "and ours (workers: python -m tff_experiments.workers)")
    group.add_argument("--tls-cert", default=None, help="with --tls-ca: our certificate (PEM), signed by the CA")
    group.add_argument("--tls-key", default=None, help="with --tls-ca: our private key (PEM)")


def checked_worker_flags(workers, tls_ca=None, tls_cert=None, tls_key=None):
    """``(addresses, tls)`` of the flags' values: a tuple of ``"host:port"`` (``None`` without
    ``--workers``) and the ``MutualTls`` (``None`` for plain channels). Raises a one-line
    ``UsageError`` for a malformed address, a missing or unreadable TLS file, or TLS without
    workers.

    Args:
      workers: ``--workers``: ``"host:port,host:port"``, a sequence of addresses, or ``None``.
      tls_ca: ``--tls-ca``.
      tls_cert: ``--tls-cert``.
      tls_key: ``--tls-key``.
    """
    if isinstance(workers, str):
        workers = [w.strip() for w in workers.split(",") if w.strip()]
    if workers is not None:
        workers = tuple(workers)
        if not workers or any(not _is_address(w) for w in workers):
            raise UsageError("--workers takes host:port[,host:port...]")
    try:
        tls = MutualTls.from_flags(tls_ca, tls_cert, tls_key)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if tls is not None and not workers:
        raise UsageError("--tls-ca, --tls-cert and --tls-key secure the channels to --workers; give --workers")
    return workers, tls


def network_reason(addresses, tls):
    """Why a run on ``addresses`` needs the real network (``launch``'s ``network_needed_for``),
    or ``None`` without workers."""
    if not addresses:
        return None
    if tls is None:
        return "remote workers (without mutual TLS they serve anyone who reaches their ports)"
    return "remote workers"


def _is_address(text):
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def check_workers(addresses, tls=None, timeout=5.0):
    """Raises ``UsageError`` (one line naming the address and why) unless a TFF executor service
    answers at every address within ``timeout`` s, through mutual TLS if ``tls``.

    Args:
      addresses: the ``--workers`` addresses.
      tls: the settings' ``MutualTls``, or ``None``.
      timeout: the seconds to wait for each worker.
    """
    for address in addresses:
        try:
            check_worker(address, tls, timeout)
        except WorkerUnusable as error:
            raise UsageError(f"--workers: {error}") from None


@contextlib.contextmanager
def run_on_workers(addresses, tls, run_json, description):
    """Runs the ``with`` block's TFF computations on the workers at ``addresses`` (none: the
    local runtime, and the block gets ``None``); yields their usage
    (``remote.remote_execution``'s) and adds it, under ``workers``, to ``description`` written to
    ``run_json`` when the block ends, however it ends: the calls and client values each worker
    served in this invocation (a resumed run counts from its checkpoint).

    Args:
      addresses: the workers' ``"host:port"``, or ``None``.
      tls: their ``MutualTls``, or ``None``.
      run_json: the run's ``run.json`` path.
      description: the dictionary written there (JSON values only).
    """
    if not addresses:
        yield None
        return
    from tff_experiments.workers.remote import remote_execution

    with remote_execution(addresses, tls=tls) as usage:
        try:
            yield usage
        finally:
            run_json.write_text(json.dumps(dict(description, workers=usage), indent=1, allow_nan=False))
