#!/usr/bin/env bash
# Installs the project's pinned tools into a cache outside the repository and prints the
# path of the one asked for. Builds happen once per version per machine (sqlc, buf and the
# Temporal CLI take minutes cold); later calls are instant.
#
#   scripts/tools.sh path <tool>     print the binary's path, building it if missing
#   scripts/tools.sh install [tool…] build the named tools (all when none are named)
#
# GOVERNOR_CACHE (default ~/.cache/governor) holds the builds, one folder per version.
set -euo pipefail

# name=module-path@version. Bump a version here and every script and CI run follows.
TOOLS=(
  "sqlc=github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1"
  "buf=github.com/bufbuild/buf/cmd/buf@v1.75.0"
  "protoc-gen-go=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "protoc-gen-connect-go=connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1"
  "temporal=github.com/temporalio/cli/cmd/temporal@v1.5.1"
  "staticcheck=honnef.co/go/tools/cmd/staticcheck@v0.8.2"
  "workflowcheck=go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0"
)

cache="${GOVERNOR_CACHE:-$HOME/.cache/governor}"
# shellcheck source=scripts/progress.sh
source "$(dirname "${BASH_SOURCE[0]}")/progress.sh"

spec_of() {
  local t
  for t in "${TOOLS[@]}"; do
    if [[ "${t%%=*}" == "$1" ]]; then echo "${t#*=}"; return 0; fi
  done
  echo "tools.sh: unknown tool $1" >&2
  return 1
}

dir_of() { # the cache folder for a tool at its pinned version
  local spec version
  spec=$(spec_of "$1")
  version=${spec##*@}
  echo "$cache/tools/$1-$version"
}

install_one() {
  local name=$1 spec dir
  spec=$(spec_of "$name")
  dir=$(dir_of "$name")
  if [[ -x "$dir/$name" ]]; then return 0; fi
  echo "tools.sh: building $spec (once per machine, cached in $cache; sqlc, buf and temporal take 2-5 minutes each on 2 cores)" >&2
  mkdir -p "$dir.tmp"
  # CGO is needed by sqlc (libpg_query); GOFLAGS from the caller must not leak in.
  GOFLAGS= GOBIN="$dir.tmp" CGO_ENABLED=1 with_progress "tools.sh: building $name" go install "$spec" >&2
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

case "${1:-}" in
  path)
    install_one "$2"
    echo "$(dir_of "$2")/$2"
    ;;
  install)
    shift
    if [[ $# -eq 0 ]]; then
      for t in "${TOOLS[@]}"; do install_one "${t%%=*}"; done
    else
      for t in "$@"; do install_one "$t"; done
    fi
    ;;
  *)
    echo "usage: $0 path <tool> | install [tool...]" >&2
    exit 2
    ;;
esac
