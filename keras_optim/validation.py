"""Argument checks shared by the optimizers: errors name the argument and the value."""
import numbers


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Raises ``ValueError`` unless ``value`` is a real number in the given interval."""
    if not _is_real(value):
        raise ValueError(f"`{name}` must be a real number, got {value!r} ({type(value).__name__}).")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ValueError(f"`{name}` must be in {interval}, got {value!r}.")
    return float(value)


def check_beta(name, value):
    return check_real(name, value, low=0.0, high=1.0, high_open=True)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r} ({type(value).__name__}).")
    return value


def check_learning_rate(value):
    """A number must be >= 0; schedules and callables are the base class's business."""
    if _is_real(value):
        return check_real("learning_rate", value, low=0.0)
    if isinstance(value, (str, bool, type(None))):
        raise ValueError(  # Keras 3's own words (tf.keras 2.14 has none for this).
            "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, "
            "or a callable (that takes in the current iteration value and returns the "
            f"corresponding learning rate value). Received instead: learning_rate={value}"
        )
    return value


def check_optional_nonnegative(name, value):
    return None if value is None else check_real(name, value, low=0.0)
