/* server.h — `vib3 serve`: an OpenAI-compatible HTTP server over one engine.
 *
 * HTTP comes from libmicrohttpd (one thread per connection, connection and
 * header-size limits, idle timeout). Request bodies are parsed by
 * api/request.c into fixed structs; responses are built in fixed buffers.
 *
 * Scheduling: `parallel` sequence slots run with continuous batching — one
 * scheduler thread owns the engine; it admits queued requests into free
 * slots (prefill), then advances every running request by one token per
 * batched decode step. At most `queue_max` further requests wait; beyond
 * that the server answers 503 at once. A client that disconnects (or whose
 * request is cancelled) stops its generation and frees its slot at the next
 * step. All job memory (body, tokens, prompt ids, text, logprobs, response)
 * is carved from one arena at start: memory stays flat under load.
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions (both with
 * "stream": true as Server-Sent Events ending in "data: [DONE]"),
 * GET /v1/models, GET /health, GET /metrics (Prometheus text). Errors use
 * OpenAI's shape {"error": {"message", "type", "param", "code"}} with 400,
 * 401, 404, 405, 413, 503; 500 only for bugs.
 */
#ifndef VIB3_API_SERVER_H
#define VIB3_API_SERVER_H

#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "runtime/engine.h"

typedef struct vib3_server vib3_server;

/* engine must have been opened with n_seq = cfg->parallel; model_id is what
 * /v1/models lists and what requests' "model" must name (or omit). */
vib3_err vib3_server_start(vib3_server **out, vib3_engine *e, const vib3_config *cfg, const char *model_id);
uint16_t vib3_server_port(const vib3_server *s);   /* the bound port (cfg port 0 = ephemeral) */
void vib3_server_stop(vib3_server *s);             /* stops accepting, cancels running jobs, joins */

/* Graceful shutdown, in three steps (cmd_serve.c drives them from SIGTERM / SIGINT):
 *   vib3_server_drain_begin   closes the listening socket (new connections are refused) and
 *                             answers a request that starts on a kept-alive connection with 503
 *                             "server_shutting_down"; every response from then on carries
 *                             "Connection: close". Requests already received (queued or running)
 *                             go on normally.
 *   vib3_server_in_flight     requests not yet completely answered (0: the drain is done).
 *   vib3_server_drain_force   the grace period is over: every running request ends at the next
 *                             step with finish_reason "length" (streams: that last chunk, usage if
 *                             asked, then "data: [DONE]"; non-streamed: a complete JSON body);
 *                             a non-streamed request that has generated nothing gets a 503 JSON
 *                             error. No body is ever truncated.
 * then vib3_server_stop. */
void vib3_server_drain_begin(vib3_server *s);
uint32_t vib3_server_in_flight(vib3_server *s);
void vib3_server_drain_force(vib3_server *s);

#endif
