"""Interleaved timing shared by the benchmarks: every candidate runs once per round, in turn, so
that noise from other jobs on the machine hits all of them alike, and each is compared with the
baseline timed in the same round.

Two clocks: wall time, and the process's CPU time (all threads). On a CPU shared with other
jobs, wall time also counts the time the step waited for a core, which CPU time does not; on a
GPU only wall time means anything (the host mostly waits).
"""
import statistics
import time


def warm_up(step, seconds_per_round):
    """Runs ``step`` twice (compilation) and returns how many calls fill ``seconds_per_round``."""
    step()
    step()
    start = time.perf_counter()
    step()
    return max(1, int(seconds_per_round / max(time.perf_counter() - start, 1e-6)))


def interleaved(steps, repeats, rounds):
    """``{name: (wall seconds per call, CPU seconds per call)}`` lists, one entry per round."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(repeats[name]):
                step()
            times[name].append(((time.perf_counter() - wall) / repeats[name],
                                (time.process_time() - cpu) / repeats[name]))
    return times


def summarize(times, baseline):
    """Per candidate: best wall time, and the medians over rounds of its wall-time and CPU-time
    ratios to ``baseline`` in the same round."""
    base = times[baseline]
    summary = {}
    for name, rows in times.items():
        wall = statistics.median(w / b[0] for (w, _), b in zip(rows, base))
        cpu = statistics.median(c / max(b[1], 1e-12) for (_, c), b in zip(rows, base))
        summary[name] = (min(w for w, _ in rows), wall, cpu)
    return summary


HEADER = f"{'':<32}{'best ms':>10}{'x wall':>9}{'x CPU':>9}"


def row(name, best, wall, cpu):
    return f"{name:<32}{best * 1e3:>10.2f}{wall:>9.2f}{cpu:>9.2f}"
