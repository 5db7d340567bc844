# Two commands for a new user: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_DIR ?= output/demo

.PHONY: install d2 demo lint test clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: d2
	$(PY) tools/demo.py --output-dir $(DEMO_DIR)

# One pytest worker per core (pytest-xdist); worksteal hands queued tests to idle workers while one runs a long test.
test: d2
	$(PY) -m pytest -q -n auto --dist worksteal tests

# Lint rules + import order + formatting (ruff) and the types of ssl_lab/config, ssl_lab/utils,
# ssl_lab/solver (mypy), as configured in pyproject.toml; run by .ci/run before the tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf output

# detectron2 v0.6 as pure Python, no compiler needed (see tools/install_detectron2.sh).
d2: install
	bash tools/install_detectron2.sh $(PY)
