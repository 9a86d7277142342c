#!/usr/bin/env bash
# Meshwork beside Syncthing on the same bytes, in the same run (issue 15).
#
# Two cases, each ending in a markdown table: one file (--mib, default
# 1024 MiB) and a folder of 100 KiB files (--files, default 1000), fetched
# by a second instance on 127.0.0.1 until complete on its disk. Syncthing's
# two instances are configured to talk only over 127.0.0.1 (no discovery,
# relays, NAT, STUN, usage/crash reporting or upgrades) and this is checked
# while they run. Meshwork's figures and the plain TCP copy ceiling come from
# `files_bench` run for the same case. The work lives in bench/syncthing_compare.py.
#
# Needs: python3, cargo; installs Debian's `syncthing` if missing (apt).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/syncthing_compare.sh [--mib N] [--files N] [--runs N] [--only file|folder]

  --mib N      size of the single file in MiB (default 1024; 0 skips the case)
  --files N    number of 100 KiB files in the folder (default 1000; 0 skips)
  --runs N     measure each case N times and show the medians (default 1)
  --only CASE  run just one case: file or folder
  -h, --help   this text

Builds files_bench in release (CARGO_TARGET_DIR is honoured), installs
syncthing with apt-get if it is missing, and prints one table per case.
Scratch data goes under ${TMPDIR:-/tmp} and is removed at the end.
EOF
}

mib=1024
files=1000
runs=1
only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --mib) mib="${2:?--mib needs a number}"; shift 2 ;;
        --files) files="${2:?--files needs a number}"; shift 2 ;;
        --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
        --only) only=(--only "${2:?--only needs file or folder}"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$mib" =~ ^[0-9]+$ && "$files" =~ ^[0-9]+$ && "$runs" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v syncthing >/dev/null 2>&1; then
    echo "syncthing is missing: installing Debian's package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y syncthing >&2 || { apt-get update >&2 && apt-get install -y syncthing >&2; }
fi

echo "building files_bench (release)" >&2
(cd "$repo" && cargo build --release --quiet --example files_bench >&2)
bench="${CARGO_TARGET_DIR:-$repo/target}/release/examples/files_bench"
[ -x "$bench" ] || { echo "no files_bench at $bench" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/syncthing-compare.XXXXXX")"
py=""
cleanup() {
    # The Python script, every syncthing and files_bench it started, then
    # the scratch data. It lists the pid of each, which is also the id of
    # a process group of its own (Syncthing's monitor and the syncthing it
    # runs).
    [ -n "$py" ] && kill "$py" 2>/dev/null || true
    if [ -f "$work/pids" ]; then
        while read -r pid; do
            kill -9 -- "-$pid" 2>/dev/null || true
        done < "$work/pids"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem="$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
fs="$(findmnt -no FSTYPE -T "$work" 2>/dev/null || echo '?')"
echo "## Files: Meshwork beside Syncthing"
echo
echo "Machine: $(nproc) CPU ($cpu), $mem RAM, Linux $(uname -r), $fs under ${TMPDIR:-/tmp};" \
     "$(syncthing --version | cut -d' ' -f1-2); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Command: \`bench/syncthing_compare.sh --mib $mib --files $files --runs $runs${only[*]:+ ${only[*]}}\`"
echo

# In the background and waited for, so that a signal reaches the trap at
# once rather than when Python is done.
python3 "$repo/bench/syncthing_compare.py" --work "$work" --files-bench "$bench" \
    --mib "$mib" --files "$files" --runs "$runs" "${only[@]}" &
py=$!
wait "$py"
