"""Federated-learning experiments on TensorFlow Federated 0.87 (run them in ``.venv-tff``).

Importing this package, or any of its modules, changes nothing in the process: no signal handler,
exit hook, exception hook, environment variable or logging set-up. The command lines
(``python -m tff_experiments.asynchronous``, ``python -m tff_experiments.robust``) set up their
own process: they stop the TFF ``worker_binary`` processes they started when they exit, SIGTERM
included (``tff_experiments.runtime``), and keep TensorFlow's C++ logs quiet. A program of your
own that starts TFF runtimes calls ``tff_experiments.runtime.install_reaper()`` itself if it
wants the same at its exit, or ``reap_worker_binaries()`` whenever it likes.
"""
from tff_experiments.runtime import install_reaper, reap_worker_binaries

__all__ = ["install_reaper", "reap_worker_binaries"]
