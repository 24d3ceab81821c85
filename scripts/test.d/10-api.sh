#!/usr/bin/env bash
# Evidence store + JSON API (evidence-api, evidence-api/record): unit, integration, property and crash tests.
# The crash and CLI tests drive the real `vkae` binary, so it is built first.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p vkae-site --bin vkae
cargo test -p vkae-record -p vkae-evidence
