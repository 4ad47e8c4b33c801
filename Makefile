# Every target installs what it needs into .venv first; nothing relies on a hand-made setup.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SV := $(VENV)/bin/signalvault

.PHONY: install demo test fuzz coverage check format bench eval docs-images screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The modules pyproject.toml lists under [tool.signalvault.compiled], compiled with mypyc (about
# 2 minutes) whenever one of them changed; until then their sources run (signalvault/compiled.py).
COMPILED_SOURCES := $(shell $(PYTHON) tools/compile_modules.py --list)

signalvault/compiled.json: $(VENV)/.installed tools/compile_modules.py $(COMPILED_SOURCES)
	$(PY) tools/compile_modules.py

install: $(VENV)/.installed signalvault/compiled.json

demo: install  ## gateway + mock provider + sample traffic through the official SDKs; Ctrl-C stops
	$(SV) demo

test: install  ## the whole suite (about 8 minutes on 2 cores)
	$(PY) -m pytest $(PYTEST_ARGS)

fuzz: install  ## the hostile-input tests with many more generated requests and a new seed (~20 min)
	FUZZ_PROFILE=fuzz $(PY) -m pytest tests/hostile -p no:cacheprovider -s $(PYTEST_ARGS)

coverage: install  ## the whole suite under branch coverage of the sources (about twice as long as `make test`)
	SIGNALVAULT_PURE=1 $(PY) -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

check: install  ## formatting, lint, types, the package layers (.importlinter)
	$(VENV)/bin/ruff format --check signalvault tests bench training tools
	$(VENV)/bin/ruff check signalvault tests bench training tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format signalvault tests bench training tools
	$(VENV)/bin/ruff check --fix signalvault tests bench training tools

bench: install  ## scan speed, long streams, overhead vs peers (new prompts), CPU per request and c=1 latency histogram, sustained load per store, trail export and verify speed
	$(PY) bench/scan_speed.py
	$(PY) bench/stream_cost.py
	$(PY) bench/overhead.py $(BENCH_ARGS)
	$(PY) bench/cost.py $(COST_BENCH_ARGS)
	$(PY) bench/sustained.py $(SUSTAINED_BENCH_ARGS)
	$(PY) bench/verify_speed.py $(VERIFY_BENCH_ARGS)
	$(PY) bench/export_speed.py $(EXPORT_BENCH_ARGS)

screenshots: install  ## the dashboard pictures in docs/screenshots/, from its browser tests
	SIGNALVAULT_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/dashboard/test_every_page.py \
		tests/dashboard/test_report.py -q

eval: install  ## detector accuracy on ../shared/eval
	$(PY) bench/eval.py $(EVAL_ARGS)

docs-images: install  ## docs/img/report-soc2.png: the HTML report in headless Chromium (apt-get install chromium)
	$(PY) -m tests.evidence.report_page docs/img/report-soc2.png

clean:
	find signalvault -name '*.so' -delete
	rm -f signalvault/compiled.json signalvault_compiled__mypyc*.so
	rm -rf $(VENV) .signalvault .coverage htmlcov .mypy_cache .ruff_cache .pytest_cache .hypothesis
