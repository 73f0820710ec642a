#!/bin/sh
# Set up and run every test: the README's test command, and what CI runs.
#   1. install missing Debian packages (scripts/deps.sh --test)
#   2. build and run the suite (make test)
#   3. build and run it again under ASan + UBSan (make check)
#   4. valgrind memcheck on the CLI and a few unit tests (make valgrind)
#   5. every fuzz target for 20 s on its seeds and saved corpus (make fuzz)
# Needs ../shared (models + MVTec bottle) beside the repo; without it the
# tests that need it are reported as SKIPPED with the reason.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all
make test
make -j"$jobs" check
make valgrind
make -j"$jobs" fuzz FUZZ_SECONDS=20
