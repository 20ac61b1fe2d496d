r"""How long each client's local work takes, in virtual time.

Fraboni, Vidal, Kameni, Lorenzi, "A General Theory for Federated Optimization with Asynchronous
and Heterogeneous Clients Updates", JMLR 2023 (arXiv 2206.10189), Section 6: in scenario
``F-X`` the M clients' computation times are

.. math::

    \tau_i = 1 - i \, \frac{X/100}{M-1}, \qquad i = 0, \dots, M-1,

so client 0 is the slowest (:math:`\tau_0 = 1`) and client :math:`M-1` is X% faster. The
authors' clients are clockwork: every local work of client i lasts exactly :math:`\tau_i`.
Real clients are not, so a duration can also be drawn around :math:`\tau_i` (its mean), from an
exponential law or a lognormal law of log-standard-deviation :math:`\sigma`
(:math:`\log D \sim \mathcal N(\log\tau_i - \sigma^2/2, \sigma^2)`, mean :math:`\tau_i`).
Each draw is seeded by ``(seed, client, work index)``: the same run gives the same times
whatever order the driver asks for them in, which is what makes a resumed run exact.
"""
import re

import numpy as np

DISTRIBUTIONS = ("fixed", "exponential", "lognormal")
_SCENARIO = re.compile(r"^F-(\d+(?:\.\d*)?)$")


def scenario_mean_times(num_clients, scenario):
    r"""The authors' ``F-X`` client times :math:`\tau_i` (client 0 slowest, at 1).

    Args:
      num_clients: M.
      scenario: ``"F-X"``: the fastest client is X% faster than the slowest, the others evenly
        between, :math:`\tau_i = 1 - i \frac{X/100}{M-1}`.
    """
    if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ValueError(f"the number of clients must be a positive integer, got {num_clients!r}")
    match = _SCENARIO.match(str(scenario))
    if not match:
        raise ValueError(f"scenario must look like F-X with 0 <= X < 100 (e.g. F-80), got {scenario!r}")
    faster = float(match.group(1))
    if not 0.0 <= faster < 100.0:
        raise ValueError(f"in scenario F-X, X must be in [0, 100), got {scenario!r}")
    if num_clients == 1:
        return np.ones(1)
    return np.array([1 - i * faster / 100 / (num_clients - 1) for i in range(num_clients)])


class ClientTimes:
    """The duration of every local work: ``duration(client, work_index)``.

    Args:
      mean_times: :math:`\\tau_i`, one positive float per client.
      distribution: ``"fixed"`` (the authors' clockwork clients), ``"exponential"`` or
        ``"lognormal"`` around :math:`\\tau_i`.
      sigma: the lognormal law's log-standard-deviation.
      seed: seeds the random draws.
    """

    def __init__(self, mean_times, distribution="fixed", sigma=0.5, seed=0):
        self.mean_times = np.asarray(mean_times, dtype=np.float64)
        if self.mean_times.ndim != 1 or not np.all(self.mean_times > 0):
            raise ValueError(f"client mean times must be positive, got {mean_times!r}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"time distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
        if not sigma >= 0:
            raise ValueError(f"lognormal sigma must be >= 0, got {sigma!r}")
        self.distribution = distribution
        self.sigma = float(sigma)
        self.seed = int(seed)

    @classmethod
    def from_scenario(cls, num_clients, scenario, distribution="fixed", sigma=0.5, seed=0):
        """The times of the authors' scenario ``F-X`` (``scenario_mean_times``).

        Args:
          num_clients: M, the population (e.g. 342,477 clients, of which a schedule's
            ``concurrency`` train at once: each drawn client's works still last
            ``duration(client, work_index)``).
          scenario: ``"F-X"``.
          distribution: ``"fixed"``, ``"exponential"`` or ``"lognormal"``.
          sigma: the lognormal law's log-standard-deviation.
          seed: seeds the random draws.
        """
        return cls(scenario_mean_times(num_clients, scenario), distribution, sigma, seed)

    @property
    def num_clients(self):
        """M, the number of clients."""
        return len(self.mean_times)

    def duration(self, client, work_index):
        """Virtual time that local work number ``work_index`` (0, 1, ...) of ``client`` takes."""
        tau = self.mean_times[client]
        if self.distribution == "fixed":
            return tau
        rng = np.random.default_rng((self.seed, int(client), int(work_index)))
        if self.distribution == "exponential":
            return float(rng.exponential(tau))
        return float(np.exp(rng.normal(np.log(tau) - self.sigma**2 / 2, self.sigma)))
