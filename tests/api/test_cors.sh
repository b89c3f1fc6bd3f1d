#!/bin/sh
# test_cors.sh — browsers may call `vib3 serve` from the origins --cors-origins allows (default
# "localhost": http(s)://localhost, 127.0.0.1, [::1] on any port, as Ollama; "*" = any, as
# llama.cpp): an OPTIONS preflight gets 204 with the methods and the requested headers (no API
# key needed: browsers send none), every response (JSON, errors, SSE) names the allowed origin;
# another origin gets no CORS header and a 403 preflight; requests without Origin are unchanged.
. tests/api/serve_lib.sh
[ -d models/tinymix-brown ] || { echo "SKIP: models/tinymix-brown absent - loud skip"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
$V convert --model models/tinymix-brown --output "$T/t.vib3" --quant q4 >/dev/null 2>&1 || { echo "0 passed, 1 failed"; exit 1; }

start() { # serve with extra flags (the previous server stopped first); sets B
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    serve_start "$T/t.vib3" "$T/s.log" --ctx-size 256 "$@" || bad "server did not start"
}
hdr() { grep -i "^$1:" "$T/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
status() { head -n 1 "$T/h" | cut -d' ' -f2; }

start
curl -s -o /dev/null -D "$T/h" -X OPTIONS "$B/v1/chat/completions" -H "Origin: http://localhost:5173" \
    -H "Access-Control-Request-Method: POST" -H "Access-Control-Request-Headers: content-type, authorization, x-stainless-os"
[ "$(status)" = 204 ] && ok || bad "preflight status $(status)"
[ "$(hdr Access-Control-Allow-Origin)" = "http://localhost:5173" ] && ok || bad "preflight Allow-Origin '$(hdr Access-Control-Allow-Origin)'"
[ "$(hdr Access-Control-Allow-Methods)" = "POST, OPTIONS" ] && ok || bad "preflight Allow-Methods '$(hdr Access-Control-Allow-Methods)'"
[ "$(hdr Access-Control-Allow-Headers)" = "content-type, authorization, x-stainless-os" ] && ok || bad "preflight Allow-Headers '$(hdr Access-Control-Allow-Headers)'"
curl -s -o /dev/null -D "$T/h" -X OPTIONS "$B/v1/models" -H "Origin: https://evil.example"
[ "$(status)" = 403 ] && [ -z "$(hdr Access-Control-Allow-Origin)" ] && ok || bad "foreign preflight: $(status) '$(hdr Access-Control-Allow-Origin)'"
curl -s -o /dev/null -D "$T/h" "$B/v1/models" -H "Origin: http://127.0.0.1:3000"
[ "$(hdr Access-Control-Allow-Origin)" = "http://127.0.0.1:3000" ] && [ "$(hdr Vary)" = Origin ] && ok || bad "GET from loopback: '$(hdr Access-Control-Allow-Origin)'"
for o in https://evil.example http://localhost.evil.example http://127.0.0.1.evil.example:80 "http://localhost:80x"; do
    curl -s -o /dev/null -D "$T/h" "$B/v1/models" -H "Origin: $o"
    [ "$(status)" = 200 ] && [ -z "$(hdr Access-Control-Allow-Origin)" ] && ok || bad "foreign origin $o got '$(hdr Access-Control-Allow-Origin)'"
done
curl -s -o /dev/null -D "$T/h" "$B/v1/models"
[ "$(status)" = 200 ] && [ -z "$(hdr Access-Control-Allow-Origin)" ] && ok || bad "no Origin: no CORS header"
curl -s -N -o "$T/sse" -D "$T/h" "$B/v1/chat/completions" -H "Origin: http://[::1]:8000" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}'
[ "$(hdr Access-Control-Allow-Origin)" = "http://[::1]:8000" ] && grep -q '^data: \[DONE\]' "$T/sse" && ok || bad "SSE Allow-Origin '$(hdr Access-Control-Allow-Origin)'"
curl -s -o /dev/null -D "$T/h" "$B/v1/chat/completions" -H "Origin: http://localhost" -H 'Content-Type: application/json' -d '{'
[ "$(status)" = 400 ] && [ "$(hdr Access-Control-Allow-Origin)" = "http://localhost" ] && ok || bad "error responses carry CORS too: $(status) '$(hdr Access-Control-Allow-Origin)'"

# an explicit list, with an API key: the preflight needs none, the request still does
start --cors-origins "https://app.example.com, http://localhost:9999" --api-key sekret
curl -s -o /dev/null -D "$T/h" -X OPTIONS "$B/v1/completions" -H "Origin: https://app.example.com"
[ "$(status)" = 204 ] && [ "$(hdr Access-Control-Allow-Origin)" = "https://app.example.com" ] && ok || bad "listed origin preflight: $(status)"
curl -s -o /dev/null -D "$T/h" -X OPTIONS "$B/v1/completions" -H "Origin: http://localhost:5173"
[ "$(status)" = 403 ] && ok || bad "unlisted loopback origin preflight: $(status)"
curl -s -o /dev/null -D "$T/h" "$B/v1/models" -H "Origin: https://app.example.com"
[ "$(status)" = 401 ] && [ "$(hdr Access-Control-Allow-Origin)" = "https://app.example.com" ] && ok || bad "keyed GET: $(status) '$(hdr Access-Control-Allow-Origin)'"
# any origin
start --cors-origins "*"
curl -s -o /dev/null -D "$T/h" "$B/v1/models" -H "Origin: https://anything.example"
[ "$(hdr Access-Control-Allow-Origin)" = "https://anything.example" ] && ok || bad "* allows any origin"
echo "$pass passed, $fail failed, 0 skipped"
