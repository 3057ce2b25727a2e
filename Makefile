# KVX — two user-facing targets (README.md "Quick start"):
#   make demo   install dependencies, build, run `kvx demo`
#   make test   install dependencies, build, run the whole test suite: the
#               default build's ctest, the ASan+UBSan build's ctest, the
#               manager's fuzz target for 60 s (clang) and its thread test
#               under ThreadSanitizer
# Variables: PRESET (default; CI uses ci), KVX_CUDA_ARCHS (e.g. 90),
# JOBS (parallel build jobs, default: the number of cores), DEMO_ARGS,
# CMAKE_ARGS (more -D options for the main build, e.g. -DKVX_ENABLE_CUDA=OFF).

PRESET ?= default
SAN_PRESET ?= asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEMO_ARGS ?=
CMAKE_ARGS ?=

# The CUDA toolkit installs nvcc outside PATH; point CMake at it when present.
ifeq ($(origin CUDACXX),undefined)
  ifneq ($(wildcard /usr/local/cuda/bin/nvcc),)
    export CUDACXX := /usr/local/cuda/bin/nvcc
    export PATH := /usr/local/cuda/bin:$(PATH)
  endif
endif

ifneq ($(strip $(KVX_CUDA_ARCHS)),)
  CUDA_ARCHS_FLAG := "-DKVX_CUDA_ARCHS=$(KVX_CUDA_ARCHS)"
endif

BUILD_DIR := build/$(PRESET)
SAN_BUILD_DIR := build/$(SAN_PRESET)

.PHONY: demo test deps build build-san test-default test-san test-fuzz test-threads

demo: build
	./$(BUILD_DIR)/tools/kvx/kvx demo $(DEMO_ARGS)

test: test-default test-san test-fuzz test-threads

# ------------------------------------------------------------- internals --
deps:
	./scripts/install-deps

build: deps
	cmake --preset $(PRESET) $(CUDA_ARCHS_FLAG) $(CMAKE_ARGS)
	cmake --build --preset $(PRESET) -j $(JOBS)

build-san: deps
	cmake --preset $(SAN_PRESET)
	cmake --build --preset $(SAN_PRESET) -j $(JOBS)

test-default: build
	ctest --preset $(PRESET) -j $(JOBS)

# Built after the default tests pass, so a plain failure is reported first and
# the two builds never compete for the cores.
test-san: test-default build-san
	ctest --preset $(SAN_PRESET) -j $(JOBS)

# The manager's C ABI under libFuzzer (clang, ASan + UBSan) for a bounded time
# (60 s, tests/fuzz), then distinct managers on several threads at once under
# ThreadSanitizer (the thread-safety promise of include/kvx/manager.h).
test-fuzz: test-san
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	ctest --preset fuzz

test-threads: test-fuzz
	cmake --preset tsan
	cmake --build --preset tsan-threads -j $(JOBS)
	ctest --preset tsan-threads
