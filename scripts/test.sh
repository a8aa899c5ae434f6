#!/usr/bin/env bash
# Set everything up, then run the default test suite (slow tests excluded
# unless KERAS_WRN_SLOW=1). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
# Two workers (pytest-xdist), one test file each at a time so module fixtures are built once.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile tests "$@"
