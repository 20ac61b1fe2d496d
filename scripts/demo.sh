#!/usr/bin/env bash
# The main job: builds both environments if needed, then trains a small CNN on scikit-learn's
# handwritten digits with AdaBelief, diffGrad and Adam (Keras 3), printing test accuracies and
# saving the loss curves to examples/output/digits_demo_loss.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_envs.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
exec .venv/bin/python examples/digits_demo.py "$@"
