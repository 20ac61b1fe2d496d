"""Federated data sets as ``tff.simulation.datasets.ClientData``.

- ``digits``: scikit-learn's 8x8 digits split across clients by Dirichlet(alpha) over labels.
- ``shakespeare``: the plays, one client per speaking role (next-character prediction). Its
  corpus reader needs neither TensorFlow nor TFF (the Keras 3 examples use it too).
- ``synthetic``: Synthetic(alpha, beta) of FedProx, generated per client (NumPy);
  ``synthetic_federated``: the same as ``ClientData``, any number of clients.
- ``in_memory``: ``array_client_data``, the ``ClientData`` over in-memory arrays that the others return.
- ``real``: EMNIST, CIFAR-100 (TFF's federated versions) and CIFAR-10 (TFDS, Dirichlet split)
  for users with internet access.

Importing this package imports neither TensorFlow nor TFF; the functions that return a
``ClientData`` import TFF when called.
"""
from tff_experiments.data.common import DataUnavailableError
from tff_experiments.lazy_names import lazy_getattr

__getattr__ = lazy_getattr(__name__, {"array_client_data": "in_memory"})  # imports TFF


__all__ = ["DataUnavailableError", "array_client_data"]
