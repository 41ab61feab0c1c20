# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Everything installs into .venv from the package index; nothing else is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench-latency app clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/station --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n auto

bench-latency: $(STAMP)
	$(BIN)/station bench latency --recipe "IC package (demo)"

app: $(STAMP)
	scripts/build-app.sh

clean:
	rm -rf build dist .pytest_cache
