#!/usr/bin/env bash
# vkae-engine serve: the recipe/sampling/metrics unit tests, the Gemma tokenizer check against the PyPI
# tokenizers package and transformers' Jinja set-up, and the end-to-end suite (the official openai client and
# raw HTTP against the server on port 0 over the CPU fixture models). Needs scripts/setup.d/40-python.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export VKAE_REQUIRE_SERVE_DEPS=1
cargo test -p vkae-engine --lib serve::
cargo test -p vkae-engine --test serve_tokenizer
cargo build -p vkae-engine --bin vkae-engine
export VKAE_ENGINE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/vkae-engine"
.venv/bin/python -m pytest -q -p no:cacheprovider engine/tests/serve
