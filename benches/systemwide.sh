#!/usr/bin/env bash
# The cost of libbindto.so preloaded machine-wide for a process that asks
# nothing (issue 20): callgrind's instruction totals of a program making
# one socket() call (benches/cshim/onesocket.c), bare and with the front in
# LD_PRELOAD, no variable asking, in two cases:
#
#   none     no system file (and no user file)
#   20       /etc/bindto/profiles.toml with 20 [[match]] rules, none of them
#            fitting the program, and its match index fresh (written by the
#            engine in a run of the same program built with -DCONNECT, which
#            connects, before the measured runs)
#
#   benches/systemwide.sh [--shim DIR]
#
# Prints each total and the front's delta over the bare run of the same
# case. Goals (issue 20): none at most +15 000, 20 at most +40 000.
# Runs in a private mount namespace (overlays over /etc and /var/cache).
# Needs root (unshare, mount), gcc, valgrind, and `cargo build --release
# --workspace` done. DIR holds libbindto.so and libbindto_engine.so
# (default target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
shim=$target/release
while [ $# -gt 0 ]; do
    case $1 in
        --shim) shim=$(realpath "$2"); shift ;;
        --inside) inside=yes ;;
        *) echo "usage: benches/systemwide.sh [--shim DIR]" >&2; exit 2 ;;
    esac
    shift
done

if [ "${inside:-}" != yes ]; then
    exec unshare --mount --propagation private -- "$0" --shim "$shim" --inside
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/onesocket" benches/cshim/onesocket.c
gcc -O2 -Wall -Wextra -Werror -DCONNECT -o "$work/connect" benches/cshim/onesocket.c
for dir in etc var-cache; do
    mkdir -p "$work/$dir-upper" "$work/$dir-work"
done
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$work/etc-upper,workdir=$work/etc-work" /etc
mkdir -p /var/cache
mount -t tmpfs -o mode=0755 tmpfs /var/cache
rm -rf /etc/bindto /etc/ld.so.preload
mkdir -p "$work/home"

# Instructions of the program under callgrind, as counted in its totals,
# in an environment that asks nothing of bindto; "$@" is an env assignment
# (LD_PRELOAD=...) or nothing.
count() {
    local out=$work/callgrind.out
    env -i HOME="$work/home" PATH=/usr/bin:/bin "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$work/onesocket" >/dev/null 2>&1
    sed -n 's/^totals: *//p;s/^summary: *//p' "$out" | head -1
}

measure() {
    local case=$1 bare front
    bare=$(count)
    front=$(count LD_PRELOAD="$shim/libbindto.so")
    printf '%-5s bare %9d  front %9d  added %+7d\n' "$case" "$bare" "$front" $((front - bare))
}

measure none

mkdir -p /etc/bindto
{
    printf '[profile.vpn]\ninterface = "lo"\n'
    for i in $(seq 1 20); do
        printf '\n[[match]]\nprogram = "/opt/app%d/*"\nprofile = "vpn"\n' "$i"
    done
} >/etc/bindto/profiles.toml
# The engine finds the index missing, decides from the file and writes it
# (as root); the measured runs find it fresh. Not within a second of the
# edit: an index of a file changed so lately is written stale on purpose
# (a second edit in the same clock tick would not change its stamp).
sleep 1.1
env -i HOME="$work/home" PATH=/usr/bin:/bin LD_PRELOAD="$shim/libbindto.so" "$work/connect"
if ! ls /var/cache/bindto/match-* >/dev/null 2>&1; then
    echo "benches/systemwide.sh: no match index in /var/cache/bindto after a run" >&2
    exit 1
fi
measure 20
