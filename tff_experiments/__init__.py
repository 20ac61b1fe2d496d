"""Federated-learning experiments on TensorFlow Federated 0.87 (run them in ``.venv-tff``).

Importing this package installs an exit hook that stops the TFF ``worker_binary`` processes
this Python process started (see ``tff_experiments.runtime``).
"""
from tff_experiments.runtime import install_reaper, reap_worker_binaries

install_reaper()

__all__ = ["reap_worker_binaries"]
