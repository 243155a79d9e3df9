# Neuralake Lab. Two commands on a fresh machine:
#   make lab    set everything up, start the stack, open JupyterLab
#   make test   set everything up and run the whole suite (linters included)

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Downloads and builds live outside the checkout, so warm runs are fast.
export NEURALAKE_CACHE_DIR ?= $(HOME)/.cache/neuralake
export UV_CACHE_DIR ?= $(NEURALAKE_CACHE_DIR)/uv
# Compile bytecode once at install: without it every CLI start recompiles (3-4 s vs 9-10 s
# per papermill run, measured on a 2-core machine with PYTHONDONTWRITEBYTECODE=1).
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON ?= 3.11
export UV_PYTHON_DOWNLOADS := never
# The Rust writer builds into the cache too (neuralake.lab.writer.binary looks there).
export CARGO_TARGET_DIR := $(NEURALAKE_CACHE_DIR)/rust-writer/target

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(NEURALAKE_CACHE_DIR)/uv-$(UV_VERSION)/bin/uv)
RUN := $(UV) run --locked --no-sync
NL := $(RUN) neuralake

JUPYTER_STATE := $(CURDIR)/.state/jupyter
JUPYTER_ENV := JUPYTER_RUNTIME_DIR=$(JUPYTER_STATE)/runtime JUPYTER_DATA_DIR=$(JUPYTER_STATE)/data \
	JUPYTER_CONFIG_DIR=$(JUPYTER_STATE)/config IPYTHONDIR=$(JUPYTER_STATE)/ipython
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help setup lab test lint format up down status run labs docs bench clean

help:  ## Show the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(NEURALAKE_CACHE_DIR)/uv-$(UV_VERSION)/bin/uv:
	python3 -m venv $(NEURALAKE_CACHE_DIR)/uv-$(UV_VERSION)
	$(NEURALAKE_CACHE_DIR)/uv-$(UV_VERSION)/bin/pip install -q uv==$(UV_VERSION)

setup: $(UV)  ## Install everything (idempotent); start nothing
	bash scripts/system-deps.sh
	$(UV) sync --locked
	$(NL) stack install
	$(NL) writer build

up: setup  ## Start the native stack (S3, Kafka, PostgreSQL)
	$(NL) stack up

down:  ## Stop the stack; data is kept
	$(NL) stack down

status:  ## Show the stack's services
	$(NL) stack status

lab: up  ## Set up, start the stack and open JupyterLab on 127.0.0.1:8888
	$(JUPYTER_ENV) $(RUN) jupyter lab --ip 127.0.0.1 --port 8888 --no-browser $(ALLOW_ROOT) \
		--ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb

run: up  ## Execute every notebook headless into build/notebooks/
	$(NL) notebooks run

labs: setup  ## The student bundle: labs without solutions, a README, a zip (build/classroom/)
	$(NL) labs bundle

bench: up  ## Regenerate the TPC-H SF1 report in docs/benchmarks/tpch-sf1 (about 11 minutes on a quiet machine)
	$(RUN) python benchmarks/tpch.py
	$(NL) bench report --out docs/benchmarks

docs: setup  ## Build the documentation site from build/notebooks/ into build/site/
	$(NL) docs build

RUST := --manifest-path rust-writer/Cargo.toml

lint:  ## ruff lint and format check, mypy (its files: pyproject.toml); cargo fmt and clippy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	cargo fmt $(RUST) --check
	cargo clippy $(RUST) --release --locked --all-targets -- -D warnings

format:  ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: setup lint  ## Set up and run the whole suite against a real stack
	cargo test $(RUST) --release --locked
	$(RUN) pytest

clean:  ## Remove build outputs (not the data: see `make down` and .state/)
	rm -rf build
