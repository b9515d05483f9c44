# kemu: the two set-up commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
NAME ?= kemu
PYTEST_ARGS ?=

.PHONY: up down status test check unit integration e2e bench proto api-docs proto-compat venv docker images lint clean

venv:
	@scripts/bootstrap.sh

docker:  ## a running dockerd (installed and started when missing)
	@scripts/ensure-docker.sh

images: venv docker  ## kemu/pause, kemu/tools, kemu/bootcamp, kemu/kemu on the local dockerd
	@$(VENV)/bin/kemu images build

up: venv images  ## start a cluster on this machine and write ~/.kemu/config
	@$(VENV)/bin/kemu up --name $(NAME)

down: venv
	@$(VENV)/bin/kemu down --name $(NAME)

status: venv
	@$(VENV)/bin/kemu status --name $(NAME)

proto: venv  ## regenerate kemu/api from protos/
	@$(PY) scripts/genproto.py

api-docs: venv  ## regenerate docs/api.md from the comments in protos/kemu/v1
	@$(PY) scripts/gen_api_docs.py

proto-compat: venv  ## breaking changes in protos/kemu/ against protos/released/ (docs/compatibility.md)
	@$(PY) scripts/protocompat.py

lint: venv  ## generated code and API reference fresh, protos compatible, ruff, mypy, import layers
	@$(PY) scripts/genproto.py --check
	@$(PY) scripts/gen_api_docs.py --check
	@$(PY) scripts/protocompat.py
	@$(VENV)/bin/ruff check kemu tests bench scripts examples
	@$(VENV)/bin/mypy kemu
	@$(VENV)/bin/lint-imports --no-cache

test: venv lint images  ## everything CI runs
	@scripts/bootstrap.sh --test
	@$(VENV)/bin/pytest -n 2 --dist loadfile -q $(PYTEST_ARGS) tests

unit: venv
	@$(VENV)/bin/pytest -q tests/unit

integration: venv
	@scripts/bootstrap.sh --test
	@$(VENV)/bin/pytest -n 2 --dist loadfile -q -m "integration and not e2e" tests

e2e: venv images
	@$(VENV)/bin/pytest -n 2 --dist loadfile -q -m e2e tests

bench: venv  ## benchmarks against a real etcd started in the same run
	@$(PY) bench/bench_store.py
	@$(PY) bench/bench_apiserver.py
	@$(PY) bench/bench_pods.py
	@$(PY) bench/bench_dns.py
	@$(PY) bench/bench_datapath.py
	@$(PY) bench/bench_up.py
	@$(PY) bench/bench_scheduler.py
	@$(PY) bench/bench_memory.py

bench-report: bench  ## run every benchmark, then write bench/REPORT.md with plots
	@$(PY) bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
