#!/usr/bin/env bash
# Builds the web console (web/) into console/dist, which the governor binary embeds.
#
#   scripts/web.sh deps     npm ci against web/package-lock.json, cached outside the repository
#                           by the lockfile's hash, linked as web/node_modules
#   scripts/web.sh build    deps, then type check and vite build into console/dist (skipped when
#                           the sources are unchanged since the last build), then the budget check
#   scripts/web.sh budget   the initial route's gzip size against its budget (fails above it)
#   scripts/web.sh test     the console's unit tests (vitest)
#
# GOVERNOR_CACHE (default ~/.cache/governor) holds npm/<hash>/node_modules, one per lockfile.
# GOVERNOR_CONSOLE_BUDGET_KB (default 250) is the budget.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache="${GOVERNOR_CACHE:-$HOME/.cache/governor}"
budget_kb=${GOVERNOR_CONSOLE_BUDGET_KB:-250}
# Never let an npm package fetch a browser: the tests drive Debian's Chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

need_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "web.sh: node and npm are required (Node >= 20.19; scripts/test.sh installs them)" >&2
    exit 1
  fi
  local v
  v=$(node -p 'process.versions.node')
  if [[ $(printf '%s\n%s\n' "$v" 20.19.0 | sort -V | head -n1) != 20.19.0 ]]; then
    echo "web.sh: Node $v is too old; Vite needs >= 20.19" >&2
    exit 1
  fi
}

deps() {
  need_node
  local hash dir
  # The platform is part of the key: some packages ship native binaries per platform.
  hash=$( (cat web/package-lock.json; node -p 'process.platform + "-" + process.arch + "-node" + process.versions.node.split(".")[0]') |
    sha256sum | cut -c1-32)
  dir="$cache/npm/$hash"
  if [[ ! -d $dir/node_modules ]]; then
    echo "web.sh: npm ci (web/package-lock.json, into $dir)" >&2
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    cp web/package.json web/package-lock.json "$dir.tmp/"
    # No install scripts: nothing here needs one, and they are how npm packages get hijacked.
    (cd "$dir.tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  if [[ -L web/node_modules ]]; then
    [[ $(readlink web/node_modules) == "$dir/node_modules" ]] && return 0
    rm web/node_modules
  elif [[ -e web/node_modules ]]; then
    echo "web.sh: replacing web/node_modules with the cached install of the lockfile" >&2
    rm -rf web/node_modules
  fi
  ln -s "$dir/node_modules" web/node_modules
}

# The build's inputs, hashed: a build with the same inputs is skipped.
source_hash() {
  {
    find web/src web/public web/index.html web/vite.config.ts web/tsconfig.json web/package.json web/package-lock.json \
      -type f 2>/dev/null | LC_ALL=C sort | xargs sha256sum
    node -p 'process.versions.node'
  } | sha256sum | cut -c1-64
}

build() {
  deps
  local want
  want=$(source_hash)
  if [[ -f console/dist/index.html && -f console/dist/.build-hash && $(cat console/dist/.build-hash) == "$want" ]]; then
    echo "web.sh: console/dist is up to date with web/ (build $(cut -c1-12 console/dist/.build-hash))" >&2
  else
    echo "web.sh: building the console (tsc, vite build into console/dist)" >&2
    (cd web && node_modules/.bin/tsc --noEmit -p . && node_modules/.bin/vite build --logLevel warn >&2)
    # Vite empties the folder; the placeholder keeps `go build` working on a fresh clone.
    touch console/dist/.keep
    echo "$want" >console/dist/.build-hash
  fi
  budget
}

budget() {
  need_node
  node web/scripts/budget.mjs console/dist "$budget_kb"
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  budget) budget ;;
  test)
    deps
    (cd web && node_modules/.bin/vitest run)
    ;;
  *)
    echo "usage: $0 deps | build | budget | test" >&2
    exit 2
    ;;
esac
