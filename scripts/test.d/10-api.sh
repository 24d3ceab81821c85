#!/usr/bin/env bash
# Domain types + evidence store + JSON API (domain, evidence-api, evidence-api/record): unit, integration, property and crash tests.
# The crash and CLI tests drive the real `vkae` binary, so it is built first.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p vkae-site --bin vkae
cargo test -p vkae-domain -p vkae-record -p vkae-evidence
