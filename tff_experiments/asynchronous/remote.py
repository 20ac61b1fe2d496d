"""Running the processes on TFF executor services (``worker_binary``), on this or other machines.

TFF 0.87's multi-worker runtime is the *mergeable computation* context: the computation is
compiled into the form ``up_to_merge`` / ``merge`` / ``after_merge``; each worker runs
``up_to_merge`` (here: the local work of its share of the participating clients and their
weighted sum), the partial sums are merged, and one worker finishes the server update. Every
worker is a TFF C++ executor service reached over gRPC::

    with remote_execution(["host1:8000", "host2:8000"]):
        state = driver.run()            # same schedule, same result as a local run

On one machine, ``local_worker_services(n)`` starts n ``worker_binary`` processes on free
localhost ports and stops them on exit (the test of this module does exactly that).
"""
import contextlib
import os
import subprocess
import time

import grpc
import portpicker
import tensorflow_federated as tff

_GRPC_OPTIONS = [
    ("grpc.max_message_length", 2 * 1000 * 1000 * 1000),
    ("grpc.max_receive_message_length", 2 * 1000 * 1000 * 1000),
    ("grpc.max_send_message_length", 2 * 1000 * 1000 * 1000),
]


def worker_binary_path():
    return os.path.join(os.path.dirname(tff.__file__), "data", "worker_binary")


def _worker_context(address, ready_timeout, calls):
    channel = grpc.insecure_channel(address, _GRPC_OPTIONS)
    stub = tff.framework.RemoteExecutorGrpcStub(channel)
    deadline = time.monotonic() + ready_timeout
    while not stub.is_ready:
        if time.monotonic() > deadline:
            raise ConnectionError(f"no TFF executor service answers at {address}")
        time.sleep(0.1)

    def executor_stack(cardinalities):
        calls[address] = calls.get(address, 0) + 1
        if cardinalities.get(tff.CLIENTS) is None:  # server-only parts (after_merge)
            cardinalities[tff.CLIENTS] = 0
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return tff.framework.AsyncExecutionContext(
        executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack),
        compiler_fn=tff.backends.native.desugar_and_transform_to_native,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
    )


@contextlib.contextmanager
def remote_execution(addresses, ready_timeout=60.0):
    """Installs, for the ``with`` block, a TFF context that splits the clients of every
    computation across the executor services at ``addresses`` ("host:port").

    Yields a dict ``{address: number of executors created there}`` (to see who worked).
    """
    if not addresses:
        raise ValueError("remote execution needs at least one worker address")
    calls = {}
    contexts = [_worker_context(a, ready_timeout, calls) for a in addresses]
    context = tff.backends.native.create_mergeable_comp_execution_context(contexts)
    with tff.framework.get_context_stack().install(context):
        yield calls


@contextlib.contextmanager
def local_worker_services(num_workers):
    """Starts ``num_workers`` TFF executor services on free localhost ports; yields their
    addresses; stops them (SIGKILL after a polite SIGTERM) on exit."""
    processes, addresses = [], []
    try:
        for _ in range(num_workers):
            port = portpicker.pick_unused_port()
            processes.append(subprocess.Popen(
                [worker_binary_path(), f"--port={port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            addresses.append(f"localhost:{port}")
        yield addresses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
