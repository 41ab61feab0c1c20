# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Everything installs into .venv from the package index; nothing else is needed.
# Windows (GNU make from Git Bash or MSYS2): the venv keeps its programs in Scripts\, and
# `python3` is often the Store's stub there.
ifeq ($(OS),Windows_NT)
PYTHON ?= python
BIN_DIR := Scripts
else
PYTHON ?= python3
BIN_DIR := bin
endif
VENV   ?= .venv
BIN    := $(VENV)/$(BIN_DIR)
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench-latency app clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -c "import pathlib; pathlib.Path('$(STAMP)').touch()"

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/station --demo

test: export QT_QPA_PLATFORM := offscreen
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

bench-latency: $(STAMP)
	$(BIN)/station bench latency --recipe "IC package (demo)"

app: $(STAMP)
	scripts/build-app.sh

clean:
	$(PYTHON) -c "import shutil; [shutil.rmtree(p, ignore_errors=True) for p in ('build', 'dist', '.pytest_cache')]"
