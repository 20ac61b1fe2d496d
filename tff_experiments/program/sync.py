"""Running a ``tff.program`` coroutine from synchronous code."""
import asyncio
import concurrent.futures


def run_sync(coroutine):
    """Runs a ``tff.program`` coroutine to completion from synchronous code (Jupyter included).

    Not through ``asyncio.run``: its Ctrl-C handler only cancels the task, which takes effect
    at the coroutine's next ``await``, and a training loop's TFF calls block between them (an
    asynchronous run went on for 100 s after Ctrl-C). Here Ctrl-C raises ``KeyboardInterrupt``
    in the call at once, as in synchronous code.

    Args:
      coroutine: e.g. ``train_asynchronous_model(...)``.

    Returns:
      What the coroutine returns.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coroutine)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop already runs in this thread
        return pool.submit(asyncio.run, coroutine).result()
