"""Two figures of the code's structure, for reviews of a layout change:

- the longest functions of ``tff_experiments`` (lines from ``def`` to the last line);
- layer crossings on one run: the most alternations between ``tff_experiments/asynchronous/``
  and ``tff_experiments/program/`` frames on one call stack during a tiny asynchronous run
  (``cli -> program -> experiment hook -> program`` is 3), with the stack that has them.

    .venv-tff/bin/python scripts/structure_report.py            # both (the run takes ~1 minute)
    .venv-tff/bin/python scripts/structure_report.py --no-run   # the functions only
"""
import argparse
import ast
import os
import pathlib
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("asynchronous", "program")


def longest_functions(most=8):
    rows = []
    for path in (ROOT / "tff_experiments").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(rows, reverse=True)[:most]


def _layer(filename):
    for layer in LAYERS:
        if f"tff_experiments/{layer}/" in filename:
            return layer
    return None


def most_crossings():
    """``(crossings, stack)`` over a tiny FedFix run of the command line, in this process."""
    os.environ["KERAS_OPTIM_NAMESPACE"] = "off"
    from tff_experiments.command_line.launch import start_command_line

    start_command_line()
    import tff_experiments.asynchronous.cli as cli

    most = [0, []]

    def profile(frame, event, arg):
        if event != "call" or _layer(frame.f_code.co_filename) is None:
            return
        layers, stack, f = [], [], frame
        while f is not None:
            layer = _layer(f.f_code.co_filename)
            if layer:
                stack.append(f"{f.f_code.co_filename.split('tff_experiments/')[1]}:{f.f_code.co_name}")
                if not layers or layers[-1] != layer:
                    layers.append(layer)
            f = f.f_back
        if len(layers) - 1 > most[0]:
            most[:] = [len(layers) - 1, stack[::-1]]

    with tempfile.TemporaryDirectory() as out:
        argv = ["--algorithm", "fedfix", "--delta-t", "0.5", "--dataset", "digits", "--clients", "4", "--horizon",
                "2", "--local-steps", "1", "--batch-size", "8", "--checkpoint-every", "2", "--no-progress",
                "--out", out]
        sys.setprofile(profile)
        threading.setprofile(profile)
        try:
            cli.main(argv)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    return most


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only the longest functions")
    args = parser.parse_args()
    print("longest functions of tff_experiments (lines):")
    for lines, name in longest_functions():
        print(f"  {lines:4d}  {name}")
    if not args.no_run:
        crossings, stack = most_crossings()
        print(f"most asynchronous/program crossings on one call stack of a tiny run: {crossings}")
        print("\n".join(f"  {frame}" for frame in stack))


if __name__ == "__main__":
    main()
