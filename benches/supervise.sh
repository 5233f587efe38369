#!/usr/bin/env bash
# The cost of supervision (bindto run --supervise), against the bare program
# and the preloaded library, in interleaved rounds; prints Markdown for
# BENCHMARKS.md. Not part of benches/run.sh (whose report keeps that section).
#
#   benches/supervise.sh [ROUNDS]     default 9 rounds
#
# Per round and variant: netloop tcp 2000 (loopback socket+connect+close,
# ns per connect), netloop udp 20000 (sendto with an address on one
# unconnected socket, ns per datagram), then 100 runs of /bin/true (exec
# and start-up, no network call), ms per run. Sends on connected sockets
# are not measured: the filter lets them through without a stop.
# Needs gcc, a release build (cargo build --release --workspace), and root
# or CAP_NET_RAW (interface = lo).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
rounds=${1:-9}
work=$target/bench-work
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/netloop" benches/cshim/netloop.c
bindto=$target/release/bindto
net=$work/netloop
declare -A run=(
    [bare]=""
    [preload]="$bindto run --interface lo --"
    [supervised]="$bindto run --interface lo --supervise --"
)
variants=(bare preload supervised)
execs() {
    local start end
    start=$(date +%s%N)
    for _ in $(seq 100); do $1 /bin/true; done
    end=$(date +%s%N)
    echo "scale=3; ($end - $start) / 100 / 1000000" | bc
}
results=$work/supervise.tsv
: >"$results"
for round in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        # shellcheck disable=SC2086
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$v" \
            "$(${run[$v]} "$net" tcp 2000)" "$(${run[$v]} "$net" udp 20000)" \
            "$(execs "${run[$v]}")" >>"$results"
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
by = {}
for r, v, tcp, udp, ex in rows:
    by.setdefault(v, []).append((int(r), float(tcp), float(udp), float(ex)))
def med(xs):
    return statistics.median(xs)
print("| variant | TCP connect | UDP sendto | exec of /bin/true |")
print("| --- | ---: | ---: | ---: |")
for v in ("bare", "preload", "supervised"):
    xs = by[v]
    print(f"| {v} | {med([x[1] for x in xs]):.0f} ns | {med([x[2] for x in xs]):.0f} ns | {med([x[3] for x in xs]):.2f} ms |")
print()
print("Ratios per round, median (range); differences of the medians:")
print()
print("| ratio | TCP connect | UDP sendto | exec of /bin/true |")
print("| --- | ---: | ---: | ---: |")
for a, b in (("supervised", "bare"), ("supervised", "preload"), ("preload", "bare")):
    cells = []
    for i in (1, 2, 3):
        rs = [x[i] / y[i] for x, y in zip(by[a], by[b])]
        d = med([x[i] for x in by[a]]) - med([y[i] for y in by[b]])
        unit = f"{d/1000:+.1f} µs" if i < 3 else f"{d:+.2f} ms"
        cells.append(f"{med(rs):.2f} ({min(rs):.2f}–{max(rs):.2f}), {unit}")
    print(f"| {a}/{b} | " + " | ".join(cells) + " |")
PY
