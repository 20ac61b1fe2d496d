"""Set-up for the TFF tests: they run in .venv-tff only.

Where ``tensorflow_federated`` is not installed (the Keras 3 environment), every test file of
this folder is left out of the collection, so importing them cannot fail there.
"""
import importlib.util

if importlib.util.find_spec("tensorflow_federated") is None:
    collect_ignore_glob = ["test_*.py", "*_test.py"]
else:
    # The test session is a program that starts TFF runtimes: it stops their worker_binary at
    # exit (it would otherwise outlive pytest and hold its stdout open), as the command lines do.
    from tff_experiments.runtime import install_reaper

    install_reaper()
