#!/usr/bin/env bash
# Small files over HTTP, as a photo site serves thumbnails: a single-machine
# cluster (`cairn server`) with HTTP downloads on, FILES files of 4 KiB and
# of 64 KiB uploaded, then fetched at random by wrk over keep-alive
# connections for SECS seconds, at 8 and 64 connections. Each figure is
# the median of RUNS runs (min–max). Prints Markdown on stdout.
#
#   cargo build --release && bench/http-small.sh > /tmp/http-small.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), FILES (default 500), SECS
# (default 10), RUNS (default 3). Needs wrk (apt-get install wrk).
set -euo pipefail
NAME=http-small
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-500}
SECS=${SECS:-10}
RUNS=${RUNS:-3}
command -v wrk >/dev/null || { echo "bench/http-small.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
start_http_server
# One request per wrk call picks a path at random from the list.
cat >"$WORK/random.lua" <<'EOF'
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
EOF
stats() { python3 -c 'import sys,statistics as s; v=sorted(float(x) for x in sys.argv[1:]); print(f"{s.median(v):,.0f} ({v[0]:,.0f}–{v[-1]:,.0f})")' "$@"; }
echo "| file size | connections | requests/s | MiB/s |"
echo "|---|---|---|---|"
for size in 4K 64K; do
    list="$WORK/paths-$size"
    : >"$list"
    head -c "$(numfmt --from=iec "$size")" /dev/urandom >"$WORK/one"
    for _ in $(seq 1 "$FILES"); do
        # A different body each time, so no two files are the same blob.
        printf '%s' "$RANDOM$RANDOM" | dd of="$WORK/one" conv=notrunc status=none
        echo "/$("$BIN" upload --tracker "$TRACKER" "$WORK/one")" >>"$list"
    done
    bytes=$(numfmt --from=iec "$size")
    for conns in 8 64; do
        rates=()
        for _ in $(seq 1 "$RUNS"); do
            out=$(PATHS_FILE="$list" wrk -t2 -c"$conns" -d"${SECS}s" -s "$WORK/random.lua" "http://$HTTP")
            if grep -q "Non-2xx" <<<"$out"; then
                echo "bench/http-small.sh: failed requests: $out" >&2
                exit 1
            fi
            rates+=("$(awk '/^Requests\/sec/ {print $2}' <<<"$out")")
        done
        mibs=()
        for r in "${rates[@]}"; do mibs+=("$(python3 -c "print($r * $bytes / (1 << 20))")"); done
        echo "| $size | $conns | $(stats "${rates[@]}") | $(stats "${mibs[@]}") |"
    done
done
