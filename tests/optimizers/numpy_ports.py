"""Independent NumPy ports of the papers' update rules (not sharing code with keras_optim).

AdaBelief: Zhuang et al. 2020, Algorithm 2 with the authors' 0.2.x conventions (epsilon inside
the state, RAdam rectification). diffGrad: Dubey et al. 2019, Algorithm 1 (v2: the previous
gradient kept by value).
"""
import math

import numpy as np


class NumpyAdaBelief:
    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-16, amsgrad=False, rectify=True,
                 degenerated_to_sgd=True, weight_decay=0.0):
        self.__dict__.update(locals())
        self.t = 0
        self.state = None

    def step(self, params, grads):
        if self.state is None:
            self.state = [dict(m=np.zeros_like(p), s=np.zeros_like(p), s_max=np.zeros_like(p))
                          for p in params]
        self.t += 1
        t, b1, b2, eps = self.t, self.beta_1, self.beta_2, self.eps
        out = []
        for p, g, st in zip(params, grads, self.state):
            p = p * (1.0 - self.lr * self.weight_decay)
            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["s"] = b2 * st["s"] + (1 - b2) * (g - st["m"]) ** 2 + eps
            st["s_max"] = np.maximum(st["s_max"], st["s"])
            s_hat = st["s_max"] if self.amsgrad else st["s"]
            if not self.rectify:
                m_hat = st["m"] / (1 - b1 ** t)
                s_hat = s_hat / (1 - b2 ** t)
                p = p - self.lr * m_hat / (np.sqrt(s_hat) + eps)
            else:
                rho_inf = 2 / (1 - b2) - 1
                rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
                if rho >= 5:
                    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                    p = p - self.lr * r * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * st["m"] / (
                        np.sqrt(st["s"]) + eps)
                elif self.degenerated_to_sgd:
                    p = p - self.lr * st["m"] / (1 - b1 ** t)
            out.append(p)
        return out


class NumpyDiffGrad:
    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-8):
        self.__dict__.update(locals())
        self.t = 0
        self.state = None

    def step(self, params, grads):
        if self.state is None:
            self.state = [dict(m=np.zeros_like(p), v=np.zeros_like(p), prev=np.zeros_like(p))
                          for p in params]
        self.t += 1
        t, b1, b2 = self.t, self.beta_1, self.beta_2
        out = []
        for p, g, st in zip(params, grads, self.state):
            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            xi = 1.0 / (1.0 + np.exp(-np.abs(st["prev"] - g)))
            st["prev"] = np.array(g, copy=True)
            m_hat = st["m"] / (1 - b1 ** t)
            v_hat = st["v"] / (1 - b2 ** t)
            # Algorithm 1 writes eps next to sqrt(v_hat); the v2 code puts it next to sqrt(v_t).
            p = p - self.lr * xi * m_hat / (np.sqrt(v_hat) + self.eps / math.sqrt(1 - b2 ** t))
            out.append(p)
        return out


# (keras_optim class, its arguments, port, the port's arguments): learning rates exact in float32.
CASES = [
    ("AdaBelief", dict(learning_rate=0.125), NumpyAdaBelief, dict(lr=0.125)),
    ("AdaBelief", dict(learning_rate=0.125, rectify=False, epsilon=1e-8),
     NumpyAdaBelief, dict(lr=0.125, rectify=False, eps=1e-8)),
    ("AdaBelief", dict(learning_rate=0.0625, amsgrad=True, rectify=False, epsilon=1e-6, weight_decay=0.5),
     NumpyAdaBelief, dict(lr=0.0625, amsgrad=True, rectify=False, eps=1e-6, weight_decay=0.5)),
    ("AdaBelief", dict(learning_rate=0.25, beta_1=0.8, beta_2=0.9, degenerated_to_sgd=False),
     NumpyAdaBelief, dict(lr=0.25, beta_1=0.8, beta_2=0.9, degenerated_to_sgd=False)),
    ("DiffGrad", dict(learning_rate=0.125), NumpyDiffGrad, dict(lr=0.125)),
    ("DiffGrad", dict(learning_rate=0.5, beta_1=0.5, beta_2=0.9, epsilon=1e-4),
     NumpyDiffGrad, dict(lr=0.5, beta_1=0.5, beta_2=0.9, eps=1e-4)),
]
