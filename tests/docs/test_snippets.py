"""Every ```python block of the README and of the documentation pages (docs/**/*.md) runs as
written: each in a fresh Python (this test's interpreter) in its own temporary folder.

A block runs where what it needs is installed, and is skipped (with the reason) elsewhere:
TFF for a block that names ``tensorflow_federated`` or ``tff_experiments`` (``.venv-tff``),
Keras 3 for a block marked ``keras3``. A marker is an HTML comment on the last non-blank line
before the block, ``<!-- snippet: TAG, ... -->``, with the tags

- ``continue``: run after the previous block of the page (which it continues, e.g. using its
  ``model``), in the same process;
- ``keras3``: needs Keras 3;
- ``skip``: a deliberate fragment, never run (use sparingly: prefer a short complete example).

``bash`` and ``text`` blocks are not run: the command lines' own tests cover them.
"""
import glob
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
TAGS = {"continue", "keras3", "skip"}
TIMEOUT_S = 600

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<tags>[\w\s,-]+?)\s*-->\s*$")


def extract_blocks(text):
    """``[(line, language, code, tags)]`` for every fenced block of a Markdown text (1-based line
    of the opening fence; the code dedented by the fence's indentation)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        language = (opening.group("info").split() or [""])[0].lower()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence)}[ \t]*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = _MARKER.match(lines[k]) if k >= 0 else None
        tags = {t.strip() for t in marker.group("tags").split(",")} if marker else set()
        unknown = tags - TAGS
        if unknown:
            raise ValueError(f"line {k + 1}: unknown snippet tag(s) {sorted(unknown)}; known: {sorted(TAGS)}")
        blocks.append((i + 1, language, textwrap.dedent("\n".join(body)) + "\n", tags))
        i = j + 1
    return blocks


def python_snippets():
    """``(id, code, needs)`` of every Python block to run, ``continue`` blocks joined to the
    block they continue. ``needs`` is a set of ``tff``, ``keras3``, ``skip``."""
    snippets = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            blocks = extract_blocks(f.read())
        previous = None
        for line, language, code, tags in blocks:
            if language not in ("python", "py"):
                continue
            needs = tags & {"keras3", "skip"}
            if "continue" in tags:
                if previous is None:
                    raise ValueError(f"{page}:{line}: a `continue` block with no Python block before it")
                code = previous[0] + "\n" + code
                needs |= previous[1]
            if "tensorflow_federated" in code or "tff_experiments" in code:
                needs.add("tff")
            previous = (code, needs)
            snippets.append((f"{page}:{line}", code, needs))
    return snippets


def _has(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _keras_major():
    if not _has("keras"):
        return None
    out = subprocess.run([sys.executable, "-c", "import keras; print(keras.__version__)"],
                         capture_output=True, text=True, env=_env(), timeout=300)
    return int(out.stdout.strip().split(".")[0]) if out.returncode == 0 else None


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_block(code, workdir, timeout=TIMEOUT_S):
    """Runs ``code`` as a script in ``workdir``, in a process group of its own; returns its
    output, or raises an ``AssertionError`` with it unless it exits with status 0 in time.

    The output goes to a file, not a pipe, and the group is killed when the script ends: a
    process the block leaves behind (TFF's ``worker_binary``) neither holds the test up nor
    outlives it."""
    script = os.path.join(workdir, "snippet.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(code)
    log = os.path.join(workdir, "snippet.log")
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, script], cwd=workdir, env=_env(), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = f"none: still running after {timeout} s"
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
    with open(log, encoding="utf-8", errors="replace") as f:
        output = f.read()
    if status != 0:
        raise AssertionError(
            f"the block exited with status {status}\n--- code ---\n{code}"
            f"--- output (last 4000 characters) ---\n{output[-4000:]}")
    return output


SNIPPETS = python_snippets()
HAVE_TFF = _has("tensorflow_federated")


@pytest.fixture(scope="module")
def keras_major():
    return _keras_major()


@pytest.mark.parametrize("code, needs", [s[1:] for s in SNIPPETS], ids=[s[0] for s in SNIPPETS])
def test_python_block_runs(code, needs, tmp_path, keras_major):
    if "skip" in needs:
        pytest.skip("a fragment, marked <!-- snippet: skip --> in the page")
    if "tff" in needs and not HAVE_TFF:
        pytest.skip("needs TensorFlow Federated (.venv-tff)")
    if keras_major is None:
        pytest.skip("needs Keras")
    if "keras3" in needs and keras_major < 3:
        pytest.skip("needs Keras 3 (.venv)")
    run_block(code, str(tmp_path))


def test_the_pages_have_python_blocks():
    # A parser that finds nothing would pass every page: the guides do have runnable blocks.
    assert len(SNIPPETS) >= 10, [s[0] for s in SNIPPETS]


def test_a_failing_block_fails(tmp_path):
    with pytest.raises(AssertionError, match="exited with status 3"):
        run_block("import sys\nprint('about to fail')\nsys.exit(3)\n", str(tmp_path))
    with pytest.raises(AssertionError, match="NameError"):
        run_block("model.compile(optimizer='adam')\n", str(tmp_path))


def test_markers_and_continuations_are_read():
    text = textwrap.dedent("""\
        ```python
        x = 1
        ```

        <!-- snippet: continue -->
        ```python
        print(x)
        ```

        1. a list item
           ```bash
           echo not python
           ```

        <!-- snippet: skip -->
        ```python
        model.compile(optimizer=..., loss=...)
        ```
        """)
    blocks = extract_blocks(text)
    assert [(b[1], b[3]) for b in blocks] == [
        ("python", set()), ("python", {"continue"}), ("bash", set()), ("python", {"skip"})]
    assert blocks[2][2] == "echo not python\n"
    with pytest.raises(ValueError, match="unknown snippet tag"):
        extract_blocks("<!-- snippet: skpi -->\n```python\npass\n```\n")
