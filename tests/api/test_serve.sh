#!/bin/sh
# test_serve.sh — `vib3 serve` end to end on the bundled model: the official
# openai npm client (when npm is reachable), curl checks of SSE framing and
# error statuses, bad input (malformed / truncated JSON, wrong types, huge
# body, invalid UTF-8, a client sending one byte at a time, abrupt
# disconnects), a full queue, and a bounded load run with flat memory.
. tests/api/serve_lib.sh

$V convert --model models/tinymix-brown --output "$T/tinymix.vib3" --quant q4 >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }

start_server() { serve_start "$T/tinymix.vib3" "$@"; } # log-file extra-args...; sets PORT and SPID
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
expect() { # status description curl-args...
    want=$1; what=$2; shift 2
    got=$(code "$@")
    [ "$got" = "$want" ] && ok || { bad "$what: HTTP $got, wanted $want: $(head -c 300 "$T/body")"; }
}

# what the CLI generates greedily on the same weights: the server must say the same
EXPECTED=$($V run "$T/tinymix.vib3" "In the beginning God created" -n 16 --temp 0 --raw --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"], end="")')
export EXPECTED
start_server "$T/s1.log" --parallel 2 --queue-max 2 --body-bytes-max 65536 || { echo "0 passed, 1 failed"; exit 1; }
B=http://127.0.0.1:$PORT

# --- the official client ----------------------------------------------------
if sh tests/node/install.sh 2>"$T/npm.err"; then
    node tests/node/serve_openai.mjs "$B/v1" tinymix "$EXPECTED" > "$T/node.out" 2>&1
    line=$(tail -n 1 "$T/node.out")
    p=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p'); f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-1}))
    [ "${f:-1}" = 0 ] || cat "$T/node.out"
else
    echo "SKIP: openai npm client not installable ($(cat "$T/npm.err")) - loud skip"; skip=$((skip + 1))
fi

# --- routes and SSE framing -------------------------------------------------
expect 200 "health" $B/health
expect 200 "models" $B/v1/models
grep -q '"id": "tinymix"' "$T/body" && ok || bad "models lists tinymix"
expect 404 "unknown route" $B/v2/nothing
grep -q '"error": {"message"' "$T/body" && grep -q '"type"' "$T/body" && grep -q '"code": "not_found"' "$T/body" && ok || bad "404 in OpenAI error shape"
expect 405 "GET on a POST route" $B/v1/chat/completions
curl -sN $B/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":6,"temperature":0,"stream":true}' > "$T/sse"
python3 - "$T/sse" <<'PY' && ok || bad "SSE framing"
import json, sys
raw = open(sys.argv[1]).read()
events = raw.split("\n\n")
assert events[-1] == "", "stream ends with a blank line"
events = events[:-1]
assert all(e.startswith("data: ") and "\n" not in e for e in events), events
assert events[-1] == "data: [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
PY
expect 200 "metrics" $B/metrics
grep -q '^vib3_time_to_first_token_seconds_bucket{le="+Inf"}' "$T/body" && grep -q '^vib3_page_fault_rate' "$T/body" && grep -q '^vib3_queue_depth' "$T/body" && ok || bad "metrics content"
# the issue's tier metrics, each present once, and the policy/predictor labels
for mname in vib3_page_hits_total vib3_expert_fault_rate vib3_prefetch_issued_total vib3_prefetch_used_total \
    vib3_prefetch_recall vib3_bytes_read_per_token vib3_wasted_prefetch_bytes_total vib3_io_wait_ms_per_token; do
    [ "$(grep -c "^$mname " "$T/body")" = 1 ] && ok || bad "metrics: $mname"
done
grep -q '^vib3_tier_info{backend="[a-z_]*",evict="[a-z]*",prefetch="[a-z]*",predictor="[a-z]*"} 1$' "$T/body" && ok || bad "metrics: vib3_tier_info $(grep tier_info "$T/body")"

# --- bad input ----------------------------------------------------------------
J='-H Content-Type:application/json'
expect 400 "malformed JSON" $B/v1/chat/completions $J -d '{"messages": [}'
grep -q '"param": "body"' "$T/body" && ok || bad "malformed JSON names the body"
expect 400 "truncated JSON" $B/v1/completions $J -d '{"prompt": "abc'
expect 400 "wrong type" $B/v1/completions $J -d '{"prompt": 42}'
grep -q '"param": "prompt"' "$T/body" && ok || bad "wrong type names the field"
expect 400 "bad role" $B/v1/chat/completions $J -d '{"messages":[{"role":"robot","content":"x"}]}'
expect 400 "empty body" $B/v1/completions $J -d ''
printf '{"prompt": "\377\376 bad utf8"}' > "$T/badutf8"
expect 400 "invalid UTF-8" $B/v1/completions $J --data-binary @"$T/badutf8"
head -c 200000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt": "/; s/$/"}/' > "$T/huge"
expect 413 "huge body" $B/v1/completions $J --data-binary @"$T/huge"
expect 404 "unknown model" $B/v1/completions $J -d '{"model":"gpt-9","prompt":"x","max_tokens":1}'
python3 - "$PORT" <<'PY' && ok || bad "prompt longer than the context -> 400"
import json, sys, urllib.request, urllib.error
body = json.dumps({"prompt": "word " * 2000, "max_tokens": 1}).encode()
try:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions", body), timeout=30)
    sys.exit(1)
except urllib.error.HTTPError as e:
    d = json.load(e)
    assert e.code == 400 and d["error"]["code"] == "context_length_exceeded", (e.code, d)
PY

# a client that sends its request one byte at a time, and abrupt disconnects
python3 - "$PORT" <<'PY' && ok || bad "slow client / disconnects"
import json, os, socket, sys, time
port = int(sys.argv[1])
body = json.dumps({"prompt": "In the beginning God created", "max_tokens": 4, "temperature": 0}).encode()
req = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
       f"Connection: close\r\n\r\n").encode() + body
s = socket.create_connection(("127.0.0.1", port), timeout=30)
for b in req:
    s.send(bytes([b])); time.sleep(0.002)
resp = b""
while True:
    d = s.recv(65536)
    if not d: break
    resp += d
assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
text = json.loads(resp.split(b"\r\n\r\n", 1)[1])["choices"][0]["text"]
assert text and os.environ["EXPECTED"].startswith(text), (text, os.environ["EXPECTED"])  # 4 of the 16 greedy tokens
# disconnect in the middle of a stream, and before a non-streamed answer
for stream in (True, False):
    b2 = json.dumps({"prompt": "In the beginning", "max_tokens": 200, "temperature": 0.8, "stream": stream,
                     "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.send((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(b2)}\r\n\r\n").encode() + b2)
    if stream: s.recv(100)
    else: time.sleep(0.05)
    s.close()
# truncated request: headers promise more body than is sent, then the client leaves
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.send(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"prompt\": \"ab")
s.close()
PY
sleep 1
curl -s $B/metrics > "$T/metrics"
c=$(sed -n 's/^vib3_requests_cancelled_total //p' "$T/metrics")
[ "${c:-0}" -ge 1 ] && ok || bad "disconnects cancel generation (cancelled=$c)"
c=$(sed -n 's/^vib3_sequences_running //p' "$T/metrics")
[ "${c:-9}" = 0 ] && ok || bad "slots freed after disconnects (running=$c)"

# --- a full queue answers 503, then the server recovers; bounded load run ------
python3 - "$PORT" "$SPID" > "$T/load.out" <<'PY' && ok || { bad "queue full / load"; cat "$T/load.out"; }
import json, sys, threading, time, urllib.request, urllib.error
port, pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) * 1024
def call(max_tokens, results, i):
    body = json.dumps({"prompt": "In the beginning", "max_tokens": max_tokens, "temperature": 0.7, "seed": i,
                       "ignore_eos": True}).encode()
    t = time.time()
    try:
        r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body), timeout=120)
        json.load(r); results.append((200, time.time() - t))
    except urllib.error.HTTPError as e:
        results.append((e.code, time.time() - t))
    except Exception as e:
        results.append((str(e), time.time() - t))
# 12 simultaneous long requests against 2 slots + 2 queue places: some must get 503
res = []
th = [threading.Thread(target=call, args=(60, res, i)) for i in range(12)]
[t.start() for t in th]; [t.join() for t in th]
codes = sorted(str(c) for c, _ in res)
assert set(codes) <= {"200", "503"} and "503" in codes and "200" in codes, codes
# bounded load: 60 requests, 3 at a time (never more than slots + queue), 0 failures, flat memory
res = []
rss0 = rss()
for batch in range(20):
    th = [threading.Thread(target=call, args=(16, res, 100 + batch * 3 + k)) for k in range(3)]
    [t.start() for t in th]; [t.join() for t in th]
    if batch == 4: rss1 = rss()
rss2 = rss()
codes = [c for c, _ in res]
lat = sorted(t for _, t in res)
assert codes.count(200) == 60, codes
p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
print(f"load: 60 requests x 16 tokens, 3 concurrent: p50 {p50*1000:.0f} ms, p99 {p99*1000:.0f} ms, "
      f"{60*16/sum(lat)*3:.1f} tok/s aggregate; RSS {rss0>>20} -> {rss1>>20} -> {rss2>>20} MiB")
assert rss2 - rss1 < 16 << 20, "memory grew under steady load"
PY
cat "$T/load.out"

# --- API key ------------------------------------------------------------------
start_server "$T/s2.log" --api-key s3cret || bad "second server"
K=http://127.0.0.1:$PORT
expect 401 "missing key" $K/v1/models
grep -q '"code": "invalid_api_key"' "$T/body" && ok || bad "401 error shape"
expect 401 "wrong key" $K/v1/models -H "Authorization: Bearer s3cre"
expect 200 "right key" $K/v1/models -H "Authorization: Bearer s3cret"
expect 200 "health needs no key" $K/health
grep -q "127.0.0.1" "$T/s2.log" && ok || bad "binds to 127.0.0.1 by default"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
