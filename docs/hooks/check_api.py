"""MkDocs hook (mkdocs.yml ``hooks:``): every public symbol of the API pages is documented.

The public API is every name in the ``__all__`` of the packages in ``PUBLIC_API`` (for a module
without ``__all__``: its public classes and functions, those defined in it). For each public
class or function it logs a warning, which fails ``mkdocs build --strict``, when

- it has no docstring;
- a parameter of the function, or of the class's ``__init__``, is not named in the docstring
  (the class's or its ``__init__``'s). Named means: an entry of a Google-style section
  (``Args:``), a definition line ``name: ...``, or the name in backticks
  (``\u0060\u0060name\u0060\u0060``, ``\u0060name=...\u0060``, ``\u0060**kwargs\u0060``), which is how
  the code documents arguments in prose. ``self`` and ``cls`` are exempt.

The source is read by griffe (no import: nothing loads TensorFlow). Run it alone to list the
undocumented symbols: ``.venv/bin/python docs/hooks/check_api.py`` (exit status 1 if any).
"""
from __future__ import annotations

import logging
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import griffe  # noqa: E402
from griffe_project import load_api  # noqa: E402

PUBLIC_API = (
    "keras_optim",
    "tff_experiments.asynchronous",
    "tff_experiments.robust",
    "tff_experiments.program",
    "tff_experiments.data",
    # the data sets' own modules, which the data page documents too
    "tff_experiments.data.digits",
    "tff_experiments.data.mnist",
    "tff_experiments.data.partitions",
    "tff_experiments.data.shakespeare",
    "tff_experiments.data.in_memory",
    "tff_experiments.data.synthetic",
    "tff_experiments.data.synthetic_federated",
    "tff_experiments.data.real",
    "tff_experiments.models",
    "tff_experiments.tff_optimizers",
    # the Flower app: a package without exports, documented module by module
    "flower_async.settings",
    "flower_async.tasks",
    "flower_async.server_optimizer",
    "flower_async.run_log",
    "flower_async.node_failures",
    "flower_async.server_loop",
    "flower_async.server_app",
    "flower_async.client_app",
    "flower_async.certificates",
    "flower_async.local",
)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PARAMETER_SECTIONS = (griffe.DocstringSectionKind.parameters, griffe.DocstringSectionKind.other_parameters)

log = logging.getLogger("mkdocs.hooks.check_api")


def public_names(module):
    """The module's ``__all__``, or its public classes and functions defined in it."""
    if module.exports is not None:
        return [name for name in module.exports if isinstance(name, str)]
    return [name for name, obj in module.members.items()
            if not name.startswith("_") and not obj.is_alias and (obj.is_class or obj.is_function)]


def _documented_names(docstring):
    names = set()
    try:
        sections = docstring.parse(griffe.Parser.google, warnings=False)
    except Exception:  # a docstring the parser chokes on still counts by its text
        sections = []
    for section in sections:
        if section.kind in _PARAMETER_SECTIONS:
            names.update(item.name.lstrip("*") for item in section.value)
    return names


def _is_named(name, text, documented):
    if name in documented:
        return True
    word = re.escape(name)
    return bool(re.search(rf"`+\**{word}\b", text)
                or re.search(rf"^\s*\**{word}\s*(\([^)\n]*\))?\s*:", text, re.MULTILINE))


def _own_docstrings(obj):
    """The docstrings that document ``obj``'s parameters: its own, and for a class its
    ``__init__``'s."""
    docstrings = [obj.docstring] if obj.docstring else []
    if obj.is_class:
        init = obj.all_members.get("__init__")
        if init is not None and init.docstring:
            docstrings.append(init.docstring)
    return docstrings


def _parameters(obj):
    try:
        parameters = list(obj.parameters)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError, KeyError):
        return []
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return parameters


def problems(collection, public_api=PUBLIC_API):
    """``(public path, message)`` for every undocumented public symbol or parameter of the
    modules ``public_api`` in ``collection``."""
    found = []
    for module_path in public_api:
        module = collection.get_member(module_path)
        for name in public_names(module):
            path = f"{module_path}.{name}"
            member = module.members.get(name)
            if member is None:
                found.append((path, "is in __all__ but is not found in the source"))
                continue
            try:
                obj = member.final_target if member.is_alias else member
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                found.append((path, f"cannot be resolved ({member.target_path})"))
                continue
            if obj.is_module and name in obj.members and not obj.members[name].is_alias:
                obj = obj.members[name]  # a function exported under its own module's name
            if not (obj.is_class or obj.is_function):
                continue  # constants and modules: the page shows their value or members
            docstrings = _own_docstrings(obj)
            if not any(d.value.strip() for d in docstrings):
                found.append((path, f"has no docstring ({obj.relative_filepath}:{obj.lineno})"))
                continue
            text = "\n".join(d.value for d in docstrings)
            documented = set().union(*(_documented_names(d) for d in docstrings))
            missing = [p.name for p in _parameters(obj) if not _is_named(p.name, text, documented)]
            if missing:
                found.append((path, "does not document its parameter(s) "
                              + ", ".join(f"`{p}`" for p in missing)
                              + f" ({obj.relative_filepath}:{obj.lineno})"))
    return found


def on_pre_build(config, **kwargs):
    """MkDocs event: one warning per problem (``--strict`` turns them into a failure)."""
    griffe_logger = logging.getLogger("griffe")
    level = griffe_logger.level
    griffe_logger.setLevel(logging.ERROR)  # mkdocstrings reports the docstrings' own warnings
    try:
        found = problems(load_api([ROOT]))
    finally:
        griffe_logger.setLevel(level)
    for path, message in found:
        log.warning("undocumented public API: %s %s", path, message)


def main():
    logging.getLogger("griffe").setLevel(logging.ERROR)
    found = problems(load_api([ROOT]))
    for path, message in found:
        print(f"{path} {message}")
    print(f"{len(found)} undocumented public symbol(s)" if found else "every public symbol is documented")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
