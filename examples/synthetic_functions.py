r"""diffGrad's synthetic 1-D non-convex functions, and three classic 2-D test functions.

**1-D (Dubey et al., diffGrad, IEEE TNNLS 2019, arXiv 1909.11015, Section V, eqs. 24-26).**
From :math:`x_0=-1`, 300 steps, learning rate 0.1, :math:`\beta_1=0.95`, :math:`\beta_2=0.999`:

.. math::

    F_1(x) &= (x+0.3)^2 \ (x \le 0), \quad (x-0.2)^2 + 0.05 \ (x > 0) \\
    F_2(x) &= -40x - 35.15 \ (x \le -0.9), \quad x^3 + x\sin(8x) + 0.85 \ (x > -0.9) \\
    F_3(x) &= x^2 \ (x \le -0.5), \ 0.75+x \ (\le -0.4), \ -7x/8 \ (\le 0), \ 7x/8 \ (\le 0.4),
              \ 0.75-x \ (\le 0.5), \ x^2 \ (x > 0.5)

The paper's claim: on :math:`F_1` (and :math:`F_2`) Adam's momentum carries it past the global
minimum (-0.3) into the local one (0.2), while diffGrad's friction
:math:`\xi=\operatorname{sigmoid}(|g_{t-1}-g_t|)` slows it down in time and it stays in the
global minimum; on :math:`F_3` both cross the first local minimum and reach the global one,
Adam oscillating more around it. Adam (Keras), diffGrad and AdaBelief (keras_optim) run here
on a float64 Keras variable, the gradient coming from ``tf.GradientTape`` on the functions
above. (The authors' notebook hard-codes :math:`F_2`'s derivative without the factor 8 of
:math:`8x\cos 8x`; here the gradient is the true one of eq. 25.)

**2-D.** Beale, Rosenbrock and Rastrigin from the usual starting points, for SGD with momentum
0.9, Adam, AdaBelief and diffGrad; each optimizer gets the learning rate of a log grid that ends
lowest, and the trajectories are drawn on the contour plots.

    .venv/bin/python -m examples.synthetic_functions           # ~1 minute on 2 CPU cores
    .venv/bin/python -m examples.synthetic_functions --quick   # seconds (the tests' size)
"""
import argparse
import math
import os
import sys

if __package__ in (None, ""):  # `python examples/synthetic_functions.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

if __name__ == "__main__":  # a command line: no TensorFlow C++ log lines (before it is imported)
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()

from examples import common  # noqa: E402
from keras_optim.backend import keras  # noqa: E402

import keras_optim  # noqa: E402
import tensorflow as tf  # noqa: E402

DTYPE = "float64"


# ---------------------------------------------------------------------------------------------
# The functions. Each takes a tensor of shape (..., d) and returns shape (...): the same code
# gives the gradient (GradientTape), the loss along a trajectory and the contour grid.
# ---------------------------------------------------------------------------------------------
def f1(x):
    x = x[..., 0]
    return tf.where(x <= 0.0, (x + 0.3) ** 2, (x - 0.2) ** 2 + 0.05)


def f2(x):
    x = x[..., 0]
    return tf.where(x <= -0.9, -40.0 * x - 35.15, x ** 3 + x * tf.sin(8.0 * x) + 0.85)


def f3(x):
    x = x[..., 0]
    return tf.where(
        x <= -0.5, x ** 2,
        tf.where(x <= -0.4, 0.75 + x,
                 tf.where(x <= 0.0, -7.0 * x / 8.0,
                          tf.where(x <= 0.4, 7.0 * x / 8.0,
                                   tf.where(x <= 0.5, 0.75 - x, x ** 2)))))


def beale(p):
    x, y = p[..., 0], p[..., 1]
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
            + (2.625 - x + x * y ** 3) ** 2)


def rosenbrock(p):
    x, y = p[..., 0], p[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x ** 2) ** 2


def rastrigin(p):
    x, y = p[..., 0], p[..., 1]
    two_pi = 2.0 * math.pi
    return 20.0 + x ** 2 - 10.0 * tf.cos(two_pi * x) + y ** 2 - 10.0 * tf.cos(two_pi * y)


FUNCTIONS_1D = {"F1": f1, "F2": f2, "F3": f3}
# name: (function, start, global minimum, plot box (xmin, xmax, ymin, ymax))
FUNCTIONS_2D = {
    "Beale": (beale, (1.0, 1.5), (3.0, 0.5), (-4.5, 4.5, -4.5, 4.5)),
    "Rosenbrock": (rosenbrock, (-2.0, 2.0), (1.0, 1.0), (-2.5, 2.5, -1.0, 3.5)),
    "Rastrigin": (rastrigin, (-2.0, 3.5), (0.0, 0.0), (-4.5, 4.5, -4.5, 4.5)),
}


def evaluate(fn, points):
    """``fn`` on a NumPy array of points of shape (..., d)."""
    return fn(tf.constant(np.asarray(points, dtype=DTYPE))).numpy()


def local_minima_1d(fn, low=-1.0, high=1.0, num=200_001):
    """Local minima of a 1-D function on [low, high], from a dense grid; sorted by value."""
    xs = np.linspace(low, high, num)
    ys = evaluate(fn, xs[:, None])
    inner = np.where((ys[1:-1] < ys[:-2]) & (ys[1:-1] <= ys[2:]))[0] + 1
    return sorted((float(xs[i]), float(ys[i])) for i in inner)


# ---------------------------------------------------------------------------------------------
# Optimizers: Keras' own SGD and Adam, keras_optim's AdaBelief and diffGrad.
# ---------------------------------------------------------------------------------------------
def make_optimizer(name, learning_rate, beta_1=0.9, beta_2=0.999):
    if name == "SGD-momentum":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "Adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                     epsilon=1e-8)
    if name == "diffGrad":
        return keras_optim.DiffGrad(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                    epsilon=1e-8)
    if name == "AdaBelief":
        # The paper's Algorithm 2 with Adam's epsilon and no RAdam warm-up, so that the three
        # adaptive methods differ only in their statistics.
        return keras_optim.AdaBelief(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                     epsilon=1e-8, rectify=False)
    raise ValueError(f"unknown optimizer {name!r}")


def trajectory(fn, optimizer, start, steps):
    """Runs ``steps`` updates of ``optimizer`` on ``fn`` from ``start``.

    Returns the visited points, shape (steps + 1, d): the start, then the point after each step.
    The whole loop runs in one ``tf.function`` (a Keras variable, ``GradientTape`` gradients).
    """
    x = common.variable(np.asarray(start, dtype=DTYPE), dtype=DTYPE)
    optimizer.build([x])

    @tf.function
    def run():
        points = tf.TensorArray(DTYPE, size=steps + 1)
        points = points.write(0, tf.convert_to_tensor(x))
        for i in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = fn(tf.convert_to_tensor(x))
            optimizer.apply_gradients([(tape.gradient(loss, x), x)])
            points = points.write(i + 1, tf.convert_to_tensor(x))
        return points.stack()

    return run().numpy()


# ---------------------------------------------------------------------------------------------
# 1-D experiment
# ---------------------------------------------------------------------------------------------
OPTIMIZERS_1D = ("Adam", "diffGrad", "AdaBelief")
OPTIMIZERS_2D = ("SGD-momentum", "Adam", "AdaBelief", "diffGrad")


def run_1d(args):
    results = {}
    for fname, fn in FUNCTIONS_1D.items():
        minima = local_minima_1d(fn)
        global_min = min(minima, key=lambda m: m[1])
        results[fname] = {"minima": minima, "global_minimum": global_min[0], "runs": {}}
        for oname in OPTIMIZERS_1D:
            optimizer = make_optimizer(oname, args.lr, args.beta_1, args.beta_2)
            xs = trajectory(fn, optimizer, [args.x0], args.steps)[:, 0]
            losses = evaluate(fn, xs[:, None])
            final = float(xs[-1])
            nearest = min(minima, key=lambda m: abs(m[0] - final))
            tail = xs[-max(1, args.steps // 6):]
            results[fname]["runs"][oname] = {
                "x": xs, "loss": losses, "final_x": final, "final_loss": float(losses[-1]),
                "nearest_minimum": nearest[0],
                "in_global_minimum": bool(nearest[0] == global_min[0]
                                          and abs(final - nearest[0]) < 0.05),
                "tail_range": float(tail.max() - tail.min()),
            }
    return results


def table_1d(results, args, out_dir):
    rows = []
    for fname, res in results.items():
        for oname, run in res["runs"].items():
            kind = "global" if run["nearest_minimum"] == res["global_minimum"] else "local"
            rows.append([fname, oname, run["final_x"], run["final_loss"],
                         f"{run['nearest_minimum']:+.3f} ({kind})", run["tail_range"]])
    tail = max(1, args.steps // 6)
    return common.write_table(
        out_dir, "synthetic_1d",
        f"diffGrad's synthetic functions: x0={args.x0}, lr={args.lr}, beta_1={args.beta_1}, "
        f"beta_2={args.beta_2}, {args.steps} steps",
        ["function", "optimizer", "final x", "final F(x)", "nearest minimum",
         f"range of x, last {tail} steps"], rows)


def plot_1d(results, out_dir):
    plt = common.pyplot()
    fig, axes = plt.subplots(len(results), 3, figsize=(15, 3.6 * len(results)))
    colors = {"Adam": "tab:blue", "diffGrad": "tab:red", "AdaBelief": "tab:green"}
    for row, (fname, res) in zip(axes, results.items()):
        grid = np.linspace(-1.0, 1.0, 801)
        row[0].plot(grid, evaluate(FUNCTIONS_1D[fname], grid[:, None]), color="black")
        for x_min, y_min in res["minima"]:
            kind = "global" if x_min == res["global_minimum"] else "local"
            row[0].plot(x_min, y_min, "o" if kind == "global" else "s", color="gray")
        for oname, run in res["runs"].items():
            steps = np.arange(len(run["x"]))
            row[0].plot(run["final_x"], run["final_loss"], "*", ms=13, color=colors[oname],
                        label=f"{oname} ends at {run['final_x']:+.3f}")
            row[1].plot(steps, np.maximum(run["loss"] - min(m[1] for m in res["minima"]), 1e-12),
                        color=colors[oname], label=oname)
            row[2].plot(steps, run["x"], color=colors[oname], label=oname)
        row[0].set(title=f"{fname}(x): minima (circle: global) and final points", xlabel="x")
        row[1].set(title=f"{fname}: F(x_t) - min F", xlabel="step", yscale="log")
        row[2].set(title=f"{fname}: x_t", xlabel="step")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("diffGrad's synthetic functions (Dubey et al. 2019, Fig. 4 setting)")
    fig.tight_layout()
    return common.save_figure(fig, out_dir, "synthetic_1d")


# ---------------------------------------------------------------------------------------------
# 2-D experiment
# ---------------------------------------------------------------------------------------------
def run_2d(args):
    results = {}
    grid = list(args.lr_grid)
    bar = common.progress(total=len(FUNCTIONS_2D) * len(OPTIMIZERS_2D) * len(grid),
                          desc="2-D functions")
    for fname, (fn, start, minimum, _) in FUNCTIONS_2D.items():
        results[fname] = {"start": start, "minimum": minimum, "runs": {}}
        for oname in OPTIMIZERS_2D:
            best = None
            for lr in grid:
                path = trajectory(fn, make_optimizer(oname, lr), start, args.steps_2d)
                final = float(evaluate(fn, path[-1]))
                if np.isfinite(final) and np.all(np.isfinite(path)) and (
                        best is None or final < best["final_loss"]):
                    best = {"learning_rate": lr, "path": path, "final_loss": final}
                bar.update(1)
            if best is None:  # diverged at every learning rate of the grid
                best = {"learning_rate": None, "path": None, "final_loss": float("nan"),
                        "final_point": (float("nan"),) * 2, "distance_to_minimum": float("nan")}
            else:
                best["final_point"] = best["path"][-1]
                best["distance_to_minimum"] = float(np.linalg.norm(best["path"][-1] - minimum))
            results[fname]["runs"][oname] = best
        print(f"{fname}: " + ", ".join(
            f"{o} lr={r['learning_rate']} -> f={r['final_loss']:.3g}"
            for o, r in results[fname]["runs"].items()))
    bar.close()
    return results


def table_2d(results, args, out_dir):
    rows = []
    for fname, res in results.items():
        for oname, run in res["runs"].items():
            x, y = run["final_point"]
            rows.append([fname, oname, run["learning_rate"] or "diverged at all",
                         f"({x:.3f}, {y:.3f})",
                         run["final_loss"], run["distance_to_minimum"]])
    grid = ", ".join(f"{lr:g}" for lr in args.lr_grid)
    return common.write_table(
        out_dir, "synthetic_2d",
        f"2-D test functions, {args.steps_2d} steps; learning rate: the best of [{grid}] "
        f"by final f", ["function", "optimizer", "learning rate", "final point", "final f",
                        "distance to global minimum"], rows)


def plot_2d(results, out_dir):
    plt = common.pyplot()
    colors = {"SGD-momentum": "tab:orange", "Adam": "tab:blue", "AdaBelief": "tab:green",
              "diffGrad": "tab:red"}
    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 5.6))
    for ax, (fname, res) in zip(np.atleast_1d(axes), results.items()):
        fn, start, minimum, (x0, x1, y0, y1) = FUNCTIONS_2D[fname]
        gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        z = evaluate(fn, np.stack([gx, gy], axis=-1))
        ax.contourf(gx, gy, np.log1p(z - z.min()), levels=40, cmap="Greys", alpha=0.65)
        ax.contour(gx, gy, np.log1p(z - z.min()), levels=20, colors="k", linewidths=0.3)
        for oname, run in res["runs"].items():
            path = run["path"]
            if path is None:
                continue
            ax.plot(path[:, 0], path[:, 1], "-", lw=1.3, color=colors[oname],
                    label=f"{oname} (lr {run['learning_rate']:g})")
            ax.plot(path[-1, 0], path[-1, 1], "o", ms=5, color=colors[oname])
        ax.plot(*start, "ks", ms=7, label="start")
        ax.plot(*minimum, "*", color="gold", mec="k", ms=15, label="global minimum")
        ax.set(title=fname, xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y")
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Trajectories on 2-D test functions (contours: log(1 + f - min f))")
    fig.tight_layout()
    return common.save_figure(fig, out_dir, "synthetic_2d", dpi=90)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.synthetic_functions",
        description="diffGrad's 1-D synthetic functions (Adam vs diffGrad vs AdaBelief) and "
                    "2-D Beale / Rosenbrock / Rastrigin trajectories.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--x0", type=float, default=-1.0, help="1-D starting point")
    parser.add_argument("--lr", type=float, default=0.1, help="1-D learning rate")
    parser.add_argument("--beta-1", type=float, default=0.95, help="1-D beta_1")
    parser.add_argument("--beta-2", type=float, default=0.999, help="1-D beta_2")
    parser.add_argument("--steps", type=int, default=300, help="1-D steps")
    parser.add_argument("--steps-2d", type=int, default=500, help="2-D steps")
    parser.add_argument("--lr-grid", type=float, nargs="+",
                        default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0],
                        help="2-D learning rates tried for each optimizer")
    parser.add_argument("--skip-2d", action="store_true", help="only the 1-D functions")
    common.add_common_arguments(
        parser, "tiny 2-D part (100 steps, 3 learning rates); the 1-D part is unchanged")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.steps_2d < 1:
        raise SystemExit("error: --steps and --steps-2d must be >= 1")
    if args.quick:
        args.steps_2d = min(args.steps_2d, 100)
        args.lr_grid = [1e-3, 1e-2, 1e-1]
    out_dir = common.output_dir(args.out)

    results = {"1d": run_1d(args)}
    table_1d(results["1d"], args, out_dir)
    plot_1d(results["1d"], out_dir)
    if not args.skip_2d:
        results["2d"] = run_2d(args)
        table_2d(results["2d"], args, out_dir)
        plot_2d(results["2d"], out_dir)
    results["config"] = vars(args)
    common.save_json(out_dir, "synthetic_functions", results)
    return results


if __name__ == "__main__":
    main()
