# The two commands: `make demo` and `make test`. Both create .venv on first use;
# `make test` also installs Prometheus (prometheus, promtool) when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install prometheus demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m eventio.demo

# The alert-rule and dashboard tests need Prometheus' own programs: Debian's
# `prometheus` package, installed here with apt when missing (see .ci/install-prometheus).
prometheus:
	.ci/install-prometheus

test: $(STAMP) prometheus
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis demo-out
