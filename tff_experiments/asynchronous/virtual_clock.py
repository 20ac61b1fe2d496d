"""A rule (``rules``) played on the virtual clock: the clients' returns come from
``ClientTimes``, and the server steps the rule decides are the scheme's schedule.

Events in time order: a client's return, or the rule's deadline (FedFix), a return at the
deadline itself first; ties between returns go to the lowest client index (the authors'
``argmin``). A client's local works are counted 0, 1, ...: work k lasts
``times.duration(client, k)``. With a concurrency C < P (``population``), the slots the rule
frees go to clients drawn from the idle ones, which start from the model after the rule's steps.
"""
import heapq

from tff_experiments.asynchronous import population as population_lib


def play(rule, times, horizon, *, concurrency, seed=0):
    """The server steps ``rule`` makes up to ``horizon``.

    Every event up to the horizon is played: a return later than the horizon, or a deadline
    beyond it (``rule.deadline(horizon)`` is ``None``), ends the run.

    Args:
      rule: a fresh ``rules.Rule`` (version 0).
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``).
      horizon: the virtual time to play up to.
      concurrency: C, checked (``population.check_concurrency``).
      seed: seeds the draws of the clients that start (``population.sampling_rng``).
    """
    idle, pending = population_lib.first_works(times, concurrency, seed)  # (return time, client, sent version)
    for _, client, _ in pending:
        rule.started(client)
    works = [0] * times.num_clients  # each client's works done: the index of its current one
    steps = []
    while True:
        deadline = rule.deadline(horizon)
        if deadline is not None and (not pending or deadline < pending[0][0]):
            now = deadline
            decision = rule.tick(now)
        elif pending and pending[0][0] <= horizon:
            now, client, sent = heapq.heappop(pending)
            decision = rule.arrived(client, sent, now, works[client])
        else:
            return tuple(steps)
        steps.extend(decision.steps)
        for client in decision.freed:
            works[client] += 1
        for client in population_lib.replacements(idle, decision.freed):
            rule.started(client)
            heapq.heappush(pending, (now + times.duration(client, works[client]), client, rule.version))
