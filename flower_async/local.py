"""``python -m flower_async local``: the app on this machine, as it runs on real hosts.

It starts a SuperLink and N SuperNodes on 127.0.0.1 with TLS and SuperNode authentication
(a CA, the SuperLink's certificate and the nodes' keys made for the run), registers the
nodes' public keys, submits the app with ``flwr run``, shows the server's steps as they come,
and reads the run's status from ``flwr ls`` (``flwr run --stream`` exits 0 even when the
ServerApp crashed). Every process it started is stopped, with the processes they started, when
the run ends, fails, or on Ctrl-C; the exit status is 0 only for a completed run.

The run's folder (``--out``) holds ``server/`` (the ServerApp's output: checkpoint, CSVs,
TensorBoard, model), ``credentials/``, ``flwr_home/`` (Flower's configuration for this run only)
and ``logs/`` (the SuperLink's, each SuperNode's and the run's). The daemons install nothing at
run time (``--disable-runtime-dependency-installation``): they use this Python environment,
whose ``bin`` goes first on their ``PATH`` (they start ``flower-superexec`` by name).
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from flower_async.certificates import make_run_credentials
from flower_async.settings import ALGORITHMS, DATASETS, MODELS, Settings

APP_DIR = pathlib.Path(__file__).resolve().parent / "app"
CONNECTION = "local"


def parse_args(argv=None):
    """The command line's arguments.

    Args:
      argv: the arguments (``None``: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m flower_async", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="a SuperLink and N SuperNodes on 127.0.0.1, TLS and node auth")
    local.add_argument("--algorithm", choices=ALGORITHMS, default="fedbuff")
    local.add_argument("--nodes", type=int, default=3, help="SuperNodes (one partition each)")
    local.add_argument("--aggregations", type=int, default=10, help="server steps")
    local.add_argument("--model", choices=MODELS, default="logistic")
    local.add_argument("--dataset", choices=DATASETS, default="digits")
    local.add_argument("--sleep", type=float, nargs="+", default=[0.0], metavar="SECONDS",
                       help="each node's extra seconds per work (node k gets the k-th, cycling): "
                            "heterogeneous nodes")
    local.add_argument("--max-consecutive-failures", type=int, default=None, metavar="K",
                       help="drop a node whose works fail K times in a row (run-config "
                            "max-consecutive-failures, default 3)")
    local.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any run-config key (flower_async/app/pyproject.toml), VALUE in TOML, "
                            "e.g. --set buffer-size=3 --set \"policy='identical'\"")
    local.add_argument("--out", type=pathlib.Path, default=None,
                       help="the run's folder (default: flower_async_runs/ALGORITHM-TIME)")
    local.add_argument("--timeout", type=float, default=None, help="stop the run after this many seconds")
    return parser.parse_args(argv)


def run_config(args, server_out):
    """``{key: TOML value}`` of the run configuration, checked by ``Settings``.

    Args:
      args: the parsed arguments.
      server_out: the ServerApp's output folder.
    """
    values = {"algorithm": f"'{args.algorithm}'", "aggregations": str(args.aggregations),
              "min-nodes": str(args.nodes), "model": f"'{args.model}'", "dataset": f"'{args.dataset}'",
              "out": json.dumps(str(server_out))}
    if args.max_consecutive_failures is not None:
        values["max-consecutive-failures"] = str(args.max_consecutive_failures)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
        values[key.strip()] = value.strip()
    try:
        import tomllib
    except ImportError:  # Python < 3.11: tomli, a Flower dependency
        import tomli as tomllib

    parsed = tomllib.loads("\n".join(f"{k} = {v}" for k, v in values.items()))
    Settings.from_run_config(parsed)  # a wrong setting fails here, before anything starts
    return values


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The daemons this command started, each in a session of its own, so that stopping one
    stops what it started (``flower-superexec``, ``flwr-serverapp``, ``flwr-clientapp``)."""

    def __init__(self):
        self.started = []  # (name, Popen, log file)

    def start(self, name, command, log_path, env):
        """Starts ``command`` with its output in ``log_path``.

        Args:
          name: for messages.
          command: the argument list.
          log_path: its log file.
          env: its environment.
        """
        log = open(log_path, "ab")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started.append((name, process, log))
        return process

    def check_alive(self):
        """Raises if a daemon has exited."""
        for name, process, _ in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}")

    def stop(self, grace=10.0):
        """Stops every process started and all their descendants (``flower-superexec`` starts
        a session of its own, and the apps in it): SIGTERM, then SIGKILL after ``grace`` seconds.

        Args:
          grace: seconds to wait for them to end.
        """
        leaders = [process.pid for _, process, _ in self.started]
        family = descendants(leaders)
        groups = {_group(pid) for pid in family} - {None, os.getpgrp()}
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        end = time.monotonic() + grace
        for _, process, _ in self.started:
            try:
                process.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        family |= descendants(leaders)
        while time.monotonic() < end and any(_exists(pid) for pid in family):
            time.sleep(0.2)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        for pid in family:
            if _exists(pid):
                _signal_pid(pid, signal.SIGKILL)
        for _, process, log in self.started:
            process.wait()
            log.close()
        self.started = []


def descendants(pids):
    """The ids of ``pids`` and of all the processes below them, from ``/proc``.

    Args:
      pids: process ids.
    """
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _exists(pid):
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _group(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def flwr(args, env, check=True, timeout=120):
    """Runs the ``flwr`` command line; returns its completed process.

    Args:
      args: its arguments.
      env: the environment (``FLWR_HOME``).
      check: raise on a non-zero exit.
      timeout: seconds.
    """
    done = subprocess.run(["flwr", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"flwr {' '.join(args)} failed: {(done.stdout + done.stderr).strip()[-800:]}")
    return done


def _json(text):
    return json.loads(text[text.index("{"):])


def register(public_keys, env, processes, timeout=90.0):
    """Registers the SuperNodes' public keys (at once), retrying while the SuperLink starts.

    Args:
      public_keys: the keys' paths.
      env: the environment.
      processes: the daemons (checked alive while waiting).
      timeout: seconds.
    """
    end, waiting = time.monotonic() + timeout, list(public_keys)
    while waiting:
        calls = [(key, subprocess.Popen(["flwr", "supernode", "register", str(key), CONNECTION, "--format", "json"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                 for key in waiting]
        failed = []
        for key, call in calls:
            output = call.communicate(timeout=120)[0]
            try:
                answer = _json(output)
            except ValueError:
                answer = {"success": False, "error-message": output}
            if not answer.get("success"):
                failed.append((key, answer.get("error-message")))
        waiting = [key for key, _ in failed]
        if waiting:
            processes.check_alive()
            if time.monotonic() > end:
                raise RuntimeError(f"could not register {failed[0][0].name}: {failed[0][1]}")
            time.sleep(2.0)


def run_status(run_id, env):
    """``(status, details)`` of a run from ``flwr ls --format json``.

    Args:
      run_id: the run's id.
      env: the environment.
    """
    done = flwr(["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"], env, check=False)
    try:
        (run,) = [r for r in _json(done.stdout)["runs"] if str(r["run-id"]) == str(run_id)]
    except (ValueError, KeyError):
        return "unknown", (done.stdout + done.stderr).strip()[-500:]
    return run["status"], run.get("status-details", "")


def run_local(args):
    """Starts the federation, runs the app, stops everything; returns the exit status.

    Args:
      args: the parsed ``local`` arguments.
    """
    if args.nodes < 1:
        raise SystemExit("--nodes must be at least 1")
    out = (args.out or pathlib.Path("flower_async_runs") / f"{args.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}")
    out = out.resolve()
    server_out, logs = out / "server", out / "logs"
    config = run_config(args, server_out)
    logs.mkdir(parents=True, exist_ok=True)
    home = out / "flwr_home"
    home.mkdir(exist_ok=True)
    credentials = make_run_credentials(out / "credentials", num_nodes=args.nodes)
    (out / "run-config.toml").write_text("".join(f"{k} = {v}\n" for k, v in config.items()))
    bin_dir = str(pathlib.Path(sys.executable).parent)
    env = dict(os.environ, FLWR_HOME=str(home), PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\naddress = "127.0.0.1:{port}"\n'
        f'root-certificates = "{credentials["ca"]}"\n')
    processes = Processes()
    started = time.monotonic()
    try:
        print(f"[local] run folder {out}", flush=True)
        processes.start("SuperLink", [
            "flower-superlink", "--ssl-ca-certfile", str(credentials["ca"]), "--ssl-certfile", str(credentials["cert"]),
            "--ssl-keyfile", str(credentials["key"]), "--enable-supernode-auth",
            "--disable-runtime-dependency-installation", "--host", "127.0.0.1", "--port", str(port),
            "--database", str(out / "superlink.db")], logs / "superlink.log", env)
        register([credentials[f"node-{k}.pub"] for k in range(args.nodes)], env, processes)
        sleeps = [args.sleep[k % len(args.sleep)] for k in range(args.nodes)]
        for k in range(args.nodes):
            processes.start(f"SuperNode {k}", [
                "flower-supernode", "--root-certificates", str(credentials["ca"]), "--superlink", f"127.0.0.1:{port}",
                "--auth-supernode-private-key", str(credentials[f"node-{k}"]),
                "--node-config", f"partition-id={k} num-partitions={args.nodes} sleep={sleeps[k]}",
                "--port", str(free_port())], logs / f"supernode-{k}.log", env)
        print(f"[local] SuperLink on 127.0.0.1:{port} (TLS), {args.nodes} authenticated SuperNodes "
              f"(sleep {sleeps} s), {time.monotonic() - started:.0f} s", flush=True)
        submitted = flwr(["run", str(APP_DIR), CONNECTION, "--run-config", str(out / "run-config.toml"),
                          "--format", "json"], env)
        run_id = _json(submitted.stdout)["run-id"]
        print(f"[local] run {run_id}: {args.algorithm}, {args.aggregations} aggregations", flush=True)
        status = _follow(run_id, env, processes, logs / "run.log", args.timeout, started)
        if status[0] != "finished:completed":
            print(f"[local] run {run_id} {status[0]}: {status[1]} (logs: {logs})", file=sys.stderr)
            return 1
        print(f"[local] run {run_id} completed in {time.monotonic() - started:.0f} s; output in {server_out}")
        return 0
    except KeyboardInterrupt:
        print("[local] interrupted: stopping the SuperLink and SuperNodes", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as err:
        print(f"[local] failed: {err} (logs: {logs})", file=sys.stderr)
        return 1
    finally:
        processes.stop()


def _follow(run_id, env, processes, log_path, timeout, started):
    """Streams the run's log into ``log_path``, prints the server's step lines, and returns the
    run's final ``(status, details)``."""
    import threading

    with open(log_path, "w") as log:
        stream = subprocess.Popen(["flwr", "log", str(run_id), CONNECTION, "--stream"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)

        def copy():
            for line in stream.stdout:
                log.write(line)
                log.flush()
                if line.startswith(("step ", "resuming", "flower_async", "warning: ")):
                    print(f"  {line.rstrip()}", flush=True)

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        try:
            while True:
                time.sleep(2.0)
                status = run_status(run_id, env)
                if status[0].startswith("finished"):
                    return status
                processes.check_alive()
                if timeout is not None and time.monotonic() - started > timeout:
                    raise TimeoutError(f"the run took more than {timeout:g} s")
        finally:
            _signal_group(stream.pid, signal.SIGTERM)
            stream.wait()
            reader.join(5.0)


def main(argv=None):
    """The command line; returns the exit status.

    Args:
      argv: the arguments (``None``: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    # SIGTERM as Ctrl-C: the finally clause stops the daemons
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    return run_local(args)
