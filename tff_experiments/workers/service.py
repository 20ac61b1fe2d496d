"""TFF's executor service program (``worker_binary``) and a mutual-TLS front for it.

``worker_binary --port=N`` serves plain gRPC on every interface and has no option for TLS nor
for the interface. ``serve_tls_front(listener, tls, port)`` accepts connections on ``listener``
(a listening socket), completes a mutual TLS handshake with each (``MutualTls.server_context``:
a client certificate signed by the CA is required), and relays the decrypted bytes to
``127.0.0.1:port``. ``python -m tff_experiments.workers`` runs both where only the
front can be reached. The front relays bytes, not gRPC messages, so it adds no copy of a
message in memory and knows nothing of TFF's protocol.

Nothing here imports TensorFlow or TFF.
"""
import asyncio
import contextlib
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import time

_CHUNK = 1 << 18  # bytes per relayed read


def worker_binary_path():
    """The path of TFF's executor service program, ``worker_binary``, in this environment."""
    spec = importlib.util.find_spec("tensorflow_federated")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("tensorflow_federated is not installed in this environment (.venv-tff has it)")
    return os.path.join(spec.submodule_search_locations[0], "data", "worker_binary")


def start_worker_binary(port, **popen):
    """Starts ``worker_binary --port=port`` (a ``subprocess.Popen``; its output discarded).

    Args:
      port: the TCP port it listens on, on every interface.
      **popen: more ``subprocess.Popen`` arguments.
    """
    return subprocess.Popen([worker_binary_path(), f"--port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)


def wait_for_port(port, process, timeout=60.0):
    """Waits until something accepts connections on ``127.0.0.1:port``; raises ``OSError`` if
    ``process`` ends first or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if process.poll() is not None:
            raise OSError(f"worker_binary ended at start (exit status {process.returncode})")
        if time.monotonic() > deadline:
            raise OSError(f"worker_binary does not listen on port {port} after {timeout:g} s")
        time.sleep(0.1)


async def _pump(reader, writer):
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _peer(writer):
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "a client"


async def _relay(reader, writer, context, port, log):
    try:
        await writer.start_tls(context, ssl_handshake_timeout=10)
    except (ssl.SSLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", None)
        reason = str(reason).replace("_", " ").lower() if reason else f"{type(error).__name__} {error}".strip()
        log(f"refused {_peer(writer)}: {reason}")
        with contextlib.suppress(Exception):
            writer.close()
        return
    try:
        service_reader, service_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        log(f"the executor service on port {port} does not answer ({error.strerror or error})")
        writer.close()
        return
    await asyncio.gather(_pump(reader, service_writer), _pump(service_reader, writer))


async def _serve(listener, tls, port, service, log):
    context = tls.server_context()
    server = await asyncio.start_server(lambda r, w: _relay(r, w, context, port, log), sock=listener,
                                        limit=_CHUNK)
    async with server:
        while service.poll() is None:
            await asyncio.sleep(0.5)
    raise OSError(f"worker_binary ended (exit status {service.returncode})")


def serve_tls_front(listener, tls, port, service, log=None):
    """Relays mutual-TLS connections on ``listener`` to ``127.0.0.1:port`` until ``service``
    ends (then raises ``OSError``) or the process is signalled.

    Args:
      listener: a bound, listening ``socket.socket``.
      tls: the worker's ``MutualTls`` (its certificate and key, the CA its clients' certificates
        must be signed by).
      port: the port of the plain executor service on loopback.
      service: its ``subprocess.Popen``.
      log: called with one line per refused client (default: stderr).
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    listener.setblocking(False)
    asyncio.run(_serve(listener, tls, port, service, log))
