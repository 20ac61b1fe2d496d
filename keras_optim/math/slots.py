"""How the math reads and writes optimizer statistics.

Each algorithm's step is written once against a small "slots" interface: ``slots[name]`` reads
a statistic, ``slots.add(name, delta)`` increments it, ``slots.set(name, value)`` replaces it, and
``slots.set_after_update(name, value)`` replaces it once the variable has moved: for a statistic
whose old value the variable's update still reads (diffGrad's previous gradient). Written
before, XLA keeps the old value alive through a full copy of it; the Keras adapters order the
write after the variable's update instead.
The Keras optimizers back it with variables, written through ``Optimizer.assign_add`` /
``assign`` (in place: under XLA an increment-then-read costs one pass over memory where
building a new tensor and assigning it costs several), and the functional form below backs
it with a dict of tensors for TFF and tests.
"""


class StateSlots:
    """Slots over a dict of tensors; writes build new tensors, ``state`` is the result."""

    def __init__(self, state):
        self.state = dict(state)

    def __getitem__(self, name):
        return self.state[name]

    def add(self, name, delta):
        self.state[name] = self.state[name] + delta

    def set(self, name, value):
        self.state[name] = value

    def set_after_update(self, name, value):
        self.state[name] = value


def functional(step_fn):
    """``step_fn(gradient, slots, step, **hp) -> direction`` as a pure function
    ``(gradient, state, step, **hp) -> (direction, new_state)``."""

    def update(gradient, state, step, **hyperparameters):
        slots = StateSlots(state)
        direction = step_fn(gradient, slots, step, **hyperparameters)
        return direction, slots.state

    update.__name__ = step_fn.__name__.replace("_step", "_update")
    update.__doc__ = f"Functional form of ``{step_fn.__name__}``: returns ``(direction, new_state)``."
    return update
