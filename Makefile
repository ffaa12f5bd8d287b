# Every target installs what it needs into .venv first, so each works on a fresh clone.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= leaver-data

.PHONY: install run demo-reset test property lint clean

install: $(VENV)/.installed

## Runtime dependencies from the hashed lock (as the image installs them), then the dev tools.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The embedded demo: SQLite under ./leaver-data, built-in IGA simulators with demo users.
## Another address: make run PORT=8080 (HOST=0.0.0.0 to listen on every interface).
run: install
	LEAVER_DATA_DIR=$(DATA) $(BIN)/leaver serve --demo --host $(HOST) --port $(PORT)

## Start the demo over: its database, generated secrets and demo event are removed.
demo-reset:
	rm -rf $(DATA)

## Lint, type-check and the test suite. On SQLite (the default) the tests marked `postgres` (kill
## matrix, scale-out) are left out; set LEAVER_TEST_DATABASE_URL=postgresql+asyncpg://... to run
## everything on PostgreSQL.
test: install lint
	$(BIN)/pytest -q $(if $(LEAVER_TEST_DATABASE_URL),,-m "not postgres")

## More Hypothesis examples than the default run: LEAVER_PROPERTY_EXAMPLES=200 make property
property: install
	$(BIN)/pytest -q tests/property

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app
	$(BIN)/mypy app

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache
