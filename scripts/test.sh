#!/usr/bin/env bash
# The one test command. `make test` runs it; CI runs .ci/run, which runs `make test`.
#
#   scripts/test.sh         everything: prerequisites, pinned tools, codegen check, lint, tests
#   scripts/test.sh quick   prerequisites and tests only (skips tools, codegen check and lint),
#                           for fast local iteration
#   scripts/test.sh lint    prerequisites and lint only (`make lint`)
#
# The tests run under `governor dev exec --temporal-memory`, which starts or reuses
# PostgreSQL (DATABASE_URL, else 127.0.0.1:5432, else a private cluster in .data/) and an
# in-memory, headless Temporal dev server (unless TEMPORAL_ADDRESS is set), exports
# GOVERNOR_TEST_DATABASE_URL and GOVERNOR_TEST_TEMPORAL_ADDRESS, and stops what it started.
# CI is passed through to the tests untouched (under CI=true a missing dependency fails a
# test instead of skipping it).
#
# Knobs (environment):
#   GOVERNOR_CHROMIUM the browser of the console's e2e test (default: /usr/bin/chromium)
#   GO_TEST_PACKAGES  packages to test            (default: ./...)
#   GO_TEST_FLAGS     flags for `go test`          (default: -race -count=1 -timeout 20m)
#   GO_FUZZ_TIME      how long each fuzz target runs in the full check (default: 8s; 0 skips)
# go test's -p and -parallel are left at Go's defaults (both follow the number of CPUs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=${1:-full}
case "$mode" in
  full | quick | lint) ;;
  *)
    echo "usage: $0 [quick|lint]" >&2
    exit 2
    ;;
esac

GO_TEST_PACKAGES=${GO_TEST_PACKAGES:-./...}
GO_TEST_FLAGS=${GO_TEST_FLAGS:--race -count=1 -timeout 20m}

# --- step headers and timing ---------------------------------------------------------------
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", e - s }'; }
total_start=$(now)
step_name=""
step_start=""
tmp=$(mktemp -d)

step() {
  end_step
  step_name=$1
  step_start=$(now)
  printf '\n==> %s\n' "$step_name"
}
end_step() {
  if [[ -n $step_name ]]; then
    printf -- '--- %s: ok (%s)\n' "$step_name" "$(since "$step_start")"
    step_name=""
  fi
}
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && -n $step_name ]]; then
    printf -- '--- %s: FAILED (exit %d, %s)\n' "$step_name" "$rc" "$(since "$step_start")"
    step_name=""
  fi
  end_step
  rm -rf "$tmp"
  if [[ $rc -eq 0 ]]; then
    printf '\n==> scripts/test.sh %s: PASS in %s\n' "$mode" "$(since "$total_start")"
  else
    printf '\n==> scripts/test.sh %s: FAIL in %s\n' "$mode" "$(since "$total_start")"
  fi
}
trap on_exit EXIT

ci() { [[ -n ${CI:-} && ${CI:-} != false && ${CI:-} != 0 ]]; }

# --- 1. prerequisites ----------------------------------------------------------------------
apt_install() {
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null; then
      sudo=(sudo)
    else
      echo "missing $*: install them (apt-get install $*); not root and no sudo" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "missing $*, and apt-get is not available: install them with your package manager" >&2
    return 1
  fi
  echo "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y "$@" || { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y "$@"; }
}

# ensure_go_toolchain makes `go` the version go.mod asks for. Go >= 1.21 switches toolchains
# by itself (from the module proxy) unless GOTOOLCHAIN=local; older Go (Debian 12's
# golang-go is 1.19) cannot, so the toolchain module is fetched from the proxy directly.
ensure_go_toolchain() {
  local want have
  want=$(awk '$1 == "toolchain" { print $2; exit }' go.mod)
  [[ -n $want ]] || want=go$(awk '$1 == "go" { print $2; exit }' go.mod)
  # From outside the module: a Go older than go.mod's line may refuse to run inside it.
  have=$(cd "$tmp" && GOTOOLCHAIN=local GO111MODULE=off go env GOVERSION)
  if [[ $(printf '%s\n%s\n' "${have#go}" "${want#go}" | sort -V | head -n1) == "${want#go}" ]]; then
    return 0 # have >= want
  fi
  if [[ $(printf '%s\n%s\n' "${have#go}" 1.21 | sort -V | head -n1) == 1.21 ]]; then
    echo "go is $have; go.mod wants $want: letting Go fetch it (GOTOOLCHAIN=$want)"
    export GOTOOLCHAIN=$want
    go version
    return 0
  fi
  echo "go is $have, too old to switch toolchains; fetching $want from the module proxy"
  local arch dir
  arch=$(go env GOARCH)
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "golang.org/toolchain@v0.0.1-$want.linux-$arch" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [[ -z $dir || ! -f $dir/bin/go ]]; then
    echo "could not fetch golang.org/toolchain@v0.0.1-$want.linux-$arch" >&2
    return 1
  fi
  # Module zips do not keep the executable bits (Go's own toolchain switch restores them too).
  chmod a+x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
  export PATH="$dir/bin:$PATH" GOROOT=$dir GOTOOLCHAIN=local
  go version
}

step "prerequisites (go, make, git, gcc)"
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v make >/dev/null || missing+=(make)
command -v git >/dev/null || missing+=(git)
command -v gcc >/dev/null || missing+=(gcc)
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
ensure_go_toolchain
go version

# The console: Node (npm ci, vite) to build it, Chromium to test it in a browser. Tests
# that need them fail without them (never skip), so install what is missing.
if [[ $mode == full || $mode == quick ]]; then
  step "prerequisites (node, npm, chromium)"
  missing=()
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  export GOVERNOR_CHROMIUM=${GOVERNOR_CHROMIUM:-/usr/bin/chromium}
  [[ -x $GOVERNOR_CHROMIUM ]] || missing+=(chromium)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  echo "node $(node --version), npm $(npm --version), $("$GOVERNOR_CHROMIUM" --version 2>/dev/null || echo "chromium at $GOVERNOR_CHROMIUM")"
fi

# --- 2. pinned tools -----------------------------------------------------------------------
if [[ $mode == full ]]; then
  step "tools (scripts/tools.sh install; built once per machine, then cached)"
  scripts/tools.sh install
fi

# --- 3. generated code is up to date -------------------------------------------------------
if [[ $mode == full ]]; then
  step "codegen check (scripts/gen.sh, then no diff under gen/, db/dbsqlc/ and web/src/gen/)"
  scripts/gen.sh
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    drift=$(git status --porcelain --untracked-files=all -- gen db/dbsqlc web/src/gen)
    if [[ -n $drift ]]; then
      echo "generated code is out of date or uncommitted; run scripts/gen.sh (make gen) and commit:" >&2
      echo "$drift" >&2
      git --no-pager diff --stat -- gen db/dbsqlc web/src/gen >&2
      git --no-pager diff -- gen db/dbsqlc web/src/gen >&2
      exit 1
    fi
  elif ci; then
    echo "not a git work tree: cannot check generated code for drift" >&2
    exit 1
  else
    echo "warning: not a git work tree; skipping the drift check" >&2
  fi
fi

# --- 4. lint -------------------------------------------------------------------------------
if [[ $mode == full || $mode == lint ]]; then
  step "lint: go vet"
  go vet ./...

  step "lint: staticcheck"
  "$(scripts/tools.sh path staticcheck)" ./...

  step "lint: buf lint, buf format"
  buf=$(scripts/tools.sh path buf)
  "$buf" lint
  "$buf" format -d --exit-code

  if [[ -d workflows ]] && [[ -n $(find workflows -name '*.go' -print -quit) ]]; then
    step "lint: workflowcheck ./workflows/..."
    "$(scripts/tools.sh path workflowcheck)" ./workflows/...
  fi
fi

# --- 5. fuzzing ----------------------------------------------------------------------------
# Every `func FuzzXxx` in the repository runs briefly, from its committed seed corpus
# (f.Add and testdata/fuzz). New failing inputs land in testdata/fuzz: commit them.
GO_FUZZ_TIME=${GO_FUZZ_TIME:-8s}
if [[ $mode == full && $GO_FUZZ_TIME != 0 ]]; then
  step "fuzz: every Fuzz target for ${GO_FUZZ_TIME}"
  while IFS=: read -r file name; do
    pkg=./$(dirname "$file")
    echo "fuzz $pkg $name"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$GO_FUZZ_TIME" "$pkg" >"$tmp/fuzz.log" 2>&1 || { cat "$tmp/fuzz.log"; exit 1; }
  done < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' --exclude-dir=gen --exclude-dir=node_modules . |
    sed -E 's|^\./||; s|:func |:|' | sort -u)
fi

# --- 6. tests ------------------------------------------------------------------------------
if [[ $mode == full || $mode == quick ]]; then
  # Before any Go build: the binary and the tests embed console/dist.
  step "console: scripts/web.sh build (npm ci from the lockfile, tsc, vite build, bundle budget)"
  scripts/web.sh build
  if [[ $mode == full ]]; then
    step "console: unit tests (scripts/web.sh test)"
    scripts/web.sh test
  fi

  step "build governor (for dev exec)"
  go build -o "$tmp/governor" ./cmd/governor

  read -r -a test_flags <<<"$GO_TEST_FLAGS"
  read -r -a test_packages <<<"$GO_TEST_PACKAGES"
  step "tests: go test ${test_flags[*]} ${test_packages[*]} (under governor dev exec --temporal-memory)"
  "$tmp/governor" dev exec --temporal-memory -- go test "${test_flags[@]}" "${test_packages[@]}"
fi
