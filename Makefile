# Developer targets.
#
#   make test       the pytest suite against the installed (e.g. editable) cyrnn
#   make sanitize   the whole suite against an AddressSanitizer +
#                   UndefinedBehaviorSanitizer build of cyrnn, made from a copy
#                   of this working tree in a throwaway virtualenv under
#                   $(SANITIZE_DIR); fails on any sanitizer report (or any
#                   failing test). Nothing in this tree, its build/ directory
#                   or the installed package is touched.
#   make sanitize-clean   removes $(SANITIZE_DIR)
#   make valgrind   memcheck over a subset of the suite (see VALGRIND_TESTS)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
PYTEST_ARGS ?= -q
SANITIZE_DIR ?= $(or $(TMPDIR),/tmp)/cyrnn-sanitize
SANITIZE_SRC := $(SANITIZE_DIR)/src
SANITIZE_VENV := $(SANITIZE_DIR)/venv
LIBASAN = $(shell gcc -print-file-name=libasan.so)

# detect_leaks=0: CPython itself leaks at exit. allocator_may_return_null=1:
# a huge numpy allocation raises MemoryError, as it does without ASan.
# Reports go to stderr (libubsan ignores log_path next to ASan), so pytest runs
# with --capture=sys: its default fd-level capture would swallow the report of
# a process that the sanitizer then aborts.
ASAN_OPTIONS_SANITIZE := detect_leaks=0:allocator_may_return_null=1:halt_on_error=1
UBSAN_OPTIONS_SANITIZE := halt_on_error=1:print_stacktrace=1

.PHONY: test sanitize sanitize-build sanitize-clean

test:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

sanitize-build:
	@test -f "$(LIBASAN)" || { echo "libasan.so not found (gcc -print-file-name=libasan.so)"; exit 1; }
	rm -rf "$(SANITIZE_SRC)"
	mkdir -p "$(SANITIZE_SRC)"
	@# the working tree as it is (tracked and untracked files, nothing ignored:
	@# no build/, no compiled .so or generated .c)
	git ls-files -z --cached --others --exclude-standard \
	  | tar --null --files-from=- --ignore-failed-read -cf - \
	  | tar -xf - -C "$(SANITIZE_SRC)"
	test -d "$(SANITIZE_VENV)" || $(PYTHON) -m venv --system-site-packages "$(SANITIZE_VENV)"
	@# system site-packages provide numpy, scipy, Cython, pytest, hypothesis;
	@# cyrnn itself is built here with CYRNN_SANITIZE=1 (see setup.py)
	cd "$(SANITIZE_SRC)" && CYRNN_SANITIZE=1 "$(SANITIZE_VENV)/bin/python" -m pip install \
	  --quiet --no-build-isolation --no-deps --no-cache-dir --force-reinstall .
	@cd "$(SANITIZE_SRC)" && where=$$(LD_PRELOAD="$(LIBASAN)" ASAN_OPTIONS=detect_leaks=0 \
	  "$(SANITIZE_VENV)/bin/python" -c \
	  "import cyrnn._forward as r; print(r.__file__)") \
	  && case "$$where" in "$(SANITIZE_VENV)"/*) echo "sanitized cyrnn: $$where";; \
	     *) echo "wrong cyrnn imported: $$where"; exit 1;; esac \
	  && { nm -D "$$where" | grep -c __asan_ >/dev/null || { echo "$$where is not instrumented"; exit 1; }; }

sanitize: sanitize-build
	@cd "$(SANITIZE_SRC)" && set +e; \
	LD_PRELOAD="$(LIBASAN)" ASAN_OPTIONS="$(ASAN_OPTIONS_SANITIZE)" \
	  UBSAN_OPTIONS="$(UBSAN_OPTIONS_SANITIZE)" \
	  "$(SANITIZE_VENV)/bin/python" -m pytest -p no:cacheprovider --capture=sys $(PYTEST_ARGS) \
	  tests 2>&1 | tee "$(SANITIZE_DIR)/pytest.log"; \
	status=$${PIPESTATUS[0]}; \
	if grep -q -E "ERROR: AddressSanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer" \
	    "$(SANITIZE_DIR)/pytest.log"; then \
	  echo "== sanitizer report(s), from $(SANITIZE_DIR)/pytest.log =="; \
	  grep -n -A 12 -E "ERROR: AddressSanitizer|runtime error:" "$(SANITIZE_DIR)/pytest.log" \
	    | head -n 80; \
	  exit 1; \
	fi; \
	if [ "$$status" -ne 0 ]; then echo "== no sanitizer report, but pytest exited with $$status =="; exit "$$status"; fi; \
	echo "== sanitize: no AddressSanitizer or UndefinedBehaviorSanitizer report =="

sanitize-clean:
	rm -rf "$(SANITIZE_DIR)"

# Valgrind memcheck over a subset of the suite (slow: ~50x), against the
# installed cyrnn; unlike ASan it also sees what BLAS reads and writes on
# cyrnn's behalf. CPython and glibc produce their own (false) reports under
# memcheck, so only errors with a cyrnn frame in their stack fail the target.
VALGRIND_TESTS ?= tests/test_odd_inputs.py tests/test_numerics.py -k "not 10000 and not very_long"
VALGRIND_LOG_DIR ?= $(or $(TMPDIR),/tmp)/cyrnn-valgrind
CYRNN_FRAME := cyrnn|_forward|_bptt|_plan|_blas|_threads|csrc/

.PHONY: valgrind
valgrind:
	rm -rf "$(VALGRIND_LOG_DIR)" && mkdir -p "$(VALGRIND_LOG_DIR)"
	@# the real interpreter, not a pyenv shim; OpenBLAS limited to AVX2 kernels
	@# (valgrind has no AVX-512); PYTHONMALLOC=malloc so memcheck sees every block
	py=$$($(PYTHON) -c "import sys; print(sys.executable)"); \
	OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2 PYTHONMALLOC=malloc \
	  valgrind --tool=memcheck --leak-check=no --num-callers=40 \
	  --log-file="$(VALGRIND_LOG_DIR)/memcheck.%p.log" \
	  "$$py" -m pytest -p no:cacheprovider --capture=sys -q $(VALGRIND_TESTS)
	@awk -v frame='$(CYRNN_FRAME)' ' \
	  function flush() { if (block ~ /== (Invalid|Conditional|Use of uninit|Syscall|Mismatched|Source and destination|Argument)/ \
	                         && block ~ frame) { print block; found++ } block = "" } \
	  /^==[0-9]+== $$/ { flush(); next } { block = block $$0 "\n" } \
	  END { flush(); if (found) { print found " memcheck error(s) in cyrnn"; exit 1 } \
	        print "== valgrind: no memcheck error with a cyrnn frame ==" }' \
	  "$(VALGRIND_LOG_DIR)"/memcheck.*.log
