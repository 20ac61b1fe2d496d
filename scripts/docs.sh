#!/usr/bin/env bash
# The documentation site (mkdocs.yml, pages in docs/, API pages from the docstrings):
#   bash scripts/docs.sh              serve it on http://127.0.0.1:8000, rebuilt as files change
#   bash scripts/docs.sh build        build it into site/ in strict mode, as CI does: a broken
#                                     link, a page missing from the nav or an undocumented public
#                                     symbol (docs/hooks/check_api.py) fails it
# Extra arguments go to mkdocs (e.g. bash scripts/docs.sh serve --dev-addr 127.0.0.1:8001).
# MkDocs lives in .venv (requirements/docs.txt), built by scripts/setup_envs.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mkdocs ] || bash scripts/setup_envs.sh
export NO_MKDOCS_2_WARNING=1  # Material's notice about MkDocs 2, printed on every run
command=${1:-serve}
[ $# -eq 0 ] || shift
case $command in
  serve) exec .venv/bin/mkdocs serve --dev-addr 127.0.0.1:8000 "$@" ;;
  build) exec .venv/bin/mkdocs build --strict --site-dir site "$@" ;;
  *) echo "usage: bash scripts/docs.sh [serve|build] [mkdocs arguments...]" >&2; exit 2 ;;
esac
