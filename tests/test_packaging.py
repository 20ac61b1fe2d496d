"""The core package stands alone: keras_optim never imports TFF."""
import subprocess
import sys


def test_keras_optim_imports_without_tff():
    code = (
        "import sys, keras_optim, keras_optim.math, keras_optim.optimizers;"
        "print(sorted(m for m in sys.modules if m.startswith('tensorflow_federated')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
