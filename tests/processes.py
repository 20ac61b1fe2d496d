"""Python processes that a test starts together (the workers of a multi-worker or
multi-process run, a check that needs a fresh interpreter) and always stops: each runs in its
own process group, which is killed by its leader's id when the test ends, fails or times out."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    """``count`` distinct TCP ports of 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stop(process):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def run_python(script, args_per_process, env_per_process=None, timeout=300):
    """Runs ``python script *args`` once per entry of ``args_per_process`` at the same time
    (from the repository's root, with ``env_per_process[i]`` added to the environment) and
    returns their ``(returncode, stdout, stderr)``. Raises ``TimeoutError`` (naming the
    processes still running) if they have not all ended after ``timeout`` seconds; none is
    left running in any case."""
    env_per_process = env_per_process or [{}] * len(args_per_process)
    processes, files = [], []
    try:
        for args, extra in zip(args_per_process, env_per_process):
            out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
            files += [out, err]
            processes.append(subprocess.Popen(
                [sys.executable, script, *map(str, args)], cwd=REPO, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, env={**os.environ, **extra}, start_new_session=True,
            ))
        deadline = time.monotonic() + timeout
        for index, process in enumerate(processes):
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                running = [i for i, p in enumerate(processes) if p.poll() is None]
                tails = []
                for i in running:
                    files[2 * i + 1].seek(0)
                    tails.append(f"process {i}: ..." + files[2 * i + 1].read()[-1500:])
                raise TimeoutError(
                    f"{os.path.basename(script)}: processes {running} still running after "
                    f"{timeout} s\n" + "\n".join(tails)) from None
        results = []
        for i, process in enumerate(processes):
            out, err = files[2 * i], files[2 * i + 1]
            out.seek(0)
            err.seek(0)
            results.append((process.returncode, out.read(), err.read()))
        return results
    finally:
        for process in processes:
            _stop(process)
        for f in files:
            f.close()
