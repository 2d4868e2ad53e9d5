# Every target that runs code first makes sure .venv/ is current, so a fresh
# clone needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps test lint demo bench lab screenshots clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# System packages: tshark (cross-checks of our TCP reassembly and of the
# Wireshark dissector) and chromium (renders the HTML report in a test).
# A missing one is reported in one line; tests that need it skip with that
# reason instead of failing with a traceback.
sysdeps:
	@bash scripts/sysdeps.sh

lint: $(STAMP)
	$(BIN)/ruff check camprotool tests benchmarks captures notebooks

test: $(STAMP) sysdeps lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m camprotool.demo

# JupyterLab on 127.0.0.1 with the notebooks; the token is printed in the log.
lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir notebooks

# Refresh docs/screenshots/ from the JupyterLab browser test.
screenshots: $(STAMP) sysdeps
	CAMPROTOOL_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/notebooks/test_lab_browser.py

bench: $(STAMP) sysdeps
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/bench_codec.py
	$(BIN)/python benchmarks/bench_readers.py --tshark
	$(BIN)/python benchmarks/bench_capture.py
	$(BIN)/python benchmarks/bench_analysis.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
