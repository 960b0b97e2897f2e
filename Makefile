# Two entry points (see README): `make demo` runs the main job, `make test` runs the suite.
# Both create .venv on first use. torch is pinned to the CPU build through .ci/constraints.txt and
# installed first: any torch *range* resolves to a multi-GB CUDA build.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dea-installed
CONSTRAINTS := .ci/constraints.txt

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/pip uninstall -q -y dea 2>/dev/null || true  # the distribution was renamed dea-allocation
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[train,serve,ccxt,distributed,registry,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dea demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) dea_store mlruns mlflow.db runs backtests
