"""Asynchronous federated learning on Flower's deployment engine (flwr 1.42), with Keras 3 clients.

A Flower app: a ServerApp that runs synchronous FedAvg, asynchronous FedAvg, FedBuff and FedFix
over Flower's ``Grid`` (it pushes models and pulls whatever replies have come, without waiting
for a round), and a ClientApp that trains a Keras 3 model (or a NumPy one) with a keras-optim
optimizer on its node's partition. When the server aggregates, which updates count and with
which weights is decided by the same rule objects that build the TFF simulations' schedules
(``tff_experiments.asynchronous.rules``).

- ``settings``: the run configuration (``[tool.flwr.app.config]`` of ``app/pyproject.toml``),
  checked once.
- ``tasks``: the models and data sets, each node's partition, local training and evaluation.
- ``server_optimizer``: the server's update from the weighted sum of the clients' updates.
- ``run_log``: the server's checkpoint, ``updates.csv``, ``metrics.csv`` and TensorBoard.
- ``node_failures``: the nodes' failures, counted; a node failing too often is dropped.
- ``server_loop``: the asynchronous loop over a ``Grid``. ``server_app``, ``client_app``: the
  Flower components.
- ``certificates``, ``local``: ``python -m flower_async local``, a SuperLink and N SuperNodes on
  this machine with TLS and node authentication.

Importing this package imports neither Flower nor TensorFlow.
"""
