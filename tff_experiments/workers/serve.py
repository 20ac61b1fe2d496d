r"""A TFF executor service reachable only through mutual TLS: one worker of ``--workers``.

    python -m tff_experiments.workers --port 8000 \
        --tls-ca ca.pem --tls-cert worker.pem --tls-key worker.key

TFF's ``worker_binary`` serves plain gRPC on every interface, without authentication, and runs
any TensorFlow graph it is sent; it has no option for TLS nor for the interface. So this command
binds the TLS port here, then runs ``worker_binary`` in a private user, network and PID namespace
(``tff_experiments.runtime.run_in_namespace``, where its port exists on the namespace's own
loopback only) together with a small TLS front (``service.serve_tls_front``) that owns
the port bound outside: a client reaches ``worker_binary`` only after a mutual TLS handshake,
with a certificate signed by ``--tls-ca``. The front is Python's ``ssl`` and ``asyncio`` (no
stunnel or socat needed). The run's driver dials it with the same flags
(``python -m tff_experiments.asynchronous ... --workers host:8000 --tls-ca ... --tls-cert ...
--tls-key ...``; ``python -m tff_experiments.robust`` takes the same flags). It prints ``worker
ready on HOST:PORT (mutual TLS)`` once it serves, one line per refused client, and runs until Ctrl-C or SIGTERM; the namespace ends ``worker_binary`` with it.
"""
import os
import socket
import sys

from tff_experiments.workers.tls import MutualTls
from tff_experiments.command_line.errors import CliArgumentParser, UsageError

MODULE = "tff_experiments.workers"
LISTENER_FD_ENV = "KERAS_OPTIM_WORKER_FD"  # the TLS port, bound outside, handed to the namespace
INNER_PORT = 8000  # worker_binary's port on the namespace's loopback (nothing else is there)


def build_parser():
    """The command line's ``argparse`` parser."""
    parser = CliArgumentParser(prog=f"python -m {MODULE}", description=(
        "A TFF executor service (worker_binary) reachable only through mutual TLS, for --workers of "
        "python -m tff_experiments.asynchronous and python -m tff_experiments.robust."))
    parser.add_argument("--port", type=int, required=True, help="the TCP port of the TLS front")
    parser.add_argument("--host", default="",
                        help="the address the TLS front listens on (default: every interface)")
    parser.add_argument("--tls-ca", required=True, help="the CA (PEM) that signed the clients' certificates and ours")
    parser.add_argument("--tls-cert", required=True, help="this worker's certificate (PEM); it must name the host "
                                                          "(DNS or IP subject alternative name) as the driver dials it")
    parser.add_argument("--tls-key", required=True, help="this worker's private key (PEM)")
    return parser


def _listener(host, port):
    """The TLS front's listening socket, bound here (outside the namespace)."""
    if not 0 < port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    family = socket.AF_INET6 if ":" in host or not host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "::", port))
        sock.listen(128)
    except OSError as error:
        raise UsageError(f"--port {port}: cannot listen there ({error.strerror or error})") from None
    sock.set_inheritable(True)
    return sock


def main(argv=None):
    """The command line: checks the flags, binds the port, serves in a private namespace."""
    from tff_experiments import runtime

    args = build_parser().parse_args(argv)
    try:
        tls = MutualTls.from_flags(args.tls_ca, args.tls_cert, args.tls_key)
    except ValueError as error:
        raise UsageError(str(error)) from None
    inherited = os.environ.pop(LISTENER_FD_ENV, None)
    if inherited is not None and runtime.inside_namespace():
        runtime.install_reaper()  # as PID 1 of the namespace it ignores SIGTERM without a handler
        return _serve(socket.socket(fileno=int(inherited)), tls, args)
    unavailable = runtime.namespace_unavailable(private_network=True)
    if unavailable is not None:
        raise UsageError(f"worker_binary cannot be isolated here ({unavailable}): it would serve plain gRPC "
                         "on every interface, so this command does not start it")
    runtime.install_reaper()
    listener = _listener(args.host, args.port)
    os.environ[LISTENER_FD_ENV] = str(listener.fileno())
    argv = sys.argv[1:] if argv is None else list(argv)
    return runtime.run_in_namespace([sys.executable, "-m", MODULE, *argv], private_network=True,
                                    pass_fds=[listener.fileno()])


def _serve(listener, tls, args):
    from tff_experiments import runtime
    from tff_experiments.workers.service import serve_tls_front, start_worker_binary, wait_for_port

    runtime.prepare_namespace()  # loopback up; SIGHUP ends the run
    service = start_worker_binary(INNER_PORT)
    try:
        wait_for_port(INNER_PORT, service)
        print(f"worker ready on {args.host or '*'}:{args.port} (mutual TLS)", flush=True)
        serve_tls_front(listener, tls, INNER_PORT, service)
    finally:
        service.kill()
        service.wait()
    return 0
