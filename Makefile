# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test test-fast lint format doctor bench clean i18n

# The interface's message catalogues (docs/i18n.md). The .po files are the source; their .mo are built
# here (not committed), by `make run`/`make test` too. pybabel's options are in pyproject.toml.
LOCALE   := chatvlmllm/locale
POT      := $(LOCALE)/chatvlmllm.pot
MO_FILES := $(patsubst %.po,%.mo,$(wildcard $(LOCALE)/*/LC_MESSAGES/chatvlmllm.po))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

# Stamps re-run the install whenever the requirement files change.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

# pybabel comes with the runtime requirements (babel); once it is there, the catalogue targets install nothing.
$(BIN)/pybabel:
	$(MAKE) $(VENV)/.runtime

$(LOCALE)/%/LC_MESSAGES/chatvlmllm.mo: $(LOCALE)/%/LC_MESSAGES/chatvlmllm.po | $(BIN)/pybabel
	$(BIN)/pybabel compile --locale $*

# Extract the marked strings into the .pot (kept as it was when only its date would change), merge them
# into every .po (translate the new entries there), compile. Run after adding or changing a UI string.
i18n: | $(BIN)/pybabel
	$(BIN)/pybabel extract --output-file $(POT).new >/dev/null
	if [ -f $(POT) ] && diff -q -I '^"POT-Creation-Date:' $(POT) $(POT).new >/dev/null; \
	then rm $(POT).new; else mv $(POT).new $(POT); fi
	$(BIN)/pybabel update
	$(BIN)/pybabel compile

run: $(VENV)/.runtime $(MO_FILES)
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: lint $(MO_FILES)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick lane while working: no browser, no subprocess servers (`slow`), no lint.
test-fast: $(VENV)/.dev $(MO_FILES)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

# ruff (lint + format) and mypy: what `make test` checks before the tests run.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

doctor: $(VENV)/.runtime
	$(BIN)/chatvlmllm doctor

bench: $(VENV)/.runtime
	$(BIN)/chatvlmllm bench ../shared/eval --models rapidocr,tesseract --out artifacts/bench.json

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache .mypy_cache
