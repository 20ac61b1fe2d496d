"""NumPy ports of the robust mixing rules and attacks, written from the papers' equations.

Independent of ``tff_experiments.robust`` (loops and sorts, float64), to hold the TensorFlow
functions against. See the docstrings there for the equations and references.
"""
import numpy as np


def nna(vectors, own_index, num_kept):
    """MoNNA: mean of the num_kept vectors nearest to vectors[own_index] (stable ties)."""
    x = np.asarray(vectors, np.float64)
    distances = [np.linalg.norm(row - x[own_index]) for row in x]
    order = sorted(range(len(x)), key=lambda i: distances[i])
    return x[order[:num_kept]].mean(axis=0)


def nnm(vectors, f):
    x = np.asarray(vectors, np.float64)
    return np.stack([nna(x, j, len(x) - f) for j in range(len(x))])


def trimmed_mean(vectors, f):
    x = np.asarray(vectors, np.float64)
    out = np.empty(x.shape[1])
    for c in range(x.shape[1]):
        column = sorted(x[:, c])
        out[c] = np.mean(column[f : len(column) - f])
    return out


def median(vectors):
    x = np.asarray(vectors, np.float64)
    out = np.empty(x.shape[1])
    for c in range(x.shape[1]):
        column = sorted(x[:, c])
        k = len(column)
        out[c] = column[k // 2] if k % 2 else (column[k // 2 - 1] + column[k // 2]) / 2
    return out


def geometric_median(vectors, nu=0.1, iterations=3):
    x = np.asarray(vectors, np.float64)
    z = np.zeros(x.shape[1])
    for _ in range(iterations):
        weights = np.array([1.0 / max(np.linalg.norm(z - row), nu) for row in x])
        z = (weights[:, None] * x).sum(axis=0) / weights.sum()
    return z


def centered_clipping(vectors, center, tau, iterations):
    x = np.asarray(vectors, np.float64)
    v = np.asarray(center, np.float64).copy()
    for _ in range(iterations):
        total = np.zeros_like(v)
        for row in x:
            diff = row - v
            norm = np.linalg.norm(diff)
            total += diff * (min(1.0, tau / norm) if norm > 0 else 1.0)
        v = v + total / len(x)
    return v


def krum(vectors, f, squared=True):
    x = np.asarray(vectors, np.float64)
    k = len(x)
    scores = []
    for i in range(k):
        d = sorted(np.linalg.norm(x[i] - x[j]) ** (2 if squared else 1) for j in range(k) if j != i)
        scores.append(sum(d[: k - f - 1]))
    return x[int(np.argmin(scores))]


def alie(honest, z):
    x = np.asarray(honest, np.float64)
    return x.mean(axis=0) + z * x.std(axis=0, ddof=1)


def foe(honest, z):
    x = np.asarray(honest, np.float64)
    return x.mean(axis=0) * (1 - z)


def line_maximize(function, evaluations=16, start=0.0, delta=1.0, ratio=0.8):
    """The authors' search, transcribed from its description (expansion, then contraction)."""
    best_x, best_y = start, function(start)
    left = evaluations - 1
    proposal = start
    while left > 0:  # expansion
        proposal = best_x + delta
        y = function(proposal)
        left -= 1
        if y > best_y:
            best_x, best_y, delta = proposal, y, delta * 2
        else:
            delta *= ratio
            break
    while left > 0:  # contraction
        if proposal < best_x:
            proposal += delta
        else:
            x = proposal - delta
            while x < 0:
                x = (x + proposal) / 2
            proposal = x
        y = function(proposal)
        left -= 1
        if y > best_y:
            best_x, best_y = proposal, y
        delta *= ratio
    return best_x


def searched_attack(kind, honest, f, mix_one, evaluations=16):
    """ALIE/FOE with z maximizing ||mean_j mix_one(all, j) - mean||^2 (the authors' objective)."""
    x = np.asarray(honest, np.float64)
    mean = x.mean(axis=0)
    direction = x.std(axis=0, ddof=1) if kind == "alie" else -mean

    def damage(z):
        sent = mean + z * direction
        everything = np.concatenate([x, np.repeat(sent[None], f, axis=0)])
        mixed = np.mean([mix_one(everything, j) for j in range(len(x))], axis=0)
        return float(np.sum((mixed - mean) ** 2))

    z = line_maximize(damage, evaluations)
    return mean + z * direction, z


def learning_rate(step, initial, decay, decay_delta):
    """gamma_t = gamma_0 / (t'/decay + 1), t' the last multiple of decay_delta (authors' code)."""
    if decay <= 0:
        return initial
    last_update = (step // decay_delta) * decay_delta
    return initial / (last_update / decay + 1)


def monna_step(thetas, momenta, gradients, lr, beta, received_indices, byzantine, rule):
    """One honest step: momentum, half step, then rule(received) per machine.

    received_indices[j]: indices into concat(half thetas, byzantine) that machine j receives,
    its own first. rule(received) mixes them.
    """
    momenta = [beta * m + (1 - beta) * g for m, g in zip(momenta, gradients)]
    half = [t - lr * m for t, m in zip(thetas, momenta)]
    everything = np.concatenate([np.stack(half), np.asarray(byzantine).reshape(-1, len(half[0]))])
    mixed = [rule(everything[idx]) for idx in received_indices]
    return mixed, momenta, half


def max_pairwise_distance(vectors):
    x = np.asarray(vectors, np.float64)
    best = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            best = max(best, float(np.linalg.norm(x[i] - x[j])))
    return best


def is_close_to_some_row(vector, rows, tol=1e-5):
    return any(np.allclose(vector, r, rtol=tol, atol=tol) for r in rows)


__all__ = [name for name in dir() if not name.startswith("_") and name != "np"]
