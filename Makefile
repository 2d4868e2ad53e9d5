# Every target that runs code first makes sure .venv/ is current, so a fresh
# clone needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# One stamp per set of extras (pyproject.toml): `make demo` installs the core
# library only, `make lab` adds the jupyter extra, `make test` the test extra
# (which pulls in jupyter and pyshark too). Each target checks its own stamp,
# so running one after the other installs what is missing, and an edited
# pyproject.toml re-installs each set the next time it is used.
STAMP_CORE    := $(VENV)/.installed-core
STAMP_JUPYTER := $(VENV)/.installed-jupyter
STAMP_TEST    := $(VENV)/.installed-test
STAMP_BENCH   := $(VENV)/.installed-bench

# Where `make demo` writes its tables and report (git-ignored; never inside
# captures/, which the tests and the explorer scan for capture files).
DEMO_OUT ?= demo-output

# JupyterLab refuses to run as root unless told; containers and CI often are root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install sysdeps test lint demo bench fuzz lab screenshots clean

# Everything a developer needs (the test extra).
install: $(STAMP_TEST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_JUPYTER): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[jupyter]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(STAMP_BENCH): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

# System packages: tshark (cross-checks of our TCP reassembly and of the
# Wireshark dissector, and the pyshark bridge) and chromium (renders the HTML
# report in a test). A missing one is reported in one line; tests that need it
# skip with that reason instead of failing with a traceback.
sysdeps:
	@bash scripts/sysdeps.sh

# ruff for style and common bugs; mypy for types on the whole package ([tool.mypy] in
# pyproject.toml): message fields, Optional values and the layers' interfaces.
lint: $(STAMP_TEST)
	$(BIN)/ruff check camprotool tests benchmarks captures notebooks
	$(BIN)/mypy camprotool

test: $(STAMP_TEST) sysdeps lint
	$(BIN)/python -m pytest -q

demo: $(STAMP_CORE)
	$(BIN)/python -m camprotool.demo --output $(DEMO_OUT)

# JupyterLab on 127.0.0.1 with the notebooks; the token is printed in the log.
lab: $(STAMP_JUPYTER)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir notebooks $(LAB_ROOT)

# Refresh docs/screenshots/ from the JupyterLab browser test.
screenshots: $(STAMP_TEST) sysdeps
	CAMPROTOOL_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/notebooks/test_lab_browser.py

bench: $(STAMP_BENCH) sysdeps
	$(BIN)/python benchmarks/bench_codec.py
	$(BIN)/python benchmarks/bench_readers.py --tshark
	$(BIN)/python benchmarks/bench_capture.py
	$(BIN)/python benchmarks/bench_analysis.py
	$(BIN)/python benchmarks/bench_speed.py --skip-slow
	$(BIN)/python benchmarks/bench_fleet.py --quick

# Fuzz every target of tests/fuzz/fuzz_targets.py (capture readers on mutated captures
# from captures/, every dialect's decoders, the reassembler, the emulator's request
# handling) for FUZZ_SECONDS in all; failures are printed with their shrunk input and
# written to .hypothesis/fuzz-findings/ (docs/fuzzing.md). CI runs a short budget.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP_TEST)
	$(BIN)/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis $(DEMO_OUT)
