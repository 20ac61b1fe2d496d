"""The optimizers that the several-process checks train (multi_worker_check, multi_process_check):
one table, so that the two paths and their tests hold the same cases."""

NAMES = ("AdaBelief", "DiffGrad", "Adam(coordinate_clip=0.1)", "CoordinateClipping(keras SGD)")


def optimizers(keras):
    """``{name: factory}`` of NAMES, with ``keras`` the process's Keras (its SGD under the wrapper)."""
    import keras_optim

    return {
        "AdaBelief": lambda: keras_optim.AdaBelief(learning_rate=0.01),
        "DiffGrad": lambda: keras_optim.DiffGrad(learning_rate=0.01),
        "Adam(coordinate_clip=0.1)": lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.1),
        "CoordinateClipping(keras SGD)": lambda: keras_optim.CoordinateClipping(
            keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), 0.2),
    }
