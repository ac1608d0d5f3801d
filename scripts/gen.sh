#!/usr/bin/env bash
# Regenerates all generated code with the pinned tools: sqlc (db/dbsqlc) and buf with
# protoc-gen-go and protoc-gen-connect-go (gen/). CI runs it and fails on any diff.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=scripts/tools.sh
sqlc=$($tools path sqlc)
buf=$($tools path buf)
gen_go=$($tools path protoc-gen-go)
gen_connect=$($tools path protoc-gen-connect-go)

# protovalidate's proto file, at the version whose generated Go code go.mod pins.
protovalidate_version=v1.2.2
dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/bufbuild/protovalidate@$protovalidate_version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
mkdir -p .cache/proto-deps/buf/validate
install -m 0644 "$dir/proto/protovalidate/buf/validate/validate.proto" .cache/proto-deps/buf/validate/validate.proto

"$sqlc" generate
PATH="$(dirname "$gen_go"):$(dirname "$gen_connect"):$PATH" "$buf" generate
