# serve_lib.sh — sourced by the tests/api/*.sh tests that start `vib3 serve` (not a test itself):
# V (the binary), T (a temp dir removed at exit with every server started), pass/fail/skip counters
# with ok / bad, and serve_start.
BUILD=${BUILD:-build}
case $BUILD in /*) V=$BUILD/vib3 ;; *) V=$(pwd)/$BUILD/vib3 ;; esac   # BUILD may be absolute
T=$(mktemp -d)
pass=0; fail=0; skip=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
PIDS=""
serve_cleanup() { for p in $PIDS; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap serve_cleanup EXIT

# serve_start MODEL LOG [serve args...]: start `vib3 serve MODEL --port 0 ARGS` logging to LOG, wait
# until it listens; sets SPID, PORT and B (its base URL); 1 (with the log on stdout) if it never does
serve_start() {
    model=$1 log=$2; shift 2
    $V serve "$model" --port 0 "$@" >"$log" 2>&1 &
    SPID=$!; PIDS="$PIDS $SPID"
    PORT=""
    for i in $(seq 1 100); do
        PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$PORT" ] && { B=http://127.0.0.1:$PORT; return 0; }
        sleep 0.1
    done
    echo "server did not start:"; cat "$log"; return 1
}
