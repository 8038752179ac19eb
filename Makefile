# pamcore: `make run` (SQLite instance with demo data) and `make test` on a fresh Debian 12,
# as root. Everything else is a step of those two.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTANCE ?= instance
PYTEST_ARGS ?=
#: Debian packages the build and the tests need; later features append to this list.
DEB_PACKAGES := python3-venv python3-dev gcc postgresql openssh-server openssh-client putty-tools sudo chromium chromium-driver \
	xrdp xorgxrdp freerdp2-x11 freerdp2-shadow-x11 winpr-utils xvfb xterm imagemagick xdotool x11-utils dbus-x11 \
	libldap2-dev libsasl2-dev slapd ldap-utils
#: Sibling distributions installed (editable) next to the core when their folder exists.
SIBLINGS := $(dir $(wildcard pamcore_ssh/pyproject.toml pamcore_rdp/pyproject.toml \
	pamcore_cisco_legacy/pyproject.toml pamcore_ldap/pyproject.toml plugins/*/pyproject.toml))
#: Touched after a successful setup, so a second `make test` skips it.
STAMP := $(VENV)/.pamcore-setup

.PHONY: help setup deps test test-fast run lint format bench clean-pg clean-demo

help:
	@echo "make run    set up, initialise ./$(INSTANCE) with demo data, start pamcore"
	@echo "make test   set up, start the test PostgreSQL, ruff check, pytest"
	@echo "make test-fast   pytest without the e2e, browser and slow tiers"
	@echo "make clean-demo   stop the demo SSH target, delete its accounts and ./$(INSTANCE)"
	@echo "make lint | format | bench | setup | clean-pg"

setup: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix pyproject.toml,$(SIBLINGS)) Makefile
	@$(MAKE) --no-print-directory deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(addprefix -e ./,$(SIBLINGS))
	@touch $@

# apt-get only when a package is missing, so a set-up machine needs no network.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo apt-get update; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $$missing; \
	fi

# Ruff and pytest both run, then the date-sensitive tests again with the wall clock moved
# (scripts/test-moved-clock); the exit status is pytest's when it fails, else ruff's.
test: setup
	@url=$$(scripts/test-postgres); \
	lint=0; $(BIN)/ruff check . || lint=$$?; \
	status=0; PAMCORE_TEST_PG_URL="$$url" PAMCORE_REQUIRE_PG=1 PAMCORE_STRICT_PLUGINS=1 \
		$(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -ne 0 ]; then exit $$status; fi; \
	PAMCORE_TEST_PG_URL="$$url" PAMCORE_REQUIRE_PG=1 PAMCORE_STRICT_PLUGINS=1 \
		scripts/test-moved-clock || status=$$?; \
	if [ $$status -ne 0 ]; then exit $$status; fi; \
	if [ $$lint -ne 0 ]; then echo "ruff check failed" >&2; fi; \
	exit $$lint

# The inner loop while coding: pytest without the e2e, browser and slow tiers (README, "For
# contributors"); `make test`, which CI runs, still runs every tier.
test-fast: setup
	@url=$$(scripts/test-postgres); \
	PAMCORE_TEST_PG_URL="$$url" PAMCORE_REQUIRE_PG=1 PAMCORE_STRICT_PLUGINS=1 \
		$(BIN)/pytest -m "not e2e and not browser and not slow" $(PYTEST_ARGS)

# `pamcore demo` seeds an empty instance and leaves one that has demo users untouched; as root
# it prepares the demo's SSH target (web01), which runs while pamcore runs (README, "What the
# demo creates on this machine").
run: setup
	$(BIN)/pamcore --instance $(INSTANCE) init
	$(BIN)/pamcore --instance $(INSTANCE) demo
	$(BIN)/pamcore --instance $(INSTANCE) demo start
	trap '$(BIN)/pamcore --instance $(INSTANCE) demo stop' EXIT; \
		$(BIN)/pamcore --instance $(INSTANCE) run

# Remove what `make run` made: the demo's SSH target, the pamdemo-... accounts its sessions
# created on this machine, and ./$(INSTANCE) (refused for an instance without demo data).
clean-demo:
	if [ -d $(INSTANCE) ]; then $(BIN)/pamcore --instance $(INSTANCE) demo clean; fi
	rm -rf $(INSTANCE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/core.py

# Stop the test PostgreSQL and delete its data (it is rebuilt by the next `make test`).
clean-pg:
	scripts/test-postgres stop
	rm -rf .pg
