"""Set-up for the TFF tests: they run in .venv-tff only.

Where ``tensorflow_federated`` is not installed (the Keras 3 environment), every test file of
this folder is left out of the collection, so importing them cannot fail there.
"""
import importlib.util

if importlib.util.find_spec("tensorflow_federated") is None:
    collect_ignore_glob = ["test_*.py", "*_test.py"]
else:
    # Installs the exit hook that stops TFF's worker_binary, which would otherwise outlive
    # pytest and hold its stdout open.
    import tff_experiments  # noqa: F401
