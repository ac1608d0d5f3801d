# Governor's developer commands. `make` or `make help` lists them.
# Every target is a thin wrapper: the logic lives in scripts/ and cmd/governor so that CI,
# make and a shell all run the same thing.

.DEFAULT_GOAL := help
SHELL := bash
GO ?= go

.PHONY: help dev test test-quick gen lint tools build bench clean-data

help: ## List the targets
	@echo "Usage: make <target>"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

dev: ## Run everything locally: starts/reuses PostgreSQL and Temporal (+ Web UI), migrates, serves API and worker
	@scripts/dev.sh

test: ## The full check CI runs: tools, codegen drift, lint, then all tests with -race (scripts/test.sh)
	scripts/test.sh

test-quick: ## Tests only, skipping tools, codegen check and lint (scripts/test.sh quick)
	scripts/test.sh quick

gen: ## Regenerate sqlc and protobuf/Connect code with the pinned tools (scripts/gen.sh)
	scripts/gen.sh

lint: ## go vet, staticcheck, buf lint and buf format, workflowcheck (scripts/test.sh lint)
	scripts/test.sh lint

tools: ## Build the pinned tools into ~/.cache/governor (once per machine)
	scripts/tools.sh install

build: ## Build the governor binary into bin/governor
	$(GO) build -o bin/governor ./cmd/governor

bench: ## Run the benchmarks (governor bench)
	$(GO) run ./cmd/governor bench

# .data holds `governor dev`'s state: the private PostgreSQL cluster (.data/postgres) and the
# Temporal history file. Deleting it under a running cluster would crash that cluster, so
# refuse while its postmaster is alive; a Temporal dev server keeps running fine (it just
# loses its history), so stopping `make dev` first is enough.
clean-data: ## Delete local dev state in .data (stop `make dev` first)
	@pidfile=.data/postgres/pgdata/postmaster.pid; \
	if [[ -f $$pidfile ]] && kill -0 "$$(head -n1 $$pidfile)" 2>/dev/null; then \
	  echo "PostgreSQL (PID $$(head -n1 $$pidfile)) still runs from .data/postgres: stop 'make dev' first" >&2; exit 1; \
	fi
	rm -rf .data
