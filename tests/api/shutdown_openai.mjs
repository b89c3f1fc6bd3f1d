// shutdown_openai.mjs — the official `openai` npm client streaming from `vib3 serve` while the server
// is stopped with SIGTERM and its grace period runs out: the client must see a normal end of stream
// (a last chunk with finish_reason "length", the usage chunk, no exception), not a network error.
// usage: node shutdown_openai.mjs BASE_URL MODEL_ID SERVER_PID   (prints "N passed, N failed")
import OpenAI from "../node/node_modules/openai/index.mjs";

const [baseURL, model, pid] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
let pass = 0, fail = 0;
const check = (cond, what) => { if (cond) pass++; else { fail++; console.log("FAIL:", what); } };

try {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "In the beginning" }], max_tokens: 16000, temperature: 0.8,
    stream: true, stream_options: { include_usage: true }, ignore_eos: true });
  let chunks = 0, finish = null, usage = null, text = "";
  for await (const chunk of stream) {
    if (chunks++ === 2) process.kill(Number(pid), "SIGTERM");
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) { text += c.delta?.content ?? ""; if (c.finish_reason) finish = c.finish_reason; }
  }
  check(finish === "length", `finish_reason after a forced shutdown: ${finish}`);
  check(usage && usage.completion_tokens > 0 && usage.completion_tokens < 16000, `usage: ${JSON.stringify(usage)}`);
  check(text.length > 0, "text streamed before the shutdown");
} catch (e) {
  fail++;
  console.log("FAIL: the client threw:", e.message);
}
console.log(`${pass} passed, ${fail} failed`);
