# Shared by the bench scripts: the binary, a work dir on the disk being
# measured, cleanup of every started process, and free loopback ports.
# Source it after setting NAME (used in messages and the work dir's name).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${CAIRN_BIN:-$TARGET/release/cairn}
[ -x "$BIN" ] || { echo "bench/$NAME.sh: $BIN not found; run cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/cairn-$NAME.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export CAIRN_SECRET=bench-secret
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
