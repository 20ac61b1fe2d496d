"""One-line errors for the command lines.

``run_cli(main)`` runs a command line's ``main(argv)`` and turns the errors a user can fix
(``UsageError``, any ``ValueError``, any ``OSError``: a missing file, a full disk, no
permission) into one line ``error: <message>`` on stderr and exit status 2, without a traceback. Set ``KERAS_OPTIM_TRACEBACK=1`` to see the
traceback anyway (for debugging). ``CliArgumentParser`` makes argparse's own errors (unknown
flag, bad choice) go the same way.
"""
import argparse
import os
import sys

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130


class UsageError(ValueError):
    """Bad command-line input: unknown algorithm, Delta t <= 0, f >= n/2, ..."""


class CliArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose errors raise ``UsageError`` (one line under ``run_cli``)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def run_cli(main, argv=None, **options):
    """Calls ``main(argv, **options)`` and exits with its return value (``None`` is 0).

    ``UsageError``, ``ValueError`` and ``OSError`` become ``error: <message>`` on one line of
    stderr and exit status 2; Ctrl-C becomes ``error: interrupted`` and status 130.
    """
    try:
        code = main(argv, **options)
    except (ValueError, OSError) as error:  # UsageError is a ValueError
        if os.environ.get("KERAS_OPTIM_TRACEBACK"):
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_EXIT_CODE) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    raise SystemExit(0 if code is None else code)
