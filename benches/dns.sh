#!/usr/bin/env bash
# The resolver benchmark: getaddrinfo of one name, answered by a DNS server
# on loopback, through glibc's own resolver and through bindto's (a profile
# whose [dns] 53 names that server), in a private network and mount
# namespace whose /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf name
# that server for glibc too.
#
#   benches/dns.sh [--shim DIR] [--lookups N] [--runs R]
#
# Prints, for AF_INET and AF_UNSPEC: callgrind instructions per lookup
# (runs of N and 2N lookups, the difference over N) for glibc and bindto,
# and, from R pairs of wall-time runs of 20 N lookups each (glibc and
# bindto, in alternating order), the medians and the median ratio.
# DIR holds libbindto.so and libbindto_engine.so (default target/release).
# Needs root (unshare), gcc, valgrind, and `cargo build --release
# --workspace` done (for the shim and lab-dns).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
shim=$target/release
lookups=200
runs=11
while [ $# -gt 0 ]; do
    case $1 in
        --shim) shim=$(realpath "$2"); shift ;;
        --lookups) lookups=$2; shift ;;
        --runs) runs=$2; shift ;;
        --inside) inside=yes ;;
        *) echo "usage: benches/dns.sh [--shim DIR] [--lookups N] [--runs R]" >&2; exit 2 ;;
    esac
    shift
done

if [ "${inside:-}" != yes ]; then
    exec unshare --net --mount -- "$0" --shim "$shim" --lookups "$lookups" --runs "$runs" --inside
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ip link set lo up
gcc -O2 -Wall -Wextra -Werror -o "$work/gailoop" benches/cshim/gailoop.c
printf 'nameserver 127.0.0.1\n' >"$work/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$work/hosts"
printf 'hosts: files dns\n' >"$work/nsswitch.conf"
for f in resolv.conf hosts nsswitch.conf; do
    mount --bind "$work/$f" "/etc/$f"
done
cat >"$work/profiles.toml" <<TOML
[profile.bench]
interface = "lo"

[profile.bench.dns]
53 = "127.0.0.1"
TOML

# lab-dns answers host.bindto.test (A and AAAA) and exits with this shell.
coproc dns { exec "$target/release/lab-dns" --name vpn --log "$work/dns.log" --listen 127.0.0.1 --port 53; }
read -r _ <&"${dns[0]}"

name=host.bindto.test
glibc() { env "$@"; }
bindto() { env LD_PRELOAD="$shim/libbindto.so" BINDTO_CONFIG="$work/profiles.toml" BIND_PROFILE=bench XDG_CACHE_HOME="$work/cache" "$@"; }

# Instructions of `gailoop N` under callgrind, as counted in its totals.
instructions() {
    local who=$1 n=$2 family=$3 out=$work/cg.out
    $who valgrind --tool=callgrind --callgrind-out-file="$out" "$work/gailoop" "$n" "$name" "$family" >/dev/null 2>&1
    sed -n 's/^totals: *//p;s/^summary: *//p' "$out" | head -1
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for family in 4 0; do
    label=$([ "$family" = 4 ] && echo AF_INET || echo AF_UNSPEC)
    for who in glibc bindto; do
        one=$(instructions $who "$lookups" "$family")
        two=$(instructions $who $((2 * lookups)) "$family")
        echo "$label $who instructions/lookup $(((two - one) / lookups))"
    done
    # Pairs, in alternating order; the ratio is the median of the pairs'
    # ratios, which a busy machine disturbs less than either median.
    : >"$work/glibc.ns"
    : >"$work/bindto.ns"
    : >"$work/ratio"
    for run in $(seq "$runs"); do
        if [ $((run % 2)) = 1 ]; then
            g=$(glibc "$work/gailoop" $((20 * lookups)) "$name" "$family")
            b=$(bindto "$work/gailoop" $((20 * lookups)) "$name" "$family")
        else
            b=$(bindto "$work/gailoop" $((20 * lookups)) "$name" "$family")
            g=$(glibc "$work/gailoop" $((20 * lookups)) "$name" "$family")
        fi
        echo "$g" >>"$work/glibc.ns"
        echo "$b" >>"$work/bindto.ns"
        awk -v b="$b" -v g="$g" 'BEGIN {printf "%.3f\n", b / g}' >>"$work/ratio"
    done
    echo "$label wall ns/lookup (medians of $runs alternating pairs): glibc $(median <"$work/glibc.ns") bindto $(median <"$work/bindto.ns"), ratio $(median <"$work/ratio")"
done
