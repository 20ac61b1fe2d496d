"""Importing the library changes nothing in the process.

A user who imports ``keras_optim`` or a module of ``tff_experiments`` into their own program keeps
their signal handlers, exception hooks, exit callbacks, environment, logging and warnings set-up,
and import machinery. What a run needs process-wide (the worker reaper, quiet TensorFlow) is the
command lines' business (``python -m tff_experiments.asynchronous``, the examples' ``__main__``).

The check runs in a fresh interpreter: it first imports the third-party packages that the
project's modules import (TensorFlow, TFF, Keras and the rest change such state themselves, and a
user who imports them gets that anyway), takes a snapshot, imports every module of both packages
that this environment can import (those needing an absent package, such as TFF in ``.venv``, are
left out; ``__main__`` modules are left out since they are the command lines), and compares.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r'''
import ast, atexit, faulthandler, importlib, importlib.util, json, logging, os, pkgutil, signal, sys
import threading, warnings

PACKAGES = ("keras_optim", "tff_experiments", "flower_async")


def project_modules():
    """``{name: path}`` of every module of the packages, found on disk (importing a package, as
    ``pkgutil.walk_packages`` or ``find_spec`` of a submodule do, would run it before the
    snapshot); ``__main__`` modules are the command lines and are left out."""
    found = {}

    def walk(name, folder):
        found[name] = os.path.join(folder, "__init__.py")
        for info in pkgutil.iter_modules([folder]):
            if info.name == "__main__":
                continue
            full = f"{name}.{info.name}"
            if info.ispkg:
                walk(full, os.path.join(folder, info.name))
            else:
                found[full] = os.path.join(folder, info.name + ".py")

    for package in PACKAGES:
        walk(package, os.path.dirname(importlib.util.find_spec(package).origin))
    return found


def third_party_imports(paths):
    """The modules outside the project and the standard library that the project's files import."""
    wanted = set()
    for path in paths:
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top not in PACKAGES and top not in sys.stdlib_module_names:
                    wanted.add(target)
    return sorted(wanted)


def loggers():
    found = {"<root>": logging.getLogger()}
    found.update({k: v for k, v in logging.root.manager.loggerDict.items() if isinstance(v, logging.Logger)})
    return {k: (v.level, list(v.handlers), v.propagate, v.disabled) for k, v in found.items()}


def snapshot():
    return {
        "signal handlers": {s.name: signal.getsignal(s) for s in signal.valid_signals()
                            if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)},
        "sys.unraisablehook": sys.unraisablehook,
        "sys.excepthook": sys.excepthook,
        "threading.excepthook": threading.excepthook,
        "atexit callbacks": atexit._ncallbacks(),
        "environment variables": dict(os.environ),
        "loggers": loggers(),
        "logging disabled level": logging.root.manager.disable,
        "warnings filters": list(warnings.filters),
        "sys.meta_path": list(sys.meta_path),
        "faulthandler": faulthandler.is_enabled(),
    }


def changes(before, after):
    found = {}
    for key, old in before.items():
        new = after[key]
        if isinstance(old, dict):
            diff = {k: [repr(old.get(k)), repr(new.get(k))] for k in set(old) | set(new)
                    if k in old and old.get(k) != new.get(k)}
            if key == "environment variables":  # a variable set anew is a change too
                diff.update({k: [None, new[k]] for k in set(new) - set(old)})
            if diff:
                found[key] = diff
        elif old != new:
            found[key] = [repr(old), repr(new)]
    return found


modules = project_modules()
for name in third_party_imports(modules.values()):
    try:
        importlib.import_module(name)
    except Exception:  # absent here, or not a module (an attribute): nothing to import first
        pass
before = snapshot()
assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES], "imported before the snapshot"
imported, missing = [], {}
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        if not top or top in PACKAGES:
            raise
        missing[name] = error.name
    else:
        imported.append(name)
after = snapshot()
print(json.dumps({"imported": imported, "missing": missing, "changes": changes(before, after)}))
'''


def test_importing_the_packages_changes_no_process_state():
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "keras_optim.optimizers" in report["imported"], report
    assert "tff_experiments.runtime" in report["imported"], report
    assert "tff_experiments.fedfix" in report["imported"] or "tff_experiments.fedfix" in report["missing"], report
    assert not report["changes"], json.dumps(report["changes"], indent=1)[-4000:]
