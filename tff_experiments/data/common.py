"""What the data modules share: the error of a data set that is not here, one-line messages.

Nothing here imports TensorFlow or TFF.
"""


class DataUnavailableError(FileNotFoundError):
    """A data set is not on this machine and cannot be fetched (no internet, missing package).

    A ``FileNotFoundError``, so the command lines report it as a one-line error.
    """


def one_line(text):
    """``text`` with its whitespace (newlines included) collapsed, for one-line messages."""
    return " ".join(str(text).split())
