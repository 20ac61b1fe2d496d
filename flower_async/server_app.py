"""The ServerApp: ``serve`` (the asynchronous loop) with the run's settings, then the export.

Flower starts it in the SuperLink's ``flwr-serverapp`` process for each ``flwr run``; its
output folder is the run configuration's ``out`` (an absolute path on the SuperLink's host).
Run again with the same ``out``, it resumes from the checkpoint there.
"""
import logging
import sys

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flower_async.run_log import RunLog
from flower_async.server_loop import serve
from flower_async.settings import Settings

app = ServerApp()
"""The ServerApp component (``flower_async.server_app:app`` in ``app/pyproject.toml``)."""


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Runs the scheme, then writes ``model.keras`` and ``saved_model/``.

    Args:
      grid: Flower's ``Grid``.
      context: the run's context (its ``run_config`` are the settings).
    """
    settings = Settings.from_run_config(context.run_config)
    # the loop's warnings (a node failed or was dropped) into the run's log, one line each
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("flower_async")
    logger.addHandler(handler)
    logger.propagate = False  # a handler of the root logger (absl's, TensorFlow's) would repeat them
    try:
        print(f"flower_async: {settings.algorithm} ({settings.policy} weights), {settings.aggregations} "
              f"aggregations, model {settings.model} on {settings.dataset}, output {settings.out}", flush=True)
        weights, task = serve(grid, settings, progress=lambda line: print(line, flush=True))
        if settings.export:
            RunLog(settings.out).export(task.keras_model(weights))
        print("flower_async: done", flush=True)
    finally:  # a process that runs the app again (a simulation) would print every warning twice
        logger.removeHandler(handler)
        logger.propagate = True
