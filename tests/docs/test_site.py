"""The documentation site builds with ``mkdocs build --strict`` (what ``bash scripts/docs.sh build``
runs): a broken link or anchor, a page missing from the nav, a docstring that mkdocstrings
cannot render, or an undocumented public symbol (the hook ``docs/hooks/check_api.py``) fails
it. mkdocs is installed in ``.venv`` only (requirements/docs.txt): elsewhere these tests skip.
"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOOKS = os.path.join(ROOT, "docs", "hooks")

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("griffe") is None,
    reason="needs mkdocs and mkdocstrings (requirements/docs.txt, installed in .venv)")


@needs_mkdocs
def test_site_builds_in_strict_mode(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or [output[-4000:]])
    assert (tmp_path / "site" / "reference" / "keras_optim" / "index.html").exists()


@pytest.fixture
def check_api():
    sys.path.insert(0, HOOKS)
    try:
        import check_api
        import griffe_project
        yield check_api, griffe_project
    finally:
        sys.path.remove(HOOKS)


@needs_mkdocs
def test_the_api_check_finds_what_is_undocumented(tmp_path, check_api):
    check, project = check_api
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''\
        """A package whose __getattr__ imports some names on first use."""
        from fakepkg.impl import documented, undocumented, partly, Documented, Undocumented


        def __getattr__(name):
            if name == "lazy":
                from fakepkg.lazy_impl import lazy
                return lazy
            if name == "shadow":  # a function named as its own module
                from fakepkg.shadow import shadow
                return shadow
            raise AttributeError(name)


        __all__ = ["documented", "undocumented", "partly", "Documented", "Undocumented", "lazy",
                   "shadow", "missing", "CONSTANT"]
        CONSTANT = 3
        '''))
    (package / "impl.py").write_text(textwrap.dedent('''\
        def documented(x, seed=0, **kwargs):
            """Uses ``x`` and the ``seed``.

            Args:
              **kwargs: passed on.
            """


        def undocumented(x):
            return x


        def partly(x, y):
            """Only ``x`` is named."""


        class Documented:
            """A class.

            Args:
              a: the a.
            """

            def __init__(self, a, b=1):
                """``b``: the b."""


        class Undocumented:
            def __init__(self, a):
                pass
        '''))
    (package / "lazy_impl.py").write_text('def lazy(z):\n    """No parameter named."""\n')
    (package / "shadow.py").write_text('def shadow(w):\n    """Nor here."""\n')
    collection = project.load_api([str(tmp_path)], packages=("fakepkg",))
    found = dict(check.problems(collection, ("fakepkg",)))
    assert set(found) == {"fakepkg.undocumented", "fakepkg.partly", "fakepkg.Undocumented",
                          "fakepkg.lazy", "fakepkg.shadow", "fakepkg.missing"}, found
    assert "no docstring" in found["fakepkg.undocumented"]
    assert "`y`" in found["fakepkg.partly"] and "`x`" not in found["fakepkg.partly"]
    assert "`z`" in found["fakepkg.lazy"]  # the lazy export is found in its submodule
    assert "`w`" in found["fakepkg.shadow"]  # the function, not its module
    assert "not found" in found["fakepkg.missing"]


@needs_mkdocs
def test_the_project_api_is_loaded_with_its_lazy_exports(check_api):
    _, project = check_api
    collection = project.load_api([ROOT])
    asynchronous = collection.get_member("tff_experiments.asynchronous")
    robust = collection.get_member("tff_experiments.robust")
    for module in (asynchronous, robust, collection.get_member("keras_optim")):
        missing = [name for name in module.exports if name not in module.members]
        assert not missing, f"{module.path}: {missing} not found by griffe"
