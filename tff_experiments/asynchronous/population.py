r"""A population of P clients of which at most C train at once: the setting of FedBuff.

Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba, "Federated Learning with Buffered
Asynchronous Aggregation", AISTATS 2022 (arXiv 2106.06639), run large populations (e.g. the
342,477 clients of Stack Overflow) of which only C (e.g. 1,000) train at once, the
*concurrency*: their abstract finds that synchronous FL "cannot scale efficiently beyond a few
hundred clients training in parallel", and that in FedBuff "the server aggregates client updates
in a private buffer until K updates have been received, at which point a server model update is
immediately performed" (abstract, arXiv 2106.06639 and ai.meta.com). Meta's simulator that
implements FedBuff, FLSim (github.com/facebookresearch/FLSim, ``flsim/common/training_simulator.py``,
``flsim/utils/async_trainer/async_user_selector.py``), starts new clients by an arrival
process (a ``training_rate``), each a user drawn uniformly at random from the whole population
(``np.random.randint``: one already training may be drawn again), so its concurrency is a
long-run average (its ``Concurrency_Rate`` metric), not a cap.

Here the concurrency is a cap, the rule every scheme's schedule follows when given one:

* at time 0, C clients are drawn uniformly at random, without replacement, from the P;
* a client holds its *slot* from the start of its local work until the server no longer
  waits for it: until it returns (async FedAvg, FedBuff with ``keep_training``: the returned
  update waits in the buffer, the client does not), or until the step that aggregates it (the
  authors' FedBuff-c and FedFix, whose returned clients wait for the step; FedAvg's rounds);
* each freed slot goes at once to a client drawn uniformly at random among the clients not
  training (those freed at that moment included), which starts from the server's current
  model: the model it would have been sent in the scheme without concurrency. Several slots
  freed together are filled one draw at a time, without replacement.

So at most C clients are ever in flight, and with C = P the clients not training at a draw
are exactly those just freed: every freed client restarts, which is each scheme's schedule
without concurrency (no draw is made then). FedAvg's rounds draw their C clients afresh, all P
being idle between rounds.

**The draws** come from one generator, ``numpy.random.default_rng((STREAM, seed))``,
consumed in event order: every new client is the k-th (from 0) of the clients not training in
increasing index order, ``k = rng.integers(number of clients not training)``. The same
arguments give the same schedule; the stream is apart from ``ClientTimes``' per-work draws
(seeded by ``(seed, client, work index)``), so sampling and durations can share a seed.

**Memory**: the event loops hold the C clients in flight and, per client, its local-work
counter (a list of P small integers); the sorted list of the clients in flight finds the k-th
idle client in :math:`O(\log C)`. Nothing grows with P beyond O(P) small arrays.

**Which clients the slots go to, on average.** Let :math:`h_i` be the mean time client i
holds a slot per local work (``holding time``). For the one-slot-at-a-time schemes (async
FedAvg, FedBuff with ``keep_training``) the set B of clients in flight is a Markov chain whose
stationary law is the *conditional Poisson* law

.. math::

    \Pr[B] \propto \prod_{j \in B} h_j, \qquad |B| = C,

as balance checks show: the flow out of B by the end of client j's work,
:math:`\Pr[B] \frac{1}{h_j} \frac{P-C}{P-C+1}`, equals the flow into B by the start of j's work,
:math:`\sum_{k \notin B} \Pr[B \setminus \{j\} \cup \{k\}] \frac{1}{h_k} \frac{1}{P-C+1}`. This
station balance makes the law insensitive to the law of the durations beyond their means. Client
i is then in flight with probability :math:`\pi_i = \Pr[i \in B]`, the inclusion probability of
a conditional Poisson sample of size C with odds :math:`h_i` (``inclusion_probabilities``), and
by Little's law it starts works at rate :math:`\lambda_i = \pi_i / h_i` (``steady_state_rates``).
With C = P, :math:`\pi_i = 1` and :math:`\lambda_i = 1/h_i`; when :math:`C \ll P`,
:math:`\lambda_i \approx C/\sum_j h_j`, the same for every client. Checked against long
simulations of the rule (clockwork and exponential times: within their noise, 0.4-0.7% at P=8,
C=4, where a mean-field guess, :math:`\lambda_i \propto 1 - \pi_i`, was 8% off). FedFix's
clockwork clients free their slots at the aggregation times, several at once, with
:math:`h_i = \lceil \tau_i/\Delta t \rceil \Delta t`; the same law matched its simulations
(0.5%). The authors' FedBuff-c is not of this product form (a client's wait for the step depends
on the others); its weights use the law with :math:`h_i = \tau_i + \bar w`, :math:`\bar w` the
schedule's mean wait, an approximation (see ``fedbuff``).
"""
import bisect
import heapq

import numpy as np

# Entropy words of the sampling generator: (STREAM, seed). ClientTimes seeds its draws with
# (seed, client, work index): different words, different streams.
STREAM = 0x706F70  # "pop"


def check_concurrency(concurrency, population):
    """C, checked: ``None`` (every client always training) gives P.

    Args:
      concurrency: C, the most clients training at once (an integer in [1, P]), or ``None``.
      population: P, the number of clients.
    """
    if concurrency is None:
        return int(population)
    if isinstance(concurrency, bool) or not isinstance(concurrency, (int, np.integer)) \
            or not 1 <= concurrency <= population:
        raise ValueError(f"the concurrency must be an integer in [1, {population}] (the number of "
                         f"clients), got {concurrency!r}")
    return int(concurrency)


def scheme_suffix(concurrency, population):
    """``""`` with every client training (C = P), else ``"-concurrency-C"``: appended to a
    schedule's scheme name.

    Args:
      concurrency: C.
      population: P.
    """
    return "" if concurrency == population else f"-concurrency-{concurrency}"


def sampling_rng(seed):
    """The generator of a schedule's draws: ``numpy.random.default_rng((STREAM, seed))``.

    Args:
      seed: a non-negative integer.
    """
    return np.random.default_rng((STREAM, int(seed)))


class IdleClients:
    """The clients not training, from which new clients are drawn uniformly at random.

    Keeps the sorted list of the clients in flight (at most C), not the P idle ones: the k-th
    idle client is found by bisection on :math:`b_m - m` (:math:`b_m` the m-th client in flight,
    in increasing order: the number of idle clients below :math:`b_m`).

    Args:
      population: P.
      rng: the ``numpy.random.Generator`` drawn from (``sampling_rng``).
    """

    def __init__(self, population, rng):
        self.population = int(population)
        self._rng = rng
        self._training = []  # sorted

    def __len__(self):
        return self.population - len(self._training)

    def draw(self):
        """Draws ``k = rng.integers(len(self))``; the k-th idle client (increasing index order)
        starts training and is returned."""
        k = int(self._rng.integers(len(self)))
        training = self._training
        lo, hi = 0, len(training)
        while lo < hi:  # lo = the number of clients in flight below the answer
            mid = (lo + hi) // 2
            if training[mid] - mid <= k:
                lo = mid + 1
            else:
                hi = mid
        training.insert(lo, k + lo)
        return k + lo

    def release(self, client):
        """``client`` stops training (it is drawable again)."""
        where = bisect.bisect_left(self._training, client)
        if where == len(self._training) or self._training[where] != client:
            raise ValueError(f"client {client} is not training")
        del self._training[where]


def first_works(times, concurrency, seed):
    """``(idle, pending)`` at time 0: the idle clients (``None`` when every client always
    trains) and the heap of the works under way, ``(return time, client, sent version 0)``.

    Args:
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``).
      concurrency: C, checked (``check_concurrency``).
      seed: seeds the draws (``sampling_rng``).
    """
    num_clients = times.num_clients
    idle = None if concurrency == num_clients else IdleClients(num_clients, sampling_rng(seed))
    first = range(num_clients) if idle is None else [idle.draw() for _ in range(concurrency)]
    pending = [(times.duration(i, 0), i, 0) for i in first]
    heapq.heapify(pending)
    return idle, pending


def replacements(idle, returned):
    """The clients that start in place of ``returned`` (whose slots are freed): the same ones
    when every client always trains (``idle`` is ``None``), else as many drawn from the idle
    clients once all of ``returned`` are idle again.

    Args:
      idle: the ``IdleClients``, or ``None``.
      returned: the clients whose slots are freed, in order.
    """
    if idle is None:
        return list(returned)
    for i in returned:
        idle.release(i)
    return [idle.draw() for _ in returned]


def inclusion_probabilities(odds, size):
    r"""Inclusion probabilities of the conditional Poisson sample of ``size`` n with ``odds`` w.

    The law :math:`\Pr[B] \propto \prod_{j \in B} w_j` over the sets of n clients gives client i
    the probability :math:`\pi_i = w_i\, e_{n-1}(w_{-i}) / e_n(w)` (:math:`e_k` the elementary
    symmetric polynomials). Computed exactly and stably through Poisson sampling: with
    :math:`p_j = x w_j/(1 + x w_j)` and :math:`\sum_j p_j = n`, independent
    :math:`I_j \sim \text{Bernoulli}(p_j)` and :math:`S = \sum_j I_j`,

    .. math::

        \pi_i = p_i \, \Pr[S_{-i} = n-1] / \Pr[S = n],

    where :math:`\Pr[S = k]` near n comes from a sum of positive terms (the Bernoulli laws'
    convolution, in blocks, kept to :math:`\pm 12` standard deviations and 40 more), and
    :math:`\Pr[S_{-i} = n-1]` from it by dividing out client i's Bernoulli in the direction
    that damps errors (from below when :math:`p_i \le 1/2`, from above otherwise). The
    complement of the sample is the conditional Poisson sample of size :math:`P - n` with odds
    :math:`1/w`, used when :math:`n > P/2`. (The recursion of Chen, Dempster and Liu, 1994, is
    simpler but loses all precision when some :math:`\pi_i > 1/2`.) P = 342,477, n = 1,000 takes
    well under a second.

    Args:
      odds: :math:`w_j > 0`, one per client.
      size: n, an integer in [0, P].
    """
    w = np.asarray(odds, dtype=np.float64)
    total, n = len(w), int(size)
    if w.ndim != 1 or not np.all(w > 0) or not np.all(np.isfinite(w)):
        raise ValueError("the odds must be positive and finite")
    if not 0 <= n <= total:
        raise ValueError(f"the sample size must be in [0, {total}], got {size!r}")
    if n == total:
        return np.ones(total)
    if n == 0:
        return np.zeros(total)
    if n > total - n:
        return 1.0 - inclusion_probabilities(1.0 / w, total - n)
    # x such that sum p_j = n: any x gives the same pi; this one centres S on n.
    lo, hi = np.log(n / (total * w.max())), np.log(n / ((total - n) * w.min()))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.sum(1.0 / (1.0 + 1.0 / (np.exp(mid) * w))) < n:
            lo = mid
        else:
            hi = mid
    x = np.exp(0.5 * (lo + hi))
    p = x * w / (1.0 + x * w)
    law, first = _sum_of_bernoullis(p)  # law[k] = Pr[S = first + k]
    centre = n - first
    if not 1 <= centre < len(law) - 1:
        raise ArithmeticError("the sum's window misses the sample size")
    below = p <= 0.5
    rest = np.empty(total)
    # Pr[S_-i = n-1] = sum_m (-p/(1-p))^m Pr[S = n-1-m] / (1-p)  (from below)
    rest[below] = _alternating_sum(law[centre - 1::-1], p[below] / (1.0 - p[below])) / (1.0 - p[below])
    # Pr[S_-i = n-1] = sum_m (-(1-p)/p)^m Pr[S = n+m] / p  (from above)
    above = ~below
    rest[above] = _alternating_sum(law[centre:], (1.0 - p[above]) / p[above]) / p[above]
    pi = p * rest / law[centre]
    if not abs(pi.sum() - n) <= 1e-8 * n or np.any(pi < -1e-12) or np.any(pi > 1 + 1e-12):
        raise ArithmeticError(f"inclusion probabilities sum to {pi.sum()!r}, not {n}")
    return np.clip(pi, 0.0, 1.0)


def _sum_of_bernoullis(p, block=64):
    """The law of a sum of independent Bernoulli(p_j), as (values, first value), within
    +-(12 sd + 40) of its mean (what lies beyond is below e^-50)."""
    spread = int(np.ceil(12.0 * np.sqrt(np.sum(p * (1.0 - p))))) + 40
    padded = np.zeros(-(-len(p) // block) * block)
    padded[:len(p)] = p
    blocks = padded.reshape(-1, block)
    laws = np.zeros((len(blocks), block + 1))  # each block's law, by a vectorized convolution
    laws[:, 0] = 1.0
    for j in range(block):
        q = blocks[:, j:j + 1]
        shifted = laws[:, :-1] * q
        laws *= 1.0 - q
        laws[:, 1:] += shifted
    law, first, mean = np.ones(1), 0, 0.0
    for b in range(len(blocks)):
        law = np.convolve(law, laws[b])
        mean += blocks[b].sum()
        keep_from = max(0, int(mean) - spread - first)
        keep_to = max(keep_from + 1, int(mean) + spread + 1 - first)
        law, first = law[keep_from:keep_to], first + keep_from
    return law, first


def _alternating_sum(values, ratio):
    """``sum_m (-ratio)^m values[m]`` for each ratio (all < 1 but possibly close to it), over
    the m where the terms still count."""
    ratio = np.asarray(ratio, dtype=np.float64)
    total = np.zeros(len(ratio))
    if len(ratio) == 0:
        return total
    top = float(ratio.max())
    terms = len(values) if top >= 1.0 - 1e-3 else min(len(values), int(np.log(1e-20) / np.log(top)) + 2)
    coef = np.ones(len(ratio))
    for m in range(terms):
        total += coef * values[m]
        coef *= -ratio
    return total


def steady_state_rates(holding_times, concurrency):
    r""":math:`\lambda_i = \pi_i / h_i`: the rate at which client i starts local works in the
    long run, when C slots go to uniformly drawn idle clients and client i holds a slot for
    :math:`h_i` on average per work (see the module's docstring).

    Args:
      holding_times: :math:`h_i > 0`, one per client.
      concurrency: C.
    """
    h = np.asarray(holding_times, dtype=np.float64)
    return inclusion_probabilities(h, concurrency) / h
