# pg-failover-responder: every target installs what it needs first (scripts/bootstrap.sh).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: bootstrap drill drill-unplanned drill-maintenance drill-scaling serve test test-fast lint bench bench-fleet package clean

bootstrap:
	@bash scripts/bootstrap.sh

## The local failover drill: real PostgreSQL pair, Azurite, Redis, emulator, Teams sink, runner.
## `make drill REDIS=cluster` runs it on a 3-primary Redis Cluster instead of one redis-server.
REDIS ?= standalone
drill: bootstrap
	$(BIN)/python -m local.drill --redis $(REDIS)

drill-unplanned: bootstrap
	$(BIN)/python -m local.drill --unplanned --redis $(REDIS)

## Failovers the platform starts (emulated): a maintenance event InProgress, a scaling by failover.
drill-maintenance: bootstrap
	$(BIN)/python -m local.drill --mode maintenance --redis $(REDIS)

drill-scaling: bootstrap
	$(BIN)/python -m local.drill --mode scaling --redis $(REDIS)

## The app on 127.0.0.1:7071 with local services for whatever the environment does not set.
serve: bootstrap
	$(BIN)/python -m local.serve

## The whole suite: lint, unit, functional, integration (real services, started when missing), e2e.
test: bootstrap lint
	$(BIN)/python -m pytest -q

test-fast: bootstrap
	$(BIN)/python -m pytest -q tests/unit tests/functional

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: bootstrap
	$(BIN)/python -m bench.run

## The fleet benchmark alone (500 servers, 1 and 4 consumer processes, detection at scale; about 6 min).
bench-fleet: bootstrap
	$(BIN)/python -m bench.run --only fleet

## dist/app.zip for zip deployment (function_app.py, host.json, requirements.txt, failover/, handlers/).
package: bootstrap
	$(BIN)/python scripts/package.py

clean:
	rm -rf .drill dist bench/out .pytest_cache .mypy_cache .ruff_cache
