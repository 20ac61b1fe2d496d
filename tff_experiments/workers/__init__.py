"""TFF executor services: running a command line's computations on them, securing them, starting one.

- ``remote``: ``remote_execution(addresses, tls)``, the TFF context that splits a computation's
  clients across the services, ends the run in one line when one is lost, and counts what each
  served; ``local_worker_services(n)`` for one machine.
- ``tls``: ``MutualTls`` (the CA, our certificate and key) and ``check_worker``, the one-line
  reason a service cannot be used.
- ``service``: TFF's ``worker_binary`` and the mutual-TLS front in front of it.
- ``serve``: ``python -m tff_experiments.workers``, a service reachable only through mutual TLS.
- ``flags``: the command lines' ``--workers`` and ``--tls-*`` flags, checked once for both
  (``python -m tff_experiments.asynchronous`` and ``python -m tff_experiments.robust``).
"""
