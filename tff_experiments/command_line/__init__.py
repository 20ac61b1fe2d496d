"""What the federated command lines share: one-line errors (``errors``), their common arguments
and the checks of values (``arguments``), and the run's launch (``launch``: ``--out``, its lock,
quiet TensorFlow, the private namespace). Nothing here imports TensorFlow or a track.
"""
