# battplc: the two commands are `make run` and `make test`; both set up .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-all bench bench-quick lint check docs lock clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/battplc demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not long"

# everything, including the week-long scenarios (minutes each); CI runs this
test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m tools.bench
	$(BIN)/python -m tools.docs

bench-quick: $(STAMP)
	$(BIN)/python -m tools.bench --quick

lint: $(STAMP)
	$(BIN)/ruff check runtime programs tools tests

docs: $(STAMP)
	$(BIN)/python -m tools.docs

check: $(STAMP)
	$(BIN)/battplc check .

# Re-pin every transitive package from pyproject.toml's direct pins, in a throw-away venv.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ sed -n '1,2p' constraints.txt; build/lock-venv/bin/python -m pip freeze --all --exclude battplc \
	  | grep -v '^setuptools=='; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) build *.egg-info
