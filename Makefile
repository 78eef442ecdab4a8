# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy

.PHONY: install demo demo-strong test bench fuzz clean

# setup.py and the C files: the recorder's C setter is built by the install (pip needs a C compiler for it)
$(STAMP): pyproject.toml setup.py $(wildcard src/trajarena/format/_*.[ch])
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU build of torch: a bare `torch` would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	# pettingzoo without its own extras: they pull pygame-ce, which replaces pygame
	$(BIN)/python -m pip install --quiet -e ".[dev,fast,torch,sb3,cli,play,plots,video,minari,ray,pettingzoo,atari,diambra,view]"
	touch $(STAMP)

install: $(STAMP)

# two malloc arenas and the system allocator for Arrow: the loader's decoding threads would otherwise
# each keep freed memory in an arena of their own (about 250 MB more peak RSS on the demo's data)
demo: $(STAMP)
	MALLOC_ARENA_MAX=2 ARROW_DEFAULT_MEMORY_POOL=system $(BIN)/python -m trajarena.demo --out demo_out

# the recipe that reaches ~95 % of the expert (64x128 frames, 3 DAgger rounds), 3 training seeds: ~20 min
demo-strong: $(STAMP)
	MALLOC_ARENA_MAX=2 ARROW_DEFAULT_MEMORY_POOL=system $(BIN)/python -m trajarena.demo --strong --seeds 3 --out demo_strong_out

test: $(STAMP)
	$(BIN)/lint-imports --no-cache pyproject.toml
	$(BIN)/python -m pytest -n 2 -q

# A long fuzz run (the normal suite runs a short, deterministic one): the hypothesis families of
# tests/test_fuzz.py with random seeds (printed), then atheris (libFuzzer) on files, metadata and chunks.
FUZZ_EXAMPLES ?= 5000
FUZZ_SECONDS  ?= 600
FUZZ_DIR      ?= /tmp/trajarena-fuzz
fuzz: $(STAMP)
	TRAJARENA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TRAJARENA_FUZZ_SEED=random $(BIN)/python -m pytest -q tests/test_fuzz.py
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet "atheris>=2.3"
	mkdir -p $(FUZZ_DIR)/corpus
	$(BIN)/python tests/fuzz/atheris_files.py $(FUZZ_DIR)/corpus -artifact_prefix=$(FUZZ_DIR)/ \
		-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048

bench: $(STAMP)
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet -r bench/requirements.txt -e .
	.venv-bench/bin/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-bench demo_out demo_strong_out build src/*.egg-info src/trajarena/format/*.so
