# pic — two commands on a fresh Debian machine: `make demo` and `make test`.
# Each installs what it needs (npm packages, Debian packages, dockerd) and is safe to repeat.
SHELL := /bin/bash
.DEFAULT_GOAL := help
HOST := deploy/scripts/ensure-host.sh

.PHONY: help deps host build crds images demo test unit bench clean

help:
	@echo "make demo    converge the bundled example cell and show its status"
	@echo "make test    run the whole test suite (installs what it needs)"
	@echo "make bench   run the benchmarks and write docs/benchmarks.md"
	@echo "make build   compile to dist/ (bin/pic runs the result)"

deps:
	@$(HOST) node

host:
	@$(HOST) all

build: deps
	@node_modules/.bin/tsc -p tsconfig.json

# Regenerate the published JSON Schemas and CRDs from crds/schemas.ts.
crds: build
	@node dist/crds/generate.js

images: host
	@examples/images/build.sh

demo: build images
	@bin/pic validate examples/store examples/cell && echo "examples/store and examples/cell are valid"

unit: build
	@npm test --silent -- dist/tests/unit

test: build images
	@npm test --silent

bench: build
	@node dist/tests/bench/run.js

clean:
	rm -rf dist
