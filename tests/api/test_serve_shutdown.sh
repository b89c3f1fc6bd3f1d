#!/bin/sh
# test_serve_shutdown.sh — `vib3 serve` stops gracefully on SIGTERM / SIGINT:
#  A. grace long enough: the listening socket closes at once (a new connection is refused), the
#     stream and the non-streamed request in flight finish completely (all max_tokens), the stream
#     ends in "data: [DONE]", the process exits 0 and logs each phase;
#  B. grace too short (--shutdown-timeout 0.5, SIGINT): running requests end early but properly —
#     streams with a last chunk finish_reason "length" then [DONE], a running non-streamed request
#     with a complete JSON body, a queued non-streamed one with a 503 JSON error; exit 0 promptly;
#  C. a second signal ends the process at once.
# The model is the bundled tinymix, converted here; -c 16384 lets a generation run for seconds.
. tests/api/serve_lib.sh

$V convert --model models/tinymix-brown --output "$T/tinymix.vib3" --quant q4 >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }

start_server() { log=$1; shift; serve_start "$T/tinymix.vib3" "$log" -c 16384 "$@"; } # log-file extra-args...
# wait for SPID to exit within $1 seconds; sets RC (the exit status; 255 = still running after the wait)
wait_exit() {
    for i in $(seq 1 $(($1 * 10))); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SPID" 2>/dev/null; then RC=255; kill -9 "$SPID"; wait "$SPID" 2>/dev/null; return; fi
    wait "$SPID"; RC=$?
}

# the client side of every case: python3, stdlib only
cat > "$T/client.py" <<'PY'
import http.client, json, os, signal, socket, sys, threading, time
mode, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAX = int(sys.argv[4])
errors = []
def check(cond, what):
    if not cond: errors.append(what)

def body(stream, seed):
    return json.dumps({"prompt": "In the beginning", "max_tokens": MAX, "temperature": 0.8, "seed": seed,
                       "ignore_eos": True, "stream": stream, "stream_options": {"include_usage": True}})

def read_sse(resp):
    """the whole stream, raw; http.client undoes the chunked framing and raises on a cut-off chunk"""
    raw = b""
    try:
        while True:
            d = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
            if not d: break
            raw += d
    except Exception as e:
        errors.append(f"stream cut off: {e!r}")
    return raw.decode()

def sse_events(raw):
    ev = raw.split("\n\n")
    check(ev[-1] == "", f"stream does not end with a blank line: {raw[-80:]!r}")
    ev = ev[:-1]
    check(all(e.startswith("data: ") and "\n" not in e for e in ev), "every event is one data: line")
    check(ev and ev[-1] == "data: [DONE]", f"stream ends with data: [DONE] (last: {ev[-1:]!r})")
    chunks = [json.loads(e[6:]) for e in ev if e != "data: [DONE]"]
    fin = [c for c in chunks if c.get("choices") and c["choices"][0].get("finish_reason")]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    check(len(fin) == 1, f"one chunk with a finish_reason ({len(fin)})")
    check(len(usage) == 1, "one usage chunk")
    text = "".join(c["choices"][0].get("text", "") for c in chunks if c.get("choices"))
    return (fin[0]["choices"][0]["finish_reason"] if fin else None), (usage[0]["completion_tokens"] if usage else -1), text

def post(stream, seed):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/completions", body(stream, seed), {"Content-Type": "application/json"})
    return c.getresponse()

results = {}
def nonstream(name, seed):
    try:
        r = post(False, seed)
        results[name] = (r.status, json.loads(r.read()))
    except Exception as e:
        results[name] = ("exception", repr(e))

def stream_all(name, seed):
    try:
        r = post(True, seed)
        results[name] = (r.status, read_sse(r))
    except Exception as e:
        results[name] = ("exception", repr(e))

if mode in ("grace", "force"):
    ka = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a kept-alive connection, idle at the signal
    ka.request("GET", "/health"); ka.getresponse().read()
    s1 = post(True, 1)
    check(s1.status == 200, f"stream status {s1.status}")
    first = s1.read1(65536) if hasattr(s1, "read1") else b""
    check(first.startswith(b"data: "), f"first event {first[:60]!r}")
    th = [threading.Thread(target=nonstream, args=("n1", 2))]
    th[0].start()
    if mode == "force":  # 2 slots: n1 runs beside s1; n2 and s2 wait in the queue
        time.sleep(0.3)
        th += [threading.Thread(target=nonstream, args=("n2", 3)), threading.Thread(target=stream_all, args=("s2", 4))]
        th[1].start(); th[2].start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM if mode == "grace" else signal.SIGINT)
    time.sleep(0.3)
    alive = True
    try:
        os.kill(pid, 0)
    except OSError:
        alive = False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        errors.append("a new connection after the signal was accepted")
    except ConnectionRefusedError:
        pass
    if mode == "grace":  # a new request on the kept-alive connection: 503, and the connection closes
        try:
            ka.request("GET", "/health"); r = ka.getresponse(); b = r.read()
            check(r.status == 503 and b"server_shutting_down" in b and (r.getheader("Connection") or "").lower() == "close",
                  f"request on a kept-alive connection while draining: {r.status} {r.getheader('Connection')} {b[:120]!r}")
        except Exception as e:
            errors.append(f"kept-alive connection while draining: {e!r}")
    raw = first.decode() + read_sse(s1)
    fin, n, text = sse_events(raw)
    [t.join() for t in th]
    if mode == "grace":
        check(alive, "the server was still running (draining) when the new connection was refused")
        check(fin == "length" and n == MAX, f"stream completed: finish {fin}, {n} of {MAX} tokens")
        st, j = results["n1"]
        check(st == 200 and j["usage"]["completion_tokens"] == MAX and j["choices"][0]["finish_reason"] == "length",
              f"non-streamed request completed: {st} {str(j)[:200]}")
    else:
        check(fin == "length" and 0 < n < MAX, f"stream ended early with finish_reason length: {fin}, {n} of {MAX}")
        st, j = results["n1"]
        check(st == 200 and j["choices"][0]["finish_reason"] == "length" and 0 < j["usage"]["completion_tokens"] < MAX,
              f"running non-streamed request: complete JSON, length: {st} {str(j)[:200]}")
        st, j = results["n2"]
        check(st == 503 and j["error"]["code"] == "server_shutting_down",
              f"queued non-streamed request: 503 JSON: {st} {str(j)[:200]}")
        st, raw2 = results["s2"]
        check(st == 200, f"queued stream: {st} {raw2[:200]}")
        fin2, n2, _ = sse_events(raw2) if st == 200 else (None, -1, "")
        check(fin2 == "length" and n2 == 0, f"queued stream: finish {fin2}, {n2} tokens")
elif mode == "twice":
    s1 = post(True, 1)
    s1.read1(65536)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    read_sse(s1)
    errors = [e for e in errors if not e.startswith("stream cut off")]  # cut off is what this case asks
print("\n".join(errors) if errors else "ok")
sys.exit(1 if errors else 0)
PY

# --- A: SIGTERM, the grace period is long enough --------------------------------
start_server "$T/a.log" --parallel 2 --shutdown-timeout 60 || { echo "0 passed, 1 failed"; exit 1; }
python3 "$T/client.py" grace "$PORT" "$SPID" 1500 > "$T/a.out" 2>&1 && ok || { bad "graceful drain"; cat "$T/a.out"; }
wait_exit 10
[ "$RC" = 0 ] && ok || bad "exit status after a graceful stop: $RC (255 = still running after 10 s)"
grep -q "SIGTERM: stopped listening; finishing" "$T/a.log" && grep -q "all requests finished" "$T/a.log" &&
    grep -q "vib3 serve: stopped" "$T/a.log" && ok || { bad "phase log lines"; cat "$T/a.log"; }

# --- B: SIGINT, the grace period runs out -----------------------------------------
start_server "$T/b.log" --parallel 2 --queue-max 4 --shutdown-timeout 0.5 || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
python3 "$T/client.py" force "$PORT" "$SPID" 16000 > "$T/b.out" 2>&1 && ok || { bad "forced end"; cat "$T/b.out"; }
wait_exit 10
[ "$RC" = 0 ] && ok || bad "exit status after the grace ran out: $RC"
grep -q "SIGINT: stopped listening" "$T/b.log" && grep -q "grace period of 0.5 s over: ending" "$T/b.log" && ok ||
    { bad "forced phase log lines"; cat "$T/b.log"; }

# --- C: a second signal exits at once ---------------------------------------------
start_server "$T/c.log" --shutdown-timeout 60 || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
t0=$(date +%s)
python3 "$T/client.py" twice "$PORT" "$SPID" 16000 > "$T/c.out" 2>&1 || { bad "second signal client"; cat "$T/c.out"; }
wait_exit 5
[ "$RC" = 143 ] && [ $(($(date +%s) - t0)) -le 5 ] && ok || bad "second SIGTERM: exit status $RC (want 143: killed by SIGTERM)"
grep -q "second signal: exiting now" "$T/c.log" && ok || { bad "second signal log"; cat "$T/c.log"; }

# --- D: the official openai npm client over a forced shutdown ---------------------
if [ -f tests/node/node_modules/openai/index.mjs ] && command -v node >/dev/null; then
    start_server "$T/d.log" --shutdown-timeout 0.3 || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
    node tests/api/shutdown_openai.mjs "http://127.0.0.1:$PORT/v1" tinymix "$SPID" > "$T/d.out" 2>&1
    line=$(tail -n 1 "$T/d.out")
    p=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p'); f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-1}))
    [ "${f:-1}" = 0 ] || cat "$T/d.out"
    wait_exit 10
    [ "$RC" = 0 ] && ok || bad "exit status after the openai client case: $RC"
else
    echo "SKIP: openai npm client not installed (sh tests/node/install.sh) - loud skip"; skip=$((skip + 1))
fi

# --- bad value --------------------------------------------------------------------
$V serve "$T/tinymix.vib3" --shutdown-timeout -1 >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--shutdown-timeout" "$T/err" && ok || bad "--shutdown-timeout -1: exit $rc, $(cat "$T/err")"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
