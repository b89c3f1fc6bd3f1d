#!/bin/sh
# test_openai_conformance.sh — `vib3 serve` against what the OpenAI API reference (and
# llama.cpp's server) promise a client, on the bundled model: stop sequences (string and
# array, split across tokens, streamed and not) never appear in the output; usage counts;
# finish_reason; seed determinism; max_completion_tokens; stream_options.include_usage;
# features the server lacks (n > 1, tools, a JSON response_format, logit_bias) refused with
# a 400 naming the parameter instead of silently ignored; a prompt longer than the context
# refused with its token count; every error in OpenAI's shape; a 405 with its Allow header;
# /metrics valid Prometheus text (one TYPE per name, no duplicate series); the server still
# serving after all of it. Driven by one python3 script over HTTP (urllib), ~5 s.
. tests/api/serve_lib.sh

[ -d models/tinymix-brown ] || { echo "SKIP: models/tinymix-brown absent - loud skip"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
$V convert --model models/tinymix-brown --output "$T/tinymix.vib3" --quant q4 >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }
serve_start "$T/tinymix.vib3" "$T/s.log" --parallel 2 --ctx-size 256 || { echo "0 passed, 1 failed"; exit 1; }

python3 - "http://127.0.0.1:$PORT" >"$T/out" 2>&1 <<'PY'
import json, re, sys, urllib.request, urllib.error
B = sys.argv[1]
passed = failed = 0
def check(cond, what):
    global passed, failed
    if cond: passed += 1
    else: failed += 1; print("FAIL:", what)

def http(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(B + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()

def post(path, body, raw=None):
    st, _, txt = http("POST", path, body, raw)
    return st, txt

def sse(path, body):
    st, txt = post(path, dict(body, stream=True))
    events = [e for e in txt.split("\n\n") if e]
    chunks = [json.loads(e[6:]) for e in events if e.startswith("data: ") and e != "data: [DONE]"]
    return st, chunks, events

def chat_text(txt): return json.loads(txt)["choices"][0]["message"]["content"]

def is_openai_error(st, txt, want_status, want_param=None):
    try: e = json.loads(txt)["error"]
    except Exception: return False
    ok = st == want_status and set(e) >= {"message", "type", "param", "code"} and isinstance(e["message"], str) and e["message"]
    return ok and (want_param is None or e["param"] == want_param)

C, P = "/v1/chat/completions", "/v1/completions"
msgs = [{"role": "user", "content": "Hello"}]
greedy = {"messages": msgs, "max_tokens": 40, "temperature": 0}

# --- stop sequences: cut before the match, streamed and not, also when split across tokens ----
st, txt = post(C, greedy)
full = chat_text(txt)
check(st == 200 and len(full) > 20, "greedy chat: %d %r" % (st, txt[:200]))
words = full.split()
stops = []
if len(words) >= 4:
    stops = [words[2], " ".join(words[1:3]), full[5:9], [" zzz-never", words[3]]]   # full[5:9]: usually inside tokens
for stop in stops:
    first = min(full.find(s) for s in (stop if isinstance(stop, list) else [stop]) if s in full)
    st, txt = post(C, dict(greedy, stop=stop))
    j = json.loads(txt)
    c = j["choices"][0]
    check(c["message"]["content"] == full[:first] and c["finish_reason"] == "stop", "stop %r: %r (%s), wanted %r" % (stop, c["message"]["content"], c["finish_reason"], full[:first]))
    st, chunks, _ = sse(C, dict(greedy, stop=stop))
    streamed = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch.get("choices"))
    fr = [ch["choices"][0]["finish_reason"] for ch in chunks if ch.get("choices")][-1]
    check(streamed == full[:first] and fr == "stop", "streamed stop %r: %r (%s)" % (stop, streamed, fr))
    check(j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"] + j["usage"]["completion_tokens"], "usage sums")

# --- completions: max_tokens -> "length", usage counts, stop --------------------------------
st, txt = post(P, {"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0})
j = json.loads(txt)
check(st == 200 and j["object"] == "text_completion" and j["choices"][0]["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 5, "completion length: %s" % txt[:300])
plain = j["choices"][0]["text"]
st2, txt2 = post(P, {"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "stop": plain[2:5]})
check(st2 == 200 and json.loads(txt2)["choices"][0]["text"] == plain[:plain.find(plain[2:5])], "completion stop: %s" % txt2[:300])
# max_completion_tokens is the newer name of max_tokens
st, txt = post(C, dict(greedy, max_tokens=None, max_completion_tokens=3))
check(st == 200 and json.loads(txt)["usage"]["completion_tokens"] == 3 and json.loads(txt)["choices"][0]["finish_reason"] == "length", "max_completion_tokens: %s" % txt[:300])

# --- seed: same seed same text, other seed other text ------------------------------------------
hot = {"messages": msgs, "max_tokens": 24, "temperature": 1.0}
a = chat_text(post(C, dict(hot, seed=7))[1]); b = chat_text(post(C, dict(hot, seed=7))[1]); c2 = chat_text(post(C, dict(hot, seed=8))[1])
check(a == b, "seed 7 twice: %r vs %r" % (a, b))
check(a != c2, "seeds 7 and 8 gave the same text %r" % a)

# --- stream_options.include_usage: a last chunk with empty choices and the usage ---------------
st, chunks, events = sse(C, {"messages": msgs, "max_tokens": 4, "temperature": 0, "stream_options": {"include_usage": True}})
check(events[-1] == "data: [DONE]" and chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4, "include_usage: %r" % events[-2:])
check(all("usage" not in ch or ch is chunks[-1] for ch in chunks), "usage only in the last chunk")

# --- unsupported features: a clear 400 naming the parameter (never silently ignored) -----------
for extra, param in [({"n": 2}, "n"),
                     ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
                     ({"response_format": {"type": "json_object"}}, "response_format"),
                     ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
                     ({"logit_bias": {"50": 100}}, "logit_bias"),
                     ({"top_logprobs": 3}, "top_logprobs")]:
    st, txt = post(C, dict(greedy, max_tokens=2, **extra))
    check(is_openai_error(st, txt, 400, param), "%s: wanted a 400 naming %s, got %d %s" % (extra, param, st, txt[:200]))
# their "off" values are fine
for extra in [{"tools": []}, {"response_format": {"type": "text"}}, {"logit_bias": {}}, {"n": 1}, {"logprobs": False}]:
    st, txt = post(C, dict(greedy, max_tokens=2, **extra))
    check(st == 200, "%s: %d %s" % (extra, st, txt[:200]))
# logprobs are supported: one entry per generated token
st, txt = post(C, dict(greedy, max_tokens=3, logprobs=True, top_logprobs=2))
lp = json.loads(txt)["choices"][0]["logprobs"]["content"] if st == 200 else []
check(len(lp) == 3 and all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0 for t in lp), "chat logprobs: %s" % txt[:300])

# logprobs follow the returned text: a stop string cut from the text takes its tokens' entries
# with it (llama.cpp does the same), and completions' text_offset has one offset per token,
# counted from the start of the prompt
stop = full[8:12]
st, txt = post(C, dict(greedy, logprobs=True, stop=stop))
j = json.loads(txt) if st == 200 else {}
lp = j["choices"][0]["logprobs"]["content"] if j else []
joined = "".join(t["token"] for t in lp)
check(j and joined.startswith(j["choices"][0]["message"]["content"]) and len(joined) < len(j["choices"][0]["message"]["content"]) + len(stop),
      "chat logprobs end with the text cut at stop %r: %r vs %r" % (stop, joined, j and j["choices"][0]["message"]["content"]))
prompt = "Once upon a time"
st, txt = post(P, {"prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 1})
lpc = json.loads(txt)["choices"][0]["logprobs"] if st == 200 else {}
check(lpc and len(lpc["text_offset"]) == len(lpc["tokens"]) == len(lpc["token_logprobs"]) == 6 and lpc["text_offset"][0] == len(prompt)
      and lpc["text_offset"] == sorted(lpc["text_offset"]), "completion logprobs text_offset: %s" % txt[:400])
for extra, param in [({"best_of": 3}, "best_of"), ({"suffix": "The end."}, "suffix")]:
    st, txt = post(P, dict({"prompt": prompt, "max_tokens": 2}, **extra))
    check(is_openai_error(st, txt, 400, param), "%s: wanted a 400 naming %s, got %d %s" % (extra, param, st, txt[:200]))

# --- a prompt longer than the context: 400 with the numbers ------------------------------------
st, txt = post(P, {"prompt": "hello " * 400, "max_tokens": 4})
check(is_openai_error(st, txt, 400, "prompt") and json.loads(txt)["error"]["code"] == "context_length_exceeded", "long prompt: %d %s" % (st, txt[:300]))
msg = json.loads(txt)["error"]["message"] if st == 400 else ""
nums = [int(x) for x in re.findall(r"\d+", msg)]
check(256 in nums and any(n > 256 for n in nums), "the context error names the context and the prompt's tokens: %r" % msg)

# --- bad requests: OpenAI's error shape, sensible status ---------------------------------------
bad = [(C, {"messages": []}, None, 400, "messages"),
       (C, {"messages": msgs, "max_tokens": "ten"}, None, 400, "max_tokens"),
       (C, {"messages": msgs, "max_tokens": 0}, None, 400, "max_tokens"),
       (C, {"messages": msgs, "max_tokens": 5, "max_completion_tokens": 0}, None, 400, "max_completion_tokens"),
       (C, {"messages": msgs, "temperature": 3}, None, 400, "temperature"),
       (C, {"messages": msgs, "stop": ["a", "b", "c", "d", "e"]}, None, 400, "stop"),
       (C, {"messages": [{"role": "robot", "content": "x"}]}, None, 400, "messages[0].role"),
       (C, {"messages": msgs, "model": "no-such-model"}, None, 404, "model"),
       (C, None, b"", 400, None),
       (C, None, b'{"messages": [', 400, None),
       (C, None, b"[1, 2]", 400, None),
       (P, {"max_tokens": 2}, None, 400, "prompt")]
for path, body, raw, want, param in bad:
    st, txt = post(path, body, raw)
    check(is_openai_error(st, txt, want, param), "%s %r: wanted %d (%s), got %d %s" % (path, body if raw is None else raw, want, param, st, txt[:200]))

# --- 405 with Allow, 404 -------------------------------------------------------------------------
st, hdr, txt = http("GET", C)
check(st == 405 and hdr.get("Allow") == "POST" and is_openai_error(st, txt, 405), "GET %s: %d Allow=%r" % (C, st, hdr.get("Allow")))
st, hdr, txt = http("POST", "/health", raw=b"{}")
check(st == 405 and "GET" in (hdr.get("Allow") or ""), "POST /health: %d Allow=%r" % (st, hdr.get("Allow")))
st, hdr, txt = http("GET", "/v1/nothing")
check(is_openai_error(st, txt, 404), "unknown route: %d" % st)

# --- /v1/models, /health -----------------------------------------------------------------------
st, _, txt = http("GET", "/v1/models")
m = json.loads(txt)
check(st == 200 and m["object"] == "list" and m["data"][0]["object"] == "model" and isinstance(m["data"][0]["id"], str), "models: %s" % txt[:200])
st, _, txt = http("GET", "/health")
check(st == 200 and json.loads(txt).get("status") == "ok", "health: %s" % txt)

# --- /metrics: valid Prometheus text -----------------------------------------------------------
st, hdr, txt = http("GET", "/metrics")
types, series, problems = {}, set(), []
for line in txt.splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        if name in types: problems.append("second TYPE for " + name)
        types[name] = kind
        continue
    if not line or line.startswith("#"): continue
    mt = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (\S+)$', line)
    if not mt: problems.append("bad line " + line); continue
    name = mt.group(1)
    if name + (mt.group(2) or "") in series: problems.append("duplicate series " + line)
    series.add(name + (mt.group(2) or ""))
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    if name not in types and not (base in types and types[base] == "histogram"): problems.append("no TYPE for " + name)
    try: float(mt.group(4))
    except ValueError: problems.append("bad value " + line)
check(st == 200 and len(series) > 20 and not problems, "metrics: %s" % problems[:5])
# the 405s above are counted as such, not as 400s
n405 = re.search(r'^vib3_requests_total\{status="405"\} (\d+)$', txt, re.M)
check(n405 and int(n405.group(1)) == 2, "requests_total{status=\"405\"}: %s" % (n405 and n405.group(0)))

# --- still serving -------------------------------------------------------------------------------
st, txt = post(C, dict(greedy, max_tokens=2))
check(st == 200, "still serving after the bad requests: %d" % st)
print("%d passed, %d failed, 0 skipped" % (passed, failed))
PY
cat "$T/out"
tail -n 1 "$T/out" | grep -q "^[0-9]* passed, [0-9]* failed" || echo "0 passed, 1 failed"
