#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds the shim, the benches and the C helpers,
# runs the criterion bench of decide(), then `report`, which makes every other
# measurement and writes the file, keeping the sections that other scripts
# (benches/dns.sh, benches/supervise.sh) or hand measurements wrote.
#
#   benches/run.sh                   everything (about 15 minutes; rewrites BENCHMARKS.md)
#   benches/run.sh --smoke           each step once at tiny sizes (< 1 minute after
#                                    the build), into target/bench-work/BENCHMARKS.smoke.md
#   benches/run.sh --skip-profiles   everything but the release-profile experiments
#   benches/run.sh --out FILE        write FILE instead
#
# Needs gcc, valgrind, strace and strip, and root (or CAP_NET_RAW) for
# SO_BINDTODEVICE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$target/bench-work
mode=()
out=$root/BENCHMARKS.md
profiles=yes
command="benches/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) mode=(--smoke); profiles=no; out=$work/BENCHMARKS.smoke.md ;;
        --skip-profiles) profiles=no ;;
        --out) out=$(realpath -m "$2"); shift ;;
        *) echo "usage: benches/run.sh [--smoke] [--skip-profiles] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done

missing=()
for tool in gcc valgrind callgrind_annotate strace strip; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "benches/run.sh: missing ${missing[*]}; install with: apt-get install gcc valgrind strace binutils" >&2
    exit 1
fi

mkdir -p "$work"
echo "== build" >&2
# --lib too: the shim is a cdylib, which `--bins` alone would not build.
cargo build --release -p bindto-shim -p bindto-benches --lib --bins
gcc -O2 -Wall -Wextra -Werror -o "$work/netloop" benches/cshim/netloop.c
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$work/bindlo.so" benches/cshim/bindlo.c -ldl

echo "== criterion: decide" >&2
if [ ${#mode[@]} -gt 0 ]; then
    # Each benchmark once, nothing measured: proves the bench still runs.
    cargo bench -p bindto-benches --bench decide -- --test
else
    rm -rf "$target/criterion/decide"
    cargo bench -p bindto-benches --bench decide
fi

variants=()
if [ $profiles = yes ]; then
    # Each setting changed alone from [profile.release], in its own target
    # directory so the main build is left as it is.
    for v in "committed|as [profile.release]|" \
             "lto=false|CARGO_PROFILE_RELEASE_LTO=false|" \
             "lto=thin|CARGO_PROFILE_RELEASE_LTO=thin|" \
             "codegen-units=16|CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16|" \
             "opt-level=2|CARGO_PROFILE_RELEASE_OPT_LEVEL=2|" \
             "opt-level=s|CARGO_PROFILE_RELEASE_OPT_LEVEL=s|" \
             "opt-level=z|CARGO_PROFILE_RELEASE_OPT_LEVEL=z|" \
             "strip=symbols|CARGO_PROFILE_RELEASE_STRIP=symbols|"; do
        IFS='|' read -r name setting _ <<<"$v"
        if [ "$name" = committed ]; then
            variants+=(--variant "committed|$setting|$target/release/libbindto_engine.so")
            continue
        fi
        dir=$target/bench-profiles/$name
        echo "== build shim with $setting" >&2
        env "$setting" CARGO_TARGET_DIR="$dir" cargo build --release -p bindto-shim
        variants+=(--variant "$name|$setting|$dir/release/libbindto_engine.so")
    done
fi

echo "== measure" >&2
"$target/release/report" "${mode[@]}" \
    --out "$out" --work "$work" \
    --shim "$target/release/libbindto.so" \
    --netloop "$work/netloop" --bindlo "$work/bindlo.so" \
    --decide-count "$target/release/decide_count" \
    --criterion "$target/criterion/decide" \
    --command "$command" \
    "${variants[@]}"
