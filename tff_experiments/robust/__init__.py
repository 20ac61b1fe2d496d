r"""Byzantine-robust collaborative learning in TFF: MoNNA, its baselines, attacks and aggregators.

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023 (arXiv:2209.10931); the authors' code is
LPD-EPFL/robust-collaborative-learning (``peerToPeer.py``).

- the mixing rules, plain TensorFlow functions of a ``[k, d]`` tensor of vectors:
  ``nna.py`` (NNA, NNM), ``coordinatewise.py`` (trimmed mean, median), ``geometric_median.py``,
  ``centered_clipping.py``, ``krum.py``; ``rules.py`` names them and gives them one calling
  convention (the machine's own vector first);
- ``attacks.py``: what the Byzantine machines send (sign flipping, ALIE, FOE, label flipping,
  mimic), with the authors' line search of the attack factor;
- ``aggregators.py``: the same rules as unweighted ``tff.aggregators`` factories for
  server-based federated learning (``tff.learning.algorithms.build_weighted_fed_avg``);
- ``process.py``: the peer-to-peer training step as TFF computations (stateful honest clients);
- ``settings.py``: a run's settings, checked once; ``driver.py``: runs it (data, evaluation,
  the track of the shared loop); ``python -m tff_experiments.robust`` (``cli.py``; alias
  ``python -m tff_experiments.monna``) is the command line.

Importing this package imports neither TensorFlow nor TFF; the names below import their module
(and TensorFlow) on first use.
"""
from tff_experiments.lazy_names import lazy_getattr
from tff_experiments.robust.choices import ATTACK_NAMES, RULE_NAMES

# (centered_clipping, geometric_median and krum are named as their modules: import them from those.)
_LAZY = {
    "MixingRule": "rules",
    "coordinate_median": "coordinatewise",
    "trimmed_mean": "coordinatewise",
    "nearest_neighbor_average": "nna",
    "nearest_neighbor_mixing": "nna",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ATTACK_NAMES",
    "RULE_NAMES",
    "MixingRule",
    "coordinate_median",
    "nearest_neighbor_average",
    "nearest_neighbor_mixing",
    "trimmed_mean",
]
