# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU build of torch: a bare `torch` would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	# pettingzoo without its own extras: they pull pygame-ce, which replaces pygame
	$(BIN)/python -m pip install --quiet -e ".[dev,fast,torch,sb3,cli,play,plots,video,minari,ray,pettingzoo,atari,diambra]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m trajarena.demo --out demo_out

test: $(STAMP)
	$(BIN)/lint-imports --no-cache pyproject.toml
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet -r bench/requirements.txt -e .
	.venv-bench/bin/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-bench demo_out build src/*.egg-info
