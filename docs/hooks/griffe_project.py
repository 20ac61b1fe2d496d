"""Griffe extensions for this project's API pages (mkdocs.yml loads them through mkdocstrings, and
``docs/hooks/check_api.py`` through ``load_api``). Griffe reads the source and imports nothing.

- ``LazyExports``: a package may export names that its ``__getattr__`` imports on first use (so
  that importing it imports neither TensorFlow nor TFF), e.g. ``tff_experiments.asynchronous``'s
  ``AsynchronousDriver``. Static analysis does not see those; for every name of the package's
  ``__all__`` that is not a member, this adds an alias to the one object of that name defined at
  the top level of one of the package's submodules. The submodule is found by searching, not
  written down here, so the files inside a package can move while its exports stay put.
- ``RstMath``: the docstrings write math as reStructuredText (``:math:`x```, ``.. math::``
  blocks); on the site it becomes ``$x$`` and ``$$...$$`` for MathJax (pymdownx.arithmatex).
"""
from __future__ import annotations

import re
import textwrap

import griffe

API_PACKAGES = ("keras_optim", "tff_experiments", "flower_async")


def _defined_objects(module, name):
    """The objects named ``name`` defined (not imported) at the top level of ``module`` and of
    its submodules, at any depth."""
    found = []
    member = module.members.get(name)
    if member is not None and not member.is_alias:
        found.append(member)
    for sub in module.modules.values():
        if not sub.is_alias:
            found.extend(_defined_objects(sub, name))
    return found


class LazyExports(griffe.Extension):
    """Aliases for the names of ``__all__`` that a package's ``__getattr__`` provides."""

    def on_package(self, *, pkg, loader, **kwargs):
        self._complete(pkg)

    def _complete(self, module):
        for sub in list(module.modules.values()):
            if not sub.is_alias:
                self._complete(sub)
        if not module.is_init_module or "__getattr__" not in module.members or not module.exports:
            return
        source = "\n".join(module.lines)
        for name in module.exports:
            if not isinstance(name, str) or name in module.members:
                continue
            candidates = [obj for obj in _defined_objects(module, name) if obj.parent is not module]
            if len(candidates) > 1:  # prefer the submodule the package's own code names
                named = [obj for obj in candidates
                         if obj.parent.path in source or f'"{obj.parent.name}"' in source
                         or f"'{obj.parent.name}'" in source]
                candidates = named or candidates
            if len(candidates) == 1:
                target = candidates[0]
                module.set_member(name, griffe.Alias(name, target, parent=module))


_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)+)",
                         re.MULTILINE)


def rst_math_to_markdown(text):
    """``:math:`x``` -> ``$x$``; a ``.. math::`` directive and its indented body -> ``$$...$$``."""

    def block(match):
        indent = match.group("indent")
        body = textwrap.dedent(match.group("body")).strip("\n")
        return f"{indent}$$\n{textwrap.indent(body, indent)}\n{indent}$$\n\n"

    text = _MATH_BLOCK.sub(block, text if text.endswith("\n") else text + "\n")
    # Python source writes a backslash as "\\" in non-raw docstrings: griffe gives the value.
    return _INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text).rstrip("\n")


# "name: >= 0, ..." in an Args section: Markdown would read the description as a block quote.
_QUOTE_LIKE = re.compile(r"^(?P<head>[ \t]+\**\w+(?:[ \t]*\([^)\n]*\))?:[ \t]+)>", re.MULTILINE)


def docstring_to_markdown(text):
    """What the site renders of a docstring: its math for MathJax, argument descriptions that
    start with ``>`` (``>= 0``) escaped."""
    if "math:" in text:
        text = rst_math_to_markdown(text)
    return _QUOTE_LIKE.sub(lambda m: m.group("head") + "\\>", text)


class RstMath(griffe.Extension):
    """Rewrites every docstring for the site: reStructuredText math for MathJax, and argument
    descriptions starting with ``>`` escaped (Markdown would make them block quotes)."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = docstring_to_markdown(obj.docstring.value)


def load_api(search_paths=(".",), packages=API_PACKAGES):
    """The ``packages`` as griffe sees them on the site (from the source found in
    ``search_paths``): their modules collection."""
    loader = griffe.GriffeLoader(
        search_paths=list(search_paths),
        extensions=griffe.load_extensions(LazyExports, RstMath),
        docstring_parser=griffe.Parser.google,
    )
    for package in packages:
        loader.load(package)
    loader.resolve_aliases(implicit=False, external=None)
    return loader.modules_collection
