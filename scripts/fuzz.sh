#!/usr/bin/env bash
# Fuzzes the code that reads untrusted bytes: the wire path (a datagram or
# TCP message into the handler's response), the zone file reader and the
# config loader, with libFuzzer through cargo-fuzz.
#
#   scripts/fuzz.sh            # each target 10 s, fixed seed (a smoke run)
#   FUZZ_SECONDS=600 scripts/fuzz.sh wire
#
# cargo-fuzz needs nightly features; this machine has only the stable
# toolchain, so the build runs with RUSTC_BOOTSTRAP=1. cargo-fuzz is
# installed from crates.io when missing. Seeds: fuzz/seeds/<target>
# (committed); the growing corpus: fuzz/corpus/<target> (not committed).
# A crash leaves its input in fuzz/artifacts/<target>/: make it a
# regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire zone config)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${FUZZ_SECONDS:-10} s"
  cargo fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="${FUZZ_SECONDS:-10}" -seed=1 -print_final_stats=1
done
