# janitor.docker — developer entry points. `make demo` and `make test` install what they need themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
CACHE := $(CURDIR)/.cache
COLLECTIONS := $(CACHE)/collections
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=
ENGINES ?= legacy,classic,containerd

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_PYTHON_INTERPRETER := $(VPY)
export JANITOR_CACHE_DIR := $(CACHE)
export JANITOR_ENGINES ?= $(ENGINES)
export PATH := $(VENV)/bin:$(PATH):/usr/sbin:/sbin
export ANSIBLE_NOCOLOR := 1
export PY_COLORS := 0

.PHONY: pytest help setup sysdeps venv engines link test unit integration sanity lint changelog-lint demo bench bench-smoke \
        build clean

help:
	@echo "make demo   - run the demo: a private Docker engine with sample images, a dry run, the real run, a summary"
	@echo "make test   - run the whole suite: unit, integration on 3 engines, sanity, lint"
	@echo "make bench  - run the benchmarks (see benchmarks/README.md)"

setup: sysdeps venv engines link

sysdeps:
	@bash scripts/install-sysdeps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

engines:
	@bash tests/harness/fetch-engines.sh $(CACHE)

# Tests and ansible-playbook import the collection as ansible_collections.janitor.docker from here.
link:
	@mkdir -p $(COLLECTIONS)/ansible_collections/janitor
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/janitor/docker

test: setup
	@$(MAKE) --no-print-directory unit integration sanity lint changelog-lint

unit: setup
	$(VPY) -m pytest --ansible-unit-inject-only -p no:cacheprovider tests/unit $(PYTEST_ARGS)

integration: setup
	$(VPY) -m pytest --ansible-unit-inject-only -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# Any pytest selection, e.g. make pytest ARGS="tests/integration/test_image_remove.py -k digest --engines legacy"
pytest: setup
	$(VPY) -m pytest --ansible-unit-inject-only -p no:cacheprovider $(ARGS)

sanity: setup
	@bash scripts/ansible-test-sanity.sh

lint: setup
	cd $(CURDIR) && $(VENV)/bin/ansible-lint

changelog-lint: setup
	$(VENV)/bin/antsibull-changelog lint

demo: setup
	$(VPY) demo/run_demo.py

bench: setup
	$(VPY) benchmarks/run.py

bench-smoke: setup
	$(VPY) benchmarks/run.py --smoke

build: setup
	$(VENV)/bin/ansible-galaxy collection build --force --output-path $(CACHE)/build .

clean:
	rm -rf $(CACHE)/collections $(CACHE)/sanity $(CACHE)/build .pytest_cache tests/output
