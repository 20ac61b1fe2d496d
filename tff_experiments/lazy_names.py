"""Package names that import their module on first use, so that importing a package stays cheap
(the schedules, settings and command-line checks need neither TensorFlow nor TFF)."""
import importlib


def lazy_getattr(package, modules):
    """A module-level ``__getattr__`` for ``package``: a name of ``modules`` (``{name: module}``)
    imports ``package.module`` when first asked for.

    Args:
      package: the package's name (``__name__``).
      modules: ``{public name: name of the submodule that defines it}``.
    """

    def __getattr__(name):
        if name in modules:
            return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
