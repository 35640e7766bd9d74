#!/bin/sh
# Builds the fuzzers with clang in BUILD_DIR (kept between runs, so later runs only rebuild
# what changed) and runs each for RUNS inputs from its seed corpus, with a fixed seed so a
# run is repeatable. New inputs go to a scratch dir; the seed corpus in the repo is only read.
# Usage: fuzz/run_fuzzers.sh BUILD_DIR [RUNS] [TARGET...]     exit 77: no clang here
set -eu
src=$(cd "$(dirname "$0")" && pwd)
build=$1
runs=${2:-20000}
shift $(( $# >= 2 ? 2 : 1 ))
targets=${*:-tar manifest reference fs_options blob_index lazy_toc}
command -v clang++ >/dev/null || { echo "SKIP: clang++ not installed"; exit 77; }
[ -f "$build/CMakeCache.txt" ] || cmake -S "$src" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# Quiet when it builds; the whole log when it does not (a target that stops linking is a failure
# to read, not an exit status alone).
if ! cmake --build "$build" -j2 >"$build/build.log" 2>&1; then
  grep -E "error|undefined reference" "$build/build.log" | head -20 | cut -c1-300
  echo "FAIL: the fuzz targets do not build (log: $build/build.log)"
  exit 1
fi
for t in $targets; do
  scratch=$(mktemp -d)
  echo "fuzz_$t: $runs runs"
  # -rss_limit_mb: ASan's shadow counts; -timeout: a hang is a finding, not a wait.
  if ! "$build/fuzz_$t" -runs="$runs" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/crash-$t-" "$scratch" "$src/corpus/$t" 2>"$build/fuzz_$t.log"; then
    grep -m 8 -E "ERROR:|SUMMARY:|accepted tar|parses to|multi-line|==[0-9]+==" "$build/fuzz_$t.log" | cut -c1-300
    rm -rf "$scratch"
    echo "FAIL: fuzz_$t (reproduce: $build/fuzz_$t $build/crash-$t-*)"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/fuzz_$t.log" | tr '\n' ' '
  echo
  rm -rf "$scratch"
done
echo PASS
