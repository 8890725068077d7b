# pic — two commands on a fresh Debian machine: `make demo` and `make test`.
# Each installs what it needs (npm packages, Debian packages, dockerd) and is safe to repeat.
SHELL := /bin/bash
.DEFAULT_GOAL := help
HOST := deploy/scripts/ensure-host.sh

.PHONY: help deps host build lint crds images demo demo-clean test unit bench clean

help:
	@echo "make demo    converge the bundled example cell and show its status"
	@echo "make test    run the whole test suite (installs what it needs)"
	@echo "make bench   run the benchmarks and write docs/benchmarks.md"
	@echo "make build   compile to dist/ (bin/pic runs the result)"
	@echo "make lint    eslint: typescript-eslint's type-aware rules and the import layers (eslint.config.js)"

deps:
	@$(HOST) node

host:
	@$(HOST) all

build: deps
	@node_modules/.bin/tsc -p tsconfig.json

# Type-aware lint and the import rules (eslint.config.js), cached in .tmp/eslintcache: about a
# minute and a half from cold on two cores, half a minute after a change, seconds when none.
lint: deps
	@mkdir -p .tmp
	@node_modules/.bin/eslint . --cache --cache-location .tmp/eslintcache

# Regenerate the published JSON Schemas and CRDs from crds/schemas.ts.
crds: build
	@node dist/crds/generate.js

# The store services' images (busybox stand-ins, and the applications built from Debian packages:
# Radicale, Apache WebDAV, Postfix and Dovecot…), the core stack's (Caddy, BIND, WireGuard) and the connectivity
# exits' (a Connection's wireguard_ext, openvpn, proxy…), built from Debian packages on this
# machine and loaded into Docker. The scripts run side by side (each spends much of its time
# waiting on tar, sha256sum and docker load); their output follows in order, and any failure
# fails the target.
IMAGE_SCRIPTS := build.sh build-core.sh build-exits.sh build-apps.sh
images: host
	@mkdir -p .tmp
	@pids=(); for s in $(IMAGE_SCRIPTS); do examples/images/$$s > .tmp/images-$$s.log 2>&1 & pids+=($$!); done; \
	  status=0; i=0; for s in $(IMAGE_SCRIPTS); do \
	    if ! wait $${pids[$$i]}; then status=1; echo "examples/images/$$s failed:"; fi; cat .tmp/images-$$s.log; i=$$((i+1)); \
	  done; exit $$status

DEMO_DIR ?= $(CURDIR)/.demo
DEMO_STATE ?= $(DEMO_DIR)/state

# Like production: the example images go into a local registry (127.0.0.1:5000), signed with the
# demo key in examples/demo/; the example cell, copied to .demo/cell with its catalog pinned to the
# signed images, converges under imageVerification enforce, pulling through a mirror of git.pic.ngo.
# pic runs the cell's core stack too (Caddy, BIND, WireGuard: the run sections of cell.yaml).
# pic run records its state directory in .demo/cell/.pic/state-dir, so every later command given
# --cell .demo/cell (or run inside that folder) finds .demo/state without being told. The demo
# ends with the peer's view: a throwaway container with nothing but alice's wg-quick file and the
# cell's CA resolves notes.demo.pic.test through the cell's DNS, fetches the page over HTTPS
# through Caddy and signs in with alice's password; the demo fails if it cannot. The cell and the
# registry stay up; `make demo-clean` takes them down (volumes included).
demo: build images
	@bin/pic validate examples/store examples/cell && echo "examples/store and examples/cell are valid"
	@examples/demo/registry.sh start $(DEMO_DIR)
	@node examples/demo/publish.mjs $(DEMO_DIR)
	@bin/pic validate $(DEMO_DIR)/store $(DEMO_DIR)/cell && echo "the signed catalog and the enforce cell are valid"
	@bin/pic run --once --log-format text --cell $(DEMO_DIR)/cell --state-dir $(DEMO_STATE)
	@echo
	@bin/pic get -o wide --cell $(DEMO_DIR)/cell
	@echo
	@node examples/peer-check.mjs --cell $(DEMO_DIR)/cell --state-dir $(DEMO_STATE) --peer alice --url https://notes.demo.pic.test/ --sign-in /account
	@echo
	@echo "The demo cell runs. Follow it with: bin/pic watch --cell .demo/cell"
	@echo "Keep it converging:               bin/pic run --cell .demo/cell"
	@echo "See a verification:               bin/pic describe ServiceInstall/notes --cell .demo/cell"
	@echo "A peer's VPN file:                bin/pic credentials alice --cell .demo/cell -o wireguard"
	@echo "Take it down:                     make demo-clean"

demo-clean:
	@ids=$$(docker ps -aq --filter label=ngo.pic.cell=demo); [ -z "$$ids" ] || docker rm -f $$ids >/dev/null
	@vols=$$(docker volume ls -q --filter label=ngo.pic.cell=demo); [ -z "$$vols" ] || docker volume rm $$vols >/dev/null
	@ids=$$(docker ps -aq --filter label=ngo.pic.peer-check=demo); [ -z "$$ids" ] || docker rm -f $$ids >/dev/null
	@imgs=$$(docker images -q --filter reference='pic-peer-check/demo'); [ -z "$$imgs" ] || docker rmi -f $$imgs >/dev/null
	@docker network rm cell-network >/dev/null 2>&1 || true
	@examples/demo/registry.sh stop $(DEMO_DIR)
	@rm -rf $(DEMO_DIR) examples/cell/.pic
	@echo "demo cell (its core containers and volumes too), peer check and registry removed"

unit: build
	@npm test --silent -- dist/tests/unit

# Jest's own summary is followed by one plain line CI tools read: "tests: N passed, N failed, N skipped".
# tests/serial (a dockerd restart) runs alone after the parallel run: it stops every container.
# Lint runs beside the tests rather than before them: it needs one core for a minute and a half
# from cold, while the end-to-end tests spend most of their time waiting on Docker. Its output
# follows the tests' summary, and a lint failure fails the target like a test failure.
test: build images
	@mkdir -p .tmp
	@$(MAKE) --no-print-directory lint > .tmp/lint.log 2>&1 & lint=$$!; \
	  status=0; npm test --silent -- --json --outputFile=.tmp/jest-results.json || status=$$?; \
	  npm test --silent -- dist/tests/serial --runInBand --json --outputFile=.tmp/jest-serial.json --testPathIgnorePatterns /node_modules/ || status=$$?; \
	  node -e 'const r=[require("./.tmp/jest-results.json"),require("./.tmp/jest-serial.json")]; const n=(k)=>r.reduce((s,x)=>s+x[k],0); console.log("tests: " + n("numPassedTests") + " passed, " + n("numFailedTests") + " failed, " + (n("numPendingTests") + n("numTodoTests")) + " skipped")' || true; \
	  if wait $$lint; then cat .tmp/lint.log; echo "lint: clean"; else cat .tmp/lint.log; echo "lint: failed"; status=1; fi; \
	  exit $$status

bench: build
	@node dist/tests/bench/run.js

clean:
	rm -rf dist
