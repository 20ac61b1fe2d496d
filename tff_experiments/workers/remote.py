"""Running the processes on TFF executor services (``worker_binary``), on this or other machines.

TFF 0.87's multi-worker runtime is the *mergeable computation* context: the computation is
compiled into the form ``up_to_merge`` / ``merge`` / ``after_merge``; each worker runs
``up_to_merge`` (here: the local work of its share of the participating clients and their
weighted sum), the partial sums are merged, and one worker finishes the server update. Every
worker is a TFF C++ executor service reached over gRPC, through mutual TLS when given
(``tff_experiments.workers.tls``)::

    with remote_execution(["host1:8000", "host2:8000"], tls=MutualTls(ca, cert, key)) as usage:
        state = driver.run()            # same schedule; the result: docs/async_fl.md
    usage  # {"host1:8000": {"calls": ..., "groups": ...}, ...}

A worker that dies or becomes unreachable ends the run: TFF itself would retry forever. A call
that fails with ``UNAVAILABLE`` (the connection is gone) or ``FAILED_PRECONDITION`` (the service
restarted and lost the call's state) is retried, as TFF does, while the service is back within
``reconnect_seconds``; after that the call raises ``WorkerLost``, one line naming the address.
A silent network partition (no connection reset) is noticed only when TCP gives up.

On one machine, ``local_worker_services(n)`` starts n ``worker_binary`` processes on free
localhost ports and stops them on exit (the tests do exactly that).
"""
import contextlib
import subprocess
import time

import grpc
import portpicker
import tensorflow_federated as tff
from tensorflow_federated.python.core.impl.executors import cardinalities_utils

from tff_experiments.workers.tls import WorkerUnusable, open_channel
from tff_experiments.workers.service import start_worker_binary

# How long a call waits for its lost worker to come back before the run ends.
RECONNECT_SECONDS = 20.0
# The gRPC codes that TFF retries: the connection is gone, or the service lost the call's state.
_LOST_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)


class WorkerLost(ConnectionError):
    """A TFF executor service stopped answering during a run and did not come back in time."""


class _BoundedStub(tff.framework.RemoteExecutorGrpcStub):
    """TFF's stub of one worker, whose lost connection ends the run after ``reconnect_seconds``.

    TFF retries a sub-round whenever a call fails with a retryable code, forever. Here a failed
    call waits for the channel to be ready again, at most until ``reconnect_seconds`` after the
    first failure of the streak (a call that succeeds ends the streak): if the service is back,
    the error goes on to TFF, which retries the sub-round; if not, ``WorkerLost``, which TFF
    does not retry. Disposing of remote values does not wait: a lost worker lost them too.
    """

    def __init__(self, channel, address, reconnect_seconds):
        super().__init__(channel)
        self._address, self._reconnect_seconds = address, reconnect_seconds
        self._lost_since = None

    def _bounded(self, method, request, wait=True):
        try:
            response = method(request)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            if code not in _LOST_CODES:
                raise
            if not wait:
                return None
            now = time.monotonic()
            self._lost_since = self._lost_since or now
            left = self._lost_since + self._reconnect_seconds - now
            if left > 0:
                with contextlib.suppress(grpc.FutureTimeoutError):
                    grpc.channel_ready_future(self._channel).result(timeout=left)
                    raise  # back: TFF retries the sub-round
            raise WorkerLost(f"the TFF executor service at {self._address} stopped answering ({code.name}) and "
                             f"was not back within {self._reconnect_seconds:g} s; the run stopped at its last "
                             "checkpoint: start the service again and rerun the same command to resume") from None
        self._lost_since = None
        return response

    def get_executor(self, request):
        return self._bounded(super().get_executor, request)

    def create_value(self, request):
        return self._bounded(super().create_value, request)

    def create_struct(self, request):
        return self._bounded(super().create_struct, request)

    def create_call(self, request):
        return self._bounded(super().create_call, request)

    def create_selection(self, request):
        return self._bounded(super().create_selection, request)

    def compute(self, request):
        return self._bounded(super().compute, request)

    def dispose(self, request):
        return self._bounded(super().dispose, request, wait=False)

    def dispose_executor(self, request):
        return self._bounded(super().dispose_executor, request, wait=False)


class _CountingContext(tff.framework.AsyncExecutionContext):
    """TFF's execution context on one worker that counts, in ``usage``, the calls it served and
    the ``CLIENTS`` values (groups of local works) they carried."""

    def __init__(self, usage, **kwargs):
        self._usage, self._clients = usage, 0
        super().__init__(cardinality_inference_fn=self._infer, **kwargs)

    def _infer(self, arg, type_spec):
        cardinalities = cardinalities_utils.infer_cardinalities(arg, type_spec)
        self._clients = cardinalities.get(tff.CLIENTS, 0)
        return cardinalities

    async def invoke(self, comp, arg):
        self._clients = 0
        result = await super().invoke(comp, arg)
        self._usage["calls"] += 1
        self._usage["groups"] += self._clients
        return result


def _worker_context(address, tls, ready_timeout, reconnect_seconds, usage):
    channel = open_channel(address, tls)
    try:
        grpc.channel_ready_future(channel).result(timeout=ready_timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise WorkerUnusable(f"no TFF executor service answers at {address} (waited {ready_timeout:g} s"
                             f"{' through TLS' if tls else ''})") from None
    stub = _BoundedStub(channel, address, reconnect_seconds)

    def executor_stack(cardinalities):
        if cardinalities.get(tff.CLIENTS) is None:  # server-only parts (after_merge)
            cardinalities[tff.CLIENTS] = 0
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return _CountingContext(
        usage,
        executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack),
        compiler_fn=tff.backends.native.desugar_and_transform_to_native,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
    )


@contextlib.contextmanager
def remote_execution(addresses, tls=None, ready_timeout=60.0, reconnect_seconds=RECONNECT_SECONDS):
    """Installs, for the ``with`` block, a TFF context that splits the clients of every
    computation across the executor services at ``addresses``.

    A step's ``CLIENTS`` values (groups of local works) are split into at most one contiguous
    share per worker, in the order of ``addresses``: a step of fewer groups than workers leaves
    the last workers idle. Yields ``{address: {"calls": n, "groups": g}}``, filled during the
    block: the TFF calls each worker served and the groups they carried (0 groups: the worker
    ran none of the clients' work).

    Args:
      addresses: ``"host:port"`` of each TFF executor service.
      tls: the driver's ``MutualTls`` (``tff_experiments.workers.tls``), or ``None`` for
        plain gRPC channels.
      ready_timeout: the seconds to wait for every service to answer before the block.
      reconnect_seconds: how long a call waits for a lost service to come back before it
        raises ``WorkerLost`` (one line naming the address).
    """
    context, usage = remote_context(addresses, tls, ready_timeout, reconnect_seconds)
    with tff.framework.get_context_stack().install(context):
        yield usage


def remote_context(addresses, tls=None, ready_timeout=60.0, reconnect_seconds=RECONNECT_SECONDS):
    """The TFF context of ``remote_execution`` and its usage record, not installed (to install
    it when needed: ``tff.framework.get_context_stack().install(context)``).

    Args:
      addresses: as ``remote_execution``'s.
      tls: as ``remote_execution``'s.
      ready_timeout: as ``remote_execution``'s.
      reconnect_seconds: as ``remote_execution``'s.
    """
    if not addresses:
        raise ValueError("remote execution needs at least one worker address")
    usage = {address: {"calls": 0, "groups": 0} for address in addresses}
    contexts = [_worker_context(a, tls, ready_timeout, reconnect_seconds, usage[a]) for a in addresses]
    return tff.backends.native.create_mergeable_comp_execution_context(contexts), usage


def stop(processes, timeout=5.0):
    """Stops ``processes`` (``subprocess.Popen``): SIGTERM, then SIGKILL after ``timeout`` s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def local_worker_services(num_workers):
    """Starts ``num_workers`` TFF executor services on free localhost ports; yields their
    addresses; stops them (SIGKILL after a polite SIGTERM) on exit."""
    processes, addresses = [], []
    try:
        for _ in range(num_workers):
            port = portpicker.pick_unused_port()
            processes.append(start_worker_binary(port))
            addresses.append(f"localhost:{port}")
        yield addresses
    finally:
        stop(processes)
