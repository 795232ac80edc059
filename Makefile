# s3g: `make run` starts the all-in-one server, `make test` runs the whole suite.
# Both install what they need first (npm packages; the S3 clients the tests drive).
SHELL := /bin/bash
NPM_STAMP := node_modules/.install-stamp
APT_STAMP := .apt-stamp
TEST_DEBS := awscli python3-boto3 s3cmd rclone curl postgresql chromium

.PHONY: run test build lint bench bench-quick clean deps test-deps cluster cluster-stop

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: $(NPM_STAMP)

dist/cli/main.js: $(NPM_STAMP) $(shell find src -type f -name '*.ts') tsconfig.json tsconfig.build.json
	rm -rf dist
	npx tsc -p tsconfig.build.json

dist/datanode/datanode.proto: src/datanode/datanode.proto dist/cli/main.js
	cp $< $@

build: dist/cli/main.js dist/datanode/datanode.proto

run: build
	bin/s3g serve $(ARGS)

# The S3 clients the end-to-end tests drive, from Debian's packages.
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint: $(NPM_STAMP)
	npx tsc -p tsconfig.json --noEmit
	npx eslint src test bench

test: build test-deps lint
	npx tap

bench: build
	node --import tsx bench/run.ts

bench-quick: build
	node --import tsx bench/run.ts --quick

# A loopback cluster: PostgreSQL, 3 datanodes, 2 gateways (state and logs in .cluster/).
cluster: build
	scripts/cluster.sh start

cluster-stop:
	scripts/cluster.sh stop

clean:
	rm -rf dist node_modules data
