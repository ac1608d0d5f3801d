#!/usr/bin/env bash
# `make dev`: builds the governor binary (saying so: the first build downloads the Go
# modules and takes a few minutes) and runs `governor dev` in place of this script, so a
# clean Ctrl-C ends with governor's own exit status (0), not make's "Error 130".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/progress.sh

bin=.cache/bin/governor
mkdir -p "$(dirname "$bin")"
if [[ ! -x $bin ]] || [[ -n $(find cmd api internal db workflows activities workers gen go.mod go.sum -newer "$bin" -print -quit 2>/dev/null) ]]; then
  if [[ -z $(go env GOMODCACHE 2>/dev/null) || ! -d $(go env GOMODCACHE)/go.temporal.io ]]; then
    echo "governor dev: first build: downloading Go modules and compiling (about 3-6 minutes on 2 cores; later builds take seconds)"
  else
    echo "governor dev: building governor"
  fi
  with_progress "building governor" go build -o "$bin" ./cmd/governor
fi
exec "$bin" dev "$@"
