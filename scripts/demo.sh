#!/usr/bin/env bash
# The main job: builds both environments if needed, then trains a small CNN on scikit-learn's
# handwritten digits with AdaBelief, diffGrad and Adam (Keras 3), printing test accuracies and
# saving the loss curves to examples/output/digits_demo_loss.png. TensorFlow's C++ log lines are
# hidden by the demo itself unless TF_CPP_MIN_LOG_LEVEL is set (e.g. 0 to see them all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_envs.sh
exec .venv/bin/python examples/digits_demo.py "$@"
