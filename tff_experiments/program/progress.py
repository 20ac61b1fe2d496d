"""A progress bar over virtual time, on stderr.

Shown when stderr is a terminal, or when forced (``force=True`` or ``KERAS_OPTIM_PROGRESS=1``);
``KERAS_OPTIM_PROGRESS=0`` or ``force=False`` hides it. Piped output stays clean.
"""
import os
import sys

from tqdm.auto import tqdm


def progress_enabled(force=None, file=None):
    """Whether to show a bar: ``force`` if given, else ``$KERAS_OPTIM_PROGRESS``, else a TTY test.

    Args:
      force: ``True``/``False`` decides; ``None`` leaves it to the environment and the terminal.
      file: the stream the bar writes to (default: standard error).
    """
    if force is not None:
        return bool(force)
    env = os.environ.get("KERAS_OPTIM_PROGRESS")
    if env in ("0", "1"):
        return env == "1"
    file = sys.stderr if file is None else file
    return bool(getattr(file, "isatty", lambda: False)())


class VirtualTimeProgress:
    """``tqdm`` with ``total=horizon`` advanced to the current virtual time.

    Usage::

        with VirtualTimeProgress(horizon=200.0, initial=clock) as bar:
            ...
            bar.advance_to(clock, step=n, acc=0.91)   # updates by the delta since last time

    Args:
      horizon: the virtual time at the end of the run (> 0).
      initial: where a resumed run starts; times beyond the horizon are clamped.
      desc: the bar's label.
      force: ``True``/``False`` shows or hides the bar; ``None``: shown on a terminal
        (``progress_enabled``).
      file: the stream the bar writes to (default: standard error).
    """

    def __init__(self, horizon, initial=0.0, desc="virtual time", force=None, file=None):
        if not horizon > 0:
            raise ValueError(f"the horizon must be > 0, got {horizon}")
        self.horizon = float(horizon)
        self._now = min(float(initial), self.horizon)
        file = sys.stderr if file is None else file
        self._bar = tqdm(
            total=self.horizon,
            initial=self._now,
            desc=desc,
            file=file,
            disable=not progress_enabled(force, file),
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} [{elapsed}<{remaining}{postfix}]",
        )

    @property
    def now(self):
        return self._now

    def advance_to(self, time, **postfix):
        """Moves the bar to virtual time ``time`` (never backwards); ``postfix`` is shown after it."""
        target = min(float(time), self.horizon)
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        if target > self._now:
            self._bar.update(target - self._now)
            self._now = target
        elif postfix:
            self._bar.refresh()

    def close(self):
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
