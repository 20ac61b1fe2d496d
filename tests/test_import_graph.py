"""The project's import graph: no circle, and no import from a lower layer to a higher one.

Every ``import`` of every module counts, those inside functions too (a lazy import is still a
dependency). The layers, lowest first, are the layout's contract: a newcomer reads a module's
place in them as its job. Within a track, the modules are ordered the same way: the schemes'
names and checks, the settings, the TFF parts, the run's state, the program, the experiment,
the command line.
"""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_optim", "tff_experiments", "flower_async")

# (module prefix, layer): the longest matching prefix decides.
LAYERS = {
    "keras_optim": 0,
    "tff_experiments": 1,  # the package itself: a docstring and no run-time behaviour
    "tff_experiments.runtime": 1,
    "tff_experiments.lazy_names": 1,
    "tff_experiments.command_line": 1,
    "tff_experiments.data": 1,
    "tff_experiments.models": 2,
    "tff_experiments.tff_optimizers": 2,
    "tff_experiments.workers": 2,  # TFF executor services: remote runs, TLS, the worker command
    "tff_experiments.program": 3,
    "tff_experiments.asynchronous": 4,
    "tff_experiments.robust": 4,
    "tff_experiments.fedfix": 5,  # the command lines' aliases
    "tff_experiments.monna": 5,
    "flower_async": 6,  # Flower's deployment engine, driving the asynchronous track's rules
}
TRACKS = ("tff_experiments.asynchronous", "tff_experiments.robust", "flower_async")
# Inside each track, lowest first; a module not named is a leaf of the first group.
TRACK_ORDER = {
    "tff_experiments.asynchronous": [
        ("client_times", "schedule", "population"),
        ("rules", "virtual_clock"),
        ("fedavg", "async_fedavg", "fedfix", "fedbuff"),
        ("algorithms",),
        ("settings",),
        ("local_data", "group_values", "batched_model", "batched_group_work", "evaluation"),
        ("group_work",),
        ("process",),
        ("driver",),
        ("data_source", "program"),
        ("experiment",),
        ("__init__",),
        ("cli",),
        ("__main__",),
    ],
    "flower_async": [
        ("settings", "tasks", "server_optimizer", "run_log", "certificates"),
        ("server_loop",),
        ("server_app", "client_app"),
        ("local",),
        ("__init__",),
        ("__main__",),
    ],
    "tff_experiments.robust": [
        ("choices", "gather", "nna", "coordinatewise", "geometric_median", "centered_clipping", "krum"),
        ("settings", "rules", "attacks", "aggregators"),
        ("process",),
        ("experiment",),
        ("__init__",),
        ("cli",),
        ("__main__",),
    ],
}


def project_modules():
    """``{module name: path}`` of every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name, path, modules):
    """The project modules that ``name`` imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from package import module`` depends on that module, not on the package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(module):
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(prefixes, key=len)]


def rank_in_track(module):
    """``(track, rank)`` of a track's module, or ``None``."""
    for track, groups in TRACK_ORDER.items():
        if module == track or module.startswith(track + "."):
            leaf = "__init__" if module == track else module[len(track) + 1:].split(".")[0]
            for rank, group in enumerate(groups):
                if leaf in group:
                    return track, rank
            return track, 0
    return None


def find_circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, circles = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def upward_imports(graph):
    """``(importer, imported)`` pairs that go against the layers or the tracks' order."""
    wrong = []
    for module, targets in graph.items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                wrong.append((module, target))
                continue
            mine, theirs = rank_in_track(module), rank_in_track(target)
            if mine and theirs and mine[0] != theirs[0] and layer_of(module) == layer_of(target):
                wrong.append((module, target))  # a track imports another track of its layer
            elif mine and theirs and mine[0] == theirs[0] and theirs[1] > mine[1]:
                wrong.append((module, target))
    return sorted(wrong)


def test_every_module_has_a_layer():
    assert all(layer_of(module) is not None for module in project_modules())


def test_the_import_graph_has_no_circle():
    assert find_circles(import_graph()) == []


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph()) == []


@pytest.mark.parametrize("graph, circles, upward", [
    ({"tff_experiments.program.training": {"tff_experiments.asynchronous.driver"},
      "tff_experiments.asynchronous.driver": set()}, [],
     [("tff_experiments.program.training", "tff_experiments.asynchronous.driver")]),
    ({"tff_experiments.robust.settings": {"tff_experiments.robust.rules"},
      "tff_experiments.robust.rules": {"tff_experiments.robust.settings"}},
     [["tff_experiments.robust.rules", "tff_experiments.robust.settings"]], []),
    ({"tff_experiments.asynchronous.settings": {"tff_experiments.asynchronous.experiment"},
      "tff_experiments.asynchronous.experiment": set()}, [],
     [("tff_experiments.asynchronous.settings", "tff_experiments.asynchronous.experiment")]),
    ({"tff_experiments.robust.process": {"tff_experiments.asynchronous.process"},
      "tff_experiments.asynchronous.process": set()}, [],
     [("tff_experiments.robust.process", "tff_experiments.asynchronous.process")]),
    # a higher layer's track may import any module of a lower layer's track, whatever its rank
    ({"flower_async.settings": {"tff_experiments.asynchronous.experiment"},
      "tff_experiments.asynchronous.experiment": set()}, [], []),
])
def test_the_checks_find_what_they_look_for(graph, circles, upward):
    assert find_circles(graph) == circles
    assert upward_imports(graph) == upward


def test_imports_inside_functions_and_relative_imports_count(tmp_path, monkeypatch):
    package = tmp_path / "tff_experiments"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n")
    (package / "b.py").write_text("import tff_experiments.a\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "PACKAGES", ("tff_experiments",))
    graph = import_graph()
    assert graph["tff_experiments.a"] == {"tff_experiments.b"}
    assert find_circles(graph) == [["tff_experiments.a", "tff_experiments.b"]]
