/* server.c — OpenAI-compatible HTTP server (see server.h).
 *
 * Threads: libmicrohttpd runs one thread per connection (handlers may block
 * waiting for their job); one scheduler thread owns the engine. They share
 * `mu`; each job has a condition variable the scheduler signals when new
 * text is ready or the job ends.
 *
 * A job slot is owned by its connection from the first byte of the request
 * until the connection completes, and by the scheduler while queued or
 * running; it returns to the free list when neither holds it.
 */
#include "api/server.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/request.h"
#include "core/arena.h"
#include "core/json.h"
#include "runtime/chat.h"
#include "runtime/tokenizer.h"
#include "index/prefetch.h"
#include "storage/pages.h"

#define SSE_CHUNK_BYTES (64u << 10)

typedef enum { JOB_FREE = 0, JOB_RECEIVING, JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;

typedef struct job {
    job_state state;
    uint32_t index;
    bool conn_holds, sched_holds;
    atomic_bool cancelled;
    pthread_cond_t cond;
    /* request */
    char *body;
    size_t body_len;
    bool too_large;
    jsmntok_t *tokens;
    char *strbuf;
    vib3_api_request req;
    char *prompt_text;
    uint32_t *prompt_ids;
    uint32_t n_prompt;
    /* generation */
    vib3_seq *seq;
    vib3_tokenizer_stream ts;
    uint32_t next_id;          /* sampled, not yet evaluated */
    uint32_t n_gen;
    char *text;
    size_t text_len, text_ready;
    uint32_t *lp_ids;          /* per generated token: (1 + top) ids */
    float *lp_vals;            /* and their logprobs */
    uint32_t *lp_off;          /* per generated token: where its text starts in `text` */
    uint32_t lp_stride;
    const char *finish_reason;
    int error_status;          /* 0 = none */
    char error_msg[512];
    uint64_t t_arrival, t_first, t_last, t_done;
    /* response */
    char id[48];
    uint64_t created;
    char *resp;
    size_t resp_len, resp_sent;
    size_t streamed;
    int sse_stage;
    int sock_fd;
} job;

typedef struct conn {
    job *j;
    int route;
    bool method_ok;
    bool auth_ok;
    bool preflight;   /* OPTIONS: a browser's CORS preflight */
    bool in_use;
} conn;

enum { ROUTE_NONE, ROUTE_CHAT, ROUTE_COMPLETIONS, ROUTE_MODELS, ROUTE_HEALTH, ROUTE_METRICS };

#define N_TTFT_BUCKETS 10
#define N_ITL_BUCKETS 10
static const double ttft_bounds[N_TTFT_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double itl_bounds[N_ITL_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};

typedef struct metrics {
    uint64_t requests[8];        /* by status: 2xx 400 401 404 405 413, other 4xx, 5xx */
    uint64_t requests_total;
    uint64_t prompt_tokens, gen_tokens;
    uint64_t ttft_count, ttft_buckets[N_TTFT_BUCKETS];
    double ttft_sum;
    uint64_t itl_count, itl_buckets[N_ITL_BUCKETS];
    double itl_sum;
    uint64_t cancelled, failed;
} metrics;

struct vib3_server {
    vib3_engine *e;
    vib3_tokenizer *tok;
    const vib3_config *cfg;
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    pthread_cond_t sched_cond;
    pthread_t sched;
    bool sched_started, stopping;
    atomic_bool draining;         /* shutdown begun: no new requests (503 + Connection: close) */
    bool forced;                  /* grace period over: running jobs end now ("length") */
    vib3_arena arena;
    job *jobs;
    uint32_t n_jobs;
    uint32_t *queue;              /* FIFO of queued job indices */
    uint32_t q_head, q_len;
    uint32_t free_seqs;
    conn *conns;
    uint32_t n_conns;
    char model_id[256];
    const char *chat_tmpl;
    size_t chat_tmpl_len;
    char bos[64], eos[64];
    size_t text_cap, resp_cap, prompt_cap;
    uint32_t ctx, vocab;
    uint64_t started_s;
    metrics m;
    vib3_tokenizer_scratch *tok_scratch;
    vib3_arena tok_arena;
    pthread_mutex_t tok_mu;
};

static uint64_t now_ns(void) { return vib3_now_ns(); }

/* ---- jobs --------------------------------------------------------------- */
static job *job_acquire(vib3_server *s) {
    for (uint32_t i = 0; i < s->n_jobs; i++) {
        job *j = &s->jobs[i];
        if (j->state != JOB_FREE || j->conn_holds || j->sched_holds) continue;
        j->state = JOB_RECEIVING;
        j->conn_holds = true;
        j->body_len = 0;
        j->too_large = false;
        atomic_store(&j->cancelled, false);
        j->seq = NULL;
        j->n_gen = 0;
        j->text_len = j->text_ready = 0;
        j->finish_reason = NULL;
        j->error_status = 0;
        j->error_msg[0] = 0;
        j->resp_len = j->resp_sent = j->streamed = 0;
        j->sse_stage = 0;
        vib3_tokenizer_stream_init(&j->ts, VIB3_DEC_SKIP_SPECIAL);
        j->t_arrival = now_ns();
        j->t_first = j->t_last = j->t_done = 0;
        j->created = (uint64_t)time(NULL);
        snprintf(j->id, sizeof j->id, "%s-vib3-%llx%04x", "chatcmpl", (unsigned long long)j->t_arrival, i);
        return j;
    }
    return NULL;
}

static void job_maybe_free(job *j) {
    if (!j->conn_holds && !j->sched_holds) j->state = JOB_FREE;
}

/* scheduler side: the job has ended (mu held) */
static void job_finish(vib3_server *s, job *j, const char *reason) {
    if (j->seq) {
        vib3_seq_release(j->seq);
        j->seq = NULL;
        s->free_seqs++;
    }
    if (!reason) {
        /* an error or a cancel: nothing more to emit */
    } else {
        char tail[8];
        long n = vib3_tokenizer_stream_flush(&j->ts, tail, sizeof tail);
        if (n > 0 && j->text_len + (size_t)n < s->text_cap) memcpy(j->text + j->text_len, tail, (size_t)n), j->text_len += (size_t)n;
    }
    j->finish_reason = reason;
    j->text_ready = j->text_len;
    j->state = JOB_DONE;
    j->t_done = now_ns();
    j->sched_holds = false;
    if (atomic_load(&j->cancelled)) s->m.cancelled++;
    pthread_cond_broadcast(&j->cond);
    job_maybe_free(j);
}

static void job_fail(vib3_server *s, job *j, int status, const char *msg) {
    j->error_status = status;
    snprintf(j->error_msg, sizeof j->error_msg, "%s", msg);
    s->m.failed++;
    job_finish(s, j, NULL);
}

/* the grace period of a shutdown is over (mu held): a request that has text ends as if it had
 * reached max_tokens, finish_reason "length" (the one standard value meaning "cut short" that every
 * OpenAI client accepts: "stop" would claim a natural end, and strict clients reject unknown values);
 * a stream always ends with that chunk and [DONE]; a non-streamed request with nothing generated
 * yet gets 503 (it can be retried elsewhere) */
static void job_end_forced(vib3_server *s, job *j) {
    if (!j->req.stream && j->n_gen == 0) job_fail(s, j, 503, "the server is shutting down");
    else job_finish(s, j, "length");
}

/* ---- generation (scheduler thread, mu held unless noted) ---------------- */
static void record_logprobs(vib3_server *s, job *j, const float *logits, uint32_t id) {
    if (!j->req.logprobs || j->n_gen >= s->ctx) return;
    uint32_t V = s->vocab;
    float mx = -INFINITY;
    for (uint32_t i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (uint32_t i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    float lse = mx + (float)log(sum);
    uint32_t *ids = j->lp_ids + (size_t)j->n_gen * j->lp_stride;
    float *vals = j->lp_vals + (size_t)j->n_gen * j->lp_stride;
    ids[0] = id;
    vals[0] = logits[id] - lse;
    j->lp_off[j->n_gen] = (uint32_t)j->text_len;
    uint32_t top = j->req.top_logprobs;
    for (uint32_t k = 0; k < top; k++) { /* selection of the top `top` (<= 20) */
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < V; i++) {
            bool taken = false;
            for (uint32_t q = 0; q < k; q++) taken |= ids[1 + q] == i;
            if (!taken && (best == UINT32_MAX || logits[i] > logits[best])) best = i;
        }
        ids[1 + k] = best;
        vals[1 + k] = logits[best] - lse;
    }
}

/* the tokens whose logprobs are reported: those whose text starts before the end of the returned
 * text, so that a stop string cut from the text (and an end-of-generation token, which has no text)
 * takes its tokens' entries with it, as llama.cpp's server does */
static uint32_t lp_count(const vib3_server *s, const job *j) {
    uint32_t n = j->n_gen < s->ctx ? j->n_gen : s->ctx;
    while (n > 0 && j->lp_off[n - 1] >= j->text_len) n--;
    return n;
}

static size_t max_stop_len(const job *j) {
    size_t m = 0;
    for (uint32_t i = 0; i < j->req.n_stop; i++) m = j->req.stop_len[i] > m ? j->req.stop_len[i] : m;
    return m;
}

/* after a prefill or decode: sample, emit text, decide whether to go on */
static void on_logits(vib3_server *s, job *j) {
    const float *logits = vib3_seq_logits(j->seq);
    uint32_t id = vib3_seq_sample(j->seq);
    record_logprobs(s, j, logits, id);
    uint64_t t = now_ns();
    if (j->n_gen == 0) {
        j->t_first = t;
        double ttft = (t - j->t_arrival) / 1e9;
        s->m.ttft_count++;
        s->m.ttft_sum += ttft;
        for (int b = 0; b < N_TTFT_BUCKETS; b++)
            if (ttft <= ttft_bounds[b]) s->m.ttft_buckets[b]++;
    } else {
        double itl = (t - j->t_last) / 1e9;
        s->m.itl_count++;
        s->m.itl_sum += itl;
        for (int b = 0; b < N_ITL_BUCKETS; b++)
            if (itl <= itl_bounds[b]) s->m.itl_buckets[b]++;
    }
    j->t_last = t;
    j->n_gen++;
    s->m.gen_tokens++;
    if (atomic_load(&j->cancelled)) {
        job_finish(s, j, NULL);
        return;
    }
    if (!j->req.ignore_eos && vib3_tokenizer_is_eog(s->tok, id)) {
        job_finish(s, j, "stop");
        return;
    }
    size_t before = j->text_len;
    if (s->text_cap - j->text_len > 64) {
        long n = vib3_tokenizer_stream_put(s->tok, &j->ts, id, j->text + j->text_len, s->text_cap - j->text_len - 1);
        if (n > 0) j->text_len += (size_t)n;
    }
    j->text[j->text_len] = 0;
    /* stop strings: search the region the new piece could complete */
    size_t msl = max_stop_len(j);
    size_t from = before > msl ? before - msl : 0;
    for (uint32_t k = 0; k < j->req.n_stop; k++) {
        const char *hit = memmem(j->text + from, j->text_len - from, j->req.stop[k], j->req.stop_len[k]);
        if (hit) {
            j->text_len = (size_t)(hit - j->text);
            j->text[j->text_len] = 0;
            /* bytes still pending in the decoder lie after the stop string: job_finish must not
             * flush them (as U+FFFD) onto the truncated text */
            vib3_tokenizer_stream_init(&j->ts, VIB3_DEC_SKIP_SPECIAL);
            job_finish(s, j, "stop");
            return;
        }
    }
    if ((j->req.max_tokens && j->n_gen >= j->req.max_tokens) || vib3_seq_pos(j->seq) + 1 >= s->ctx ||
        s->text_cap - j->text_len <= 64) {
        job_finish(s, j, "length");
        return;
    }
    /* hold back text that could be the start of a stop string */
    j->text_ready = msl > 1 && j->text_len >= msl - 1 ? j->text_len - (msl - 1) : msl > 1 ? 0 : j->text_len;
    j->text_ready = vib3_utf8_complete_prefix(j->text, j->text_ready);
    j->next_id = id;
    pthread_cond_broadcast(&j->cond);
}

static void sampler_from_request(const vib3_api_request *r, vib3_sampler_params *p) {
    vib3_sampler_defaults(p);
    p->temperature = r->temperature;
    p->top_p = r->top_p;
    p->min_p = r->min_p;
    p->top_k = r->top_k;
    p->repeat_penalty = r->repeat_penalty;
    /* OpenAI's presence/frequency penalties, approximated by llama.cpp's repeat penalty */
    float pen = r->presence_penalty + r->frequency_penalty;
    if (r->repeat_penalty == 1 && pen > 0) p->repeat_penalty = 1 + pen / 2;
    p->seed = r->seed_set ? r->seed : (uint64_t)now_ns();
}

static void *scheduler_main(void *arg) {
    vib3_server *s = arg;
    vib3_seq **batch = calloc(s->n_jobs, sizeof *batch);
    job **bjobs = calloc(s->n_jobs, sizeof *bjobs);
    uint32_t *ids = calloc(s->n_jobs, sizeof *ids);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        /* admit queued jobs into free sequence slots */
        while (s->q_len && s->free_seqs) {
            job *j = &s->jobs[s->queue[s->q_head]];
            s->q_head = (s->q_head + 1) % s->n_jobs;
            s->q_len--;
            if (atomic_load(&j->cancelled)) {
                job_finish(s, j, NULL);
                continue;
            }
            if (s->forced) {
                job_end_forced(s, j);
                continue;
            }
            if (vib3_seq_acquire(s->e, &j->seq) != VIB3_OK) {
                job_fail(s, j, 503, "no free sequence slot");
                continue;
            }
            s->free_seqs--;
            j->state = JOB_RUNNING;
            vib3_sampler_params sp;
            sampler_from_request(&j->req, &sp);
            vib3_seq_set_sampler(j->seq, &sp);
            vib3_tokenizer_stream_init(&j->ts, VIB3_DEC_SKIP_SPECIAL);
            s->m.prompt_tokens += j->n_prompt;
            pthread_mutex_unlock(&s->mu);
            vib3_err rc = vib3_seq_prefill(j->seq, j->prompt_ids, j->n_prompt, NULL);
            pthread_mutex_lock(&s->mu);
            if (atomic_load(&j->cancelled)) job_finish(s, j, NULL);
            else if (rc == VIB3_ERR_CANCELLED && s->forced) job_end_forced(s, j);
            else if (rc == VIB3_ERR_CANCELLED) job_finish(s, j, NULL);
            else if (rc) job_fail(s, j, 500, vib3_err_msg());
            else on_logits(s, j);
        }
        uint32_t n = 0;
        for (uint32_t i = 0; i < s->n_jobs; i++) {
            job *j = &s->jobs[i];
            if (j->state != JOB_RUNNING || !j->seq) continue;
            if (atomic_load(&j->cancelled)) {
                job_finish(s, j, NULL);
                continue;
            }
            if (s->forced) {
                job_end_forced(s, j);
                continue;
            }
            bjobs[n] = j;
            batch[n] = j->seq;
            ids[n] = j->next_id;
            n++;
        }
        if (n == 0) {
            if (!s->q_len) pthread_cond_wait(&s->sched_cond, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        vib3_err rc = vib3_engine_decode_batch(s->e, batch, ids, n);
        pthread_mutex_lock(&s->mu);
        for (uint32_t k = 0; k < n; k++) {
            if (rc == VIB3_ERR_CANCELLED || atomic_load(&bjobs[k]->cancelled)) job_finish(s, bjobs[k], NULL);
            else if (rc) job_fail(s, bjobs[k], 500, vib3_err_msg());
            else on_logits(s, bjobs[k]);
        }
    }
    /* stopping: end everything still queued or running */
    for (uint32_t i = 0; i < s->n_jobs; i++)
        if (s->jobs[i].state == JOB_QUEUED || s->jobs[i].state == JOB_RUNNING) job_fail(s, &s->jobs[i], 503, "server is shutting down");
    pthread_mutex_unlock(&s->mu);
    free(batch);
    free(bjobs);
    free(ids);
    return NULL;
}

/* ---- JSON building ------------------------------------------------------ */
typedef struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    if (o->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) o->overflow = true;
    else o->len += (size_t)n;
}

static void put_str(out *o, const char *s, size_t n) {
    if (o->overflow) return;
    long k = vib3_json_write_str(o->buf + o->len, o->cap - o->len, s, n);
    if (k < 0) o->overflow = true;
    else o->len += (size_t)k;
}

static void put_logprob_entry(vib3_server *s, out *o, uint32_t id, float lp) {
    size_t n;
    const char *piece = vib3_tokenizer_piece(s->tok, id, &n);
    put(o, "{\"token\": ");
    put_str(o, piece ? piece : "", piece ? n : 0);
    put(o, ", \"logprob\": %.6g, \"bytes\": [", (double)lp);
    for (size_t b = 0; piece && b < n; b++) put(o, "%s%u", b ? ", " : "", (unsigned char)piece[b]);
    put(o, "]");
}

static void put_chat_logprobs(vib3_server *s, job *j, out *o, uint32_t from, uint32_t to) {
    put(o, "{\"content\": [");
    for (uint32_t t = from; t < to; t++) {
        const uint32_t *ids = j->lp_ids + (size_t)t * j->lp_stride;
        const float *vals = j->lp_vals + (size_t)t * j->lp_stride;
        put(o, "%s", t > from ? ", " : "");
        put_logprob_entry(s, o, ids[0], vals[0]);
        put(o, ", \"top_logprobs\": [");
        for (uint32_t k = 0; k < j->req.top_logprobs; k++) {
            put(o, "%s", k ? ", " : "");
            put_logprob_entry(s, o, ids[1 + k], vals[1 + k]);
            put(o, "}");
        }
        put(o, "]}");
    }
    put(o, "], \"refusal\": null}");
}

static void put_completion_logprobs(vib3_server *s, job *j, out *o) {
    uint32_t n_lp = lp_count(s, j);
    put(o, "{\"tokens\": [");
    for (uint32_t t = 0; t < n_lp; t++) {
        size_t n;
        const char *p = vib3_tokenizer_piece(s->tok, j->lp_ids[(size_t)t * j->lp_stride], &n);
        put(o, "%s", t ? ", " : "");
        put_str(o, p ? p : "", p ? n : 0);
    }
    put(o, "], \"token_logprobs\": [");
    for (uint32_t t = 0; t < n_lp; t++) put(o, "%s%.6g", t ? ", " : "", (double)j->lp_vals[(size_t)t * j->lp_stride]);
    put(o, "], \"top_logprobs\": [");
    for (uint32_t t = 0; t < n_lp; t++) {
        put(o, "%s{", t ? ", " : "");
        for (uint32_t k = 0; k < j->req.top_logprobs; k++) {
            size_t n;
            uint32_t id = j->lp_ids[(size_t)t * j->lp_stride + 1 + k];
            const char *p = vib3_tokenizer_piece(s->tok, id, &n);
            put(o, "%s", k ? ", " : "");
            put_str(o, p ? p : "", p ? n : 0);
            put(o, ": %.6g", (double)j->lp_vals[(size_t)t * j->lp_stride + 1 + k]);
        }
        put(o, "}");
    }
    /* OpenAI: offsets from the start of the prompt (here in bytes) */
    put(o, "], \"text_offset\": [");
    for (uint32_t t = 0; t < n_lp; t++) put(o, "%s%zu", t ? ", " : "", j->req.prompt_len + j->lp_off[t]);
    put(o, "]}");
}

static void put_usage(job *j, out *o) {
    put(o, "{\"prompt_tokens\": %u, \"completion_tokens\": %u, \"total_tokens\": %u}", j->n_prompt, j->n_gen,
        j->n_prompt + j->n_gen);
}

static void build_full_response(vib3_server *s, job *j, out *o) {
    bool chat = j->req.kind == VIB3_API_CHAT;
    put(o, "{\"id\": \"%s\", \"object\": \"%s\", \"created\": %llu, \"model\": ", j->id,
        chat ? "chat.completion" : "text_completion", (unsigned long long)j->created);
    put_str(o, s->model_id, strlen(s->model_id));
    put(o, ", \"system_fingerprint\": \"vib3-" "0.1.0" "\", \"choices\": [{\"index\": 0, ");
    if (chat) {
        put(o, "\"message\": {\"role\": \"assistant\", \"content\": ");
        put_str(o, j->text, j->text_len);
        put(o, ", \"refusal\": null}, \"logprobs\": ");
        if (j->req.logprobs) put_chat_logprobs(s, j, o, 0, lp_count(s, j));
        else put(o, "null");
    } else {
        put(o, "\"text\": ");
        put_str(o, j->text, j->text_len);
        put(o, ", \"logprobs\": ");
        if (j->req.logprobs) put_completion_logprobs(s, j, o);
        else put(o, "null");
    }
    put(o, ", \"finish_reason\": \"%s\"}], \"usage\": ", j->finish_reason ? j->finish_reason : "stop");
    put_usage(j, o);
    put(o, "}");
}

static void build_error(out *o, const char *msg, const char *type, const char *param, const char *code) {
    put(o, "{\"error\": {\"message\": ");
    put_str(o, msg, strlen(msg));
    put(o, ", \"type\": \"%s\", \"param\": ", type);
    if (param && *param) put_str(o, param, strlen(param));
    else put(o, "null");
    put(o, ", \"code\": ");
    if (code) put(o, "\"%s\"", code);
    else put(o, "null");
    put(o, "}}");
}

/* ---- HTTP --------------------------------------------------------------- */
static void count_status(vib3_server *s, unsigned status) {
    pthread_mutex_lock(&s->mu);
    s->m.requests_total++;
    int k = status < 300 ? 0 : status == 400 ? 1 : status == 401 ? 2 : status == 404 ? 3 : status == 405 ? 4 : status == 413 ? 5
          : status >= 500 ? 7 : 6;
    s->m.requests[k]++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- CORS ------------------------------------------------------------------ */
/* http(s)://localhost, 127.0.0.1 or [::1], with or without a port */
static bool origin_is_loopback(const char *o) {
    const char *p = !strncmp(o, "http://", 7) ? o + 7 : !strncmp(o, "https://", 8) ? o + 8 : NULL;
    if (!p) return false;
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++) {
        size_t n = strlen(hosts[h]);
        if (strncasecmp(p, hosts[h], n) != 0) continue;
        const char *q = p + n;
        if (!*q) return true;
        if (*q++ != ':' || !*q) continue;
        while (*q >= '0' && *q <= '9') q++;
        if (!*q) return true;
    }
    return false;
}

/* origin allowed by cfg->cors_origins: "*", "localhost" (the loopback origins) or exact origins, comma-separated */
static bool origin_allowed(const vib3_server *s, const char *origin) {
    if (!origin || !*origin || strlen(origin) > 255) return false;
    const char *l = s->cfg->cors_origins;
    while (*l) {
        while (*l == ' ' || *l == ',') l++;
        const char *e = l;
        while (*e && *e != ',') e++;
        size_t n = (size_t)(e - l);
        while (n && l[n - 1] == ' ') n--;
        if (n == 1 && *l == '*') return true;
        if (n == 9 && !strncasecmp(l, "localhost", 9) && origin_is_loopback(origin)) return true;
        if (n && n == strlen(origin) && !strncasecmp(l, origin, n)) return true;
        l = e;
    }
    return false;
}

/* the CORS headers of a response to an allowed browser origin (none without an Origin header) */
static void add_cors(const vib3_server *s, struct MHD_Connection *c, struct MHD_Response *r) {
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin_allowed(s, o)) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", o);
    MHD_add_response_header(r, "Vary", "Origin");
}

/* allow: the methods a 405 names in its Allow header (RFC 9110 15.5.6), else NULL */
static enum MHD_Result send_buf_allow(vib3_server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                      const char *buf, size_t len, const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (atomic_load(&s->draining)) MHD_add_response_header(r, "Connection", "close"); /* no keep-alive past a shutdown */
    add_cors(s, c, r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    count_status(s, status);
    return ret;
}

static enum MHD_Result send_buf(vib3_server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                const char *buf, size_t len) {
    return send_buf_allow(s, c, status, type, buf, len, NULL);
}

static enum MHD_Result send_error_allow(vib3_server *s, struct MHD_Connection *c, unsigned status, const char *msg,
                                        const char *param, const char *code, const char *allow) {
    char buf[2048];
    out o = {buf, sizeof buf, 0, false};
    const char *type = status == 401 ? "authentication_error"
                       : status == 404 ? "invalid_request_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    build_error(&o, msg, type, param, code);
    return send_buf_allow(s, c, status, "application/json", buf, o.len, allow);
}

static enum MHD_Result send_error(vib3_server *s, struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *param, const char *code) {
    return send_error_allow(s, c, status, msg, param, code, NULL);
}

static int route_of(const char *url) {
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions")) return ROUTE_CHAT;
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions")) return ROUTE_COMPLETIONS;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) return ROUTE_MODELS;
    if (!strcmp(url, "/health")) return ROUTE_HEALTH;
    if (!strcmp(url, "/metrics")) return ROUTE_METRICS;
    return ROUTE_NONE;
}

/* constant time in the length of the expected key */
static bool key_matches(const char *expected, const char *given) {
    size_t n = strlen(expected), g = given ? strlen(given) : 0;
    unsigned char diff = (unsigned char)(n != g);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(expected[i] ^ (i < g ? given[i] : 0));
    return diff == 0;
}

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static enum MHD_Result send_models(vib3_server *s, struct MHD_Connection *c) {
    char buf[1024];
    out o = {buf, sizeof buf, 0, false};
    put(&o, "{\"object\": \"list\", \"data\": [{\"id\": ");
    put_str(&o, s->model_id, strlen(s->model_id));
    put(&o, ", \"object\": \"model\", \"created\": %llu, \"owned_by\": \"vib3\", \"meta\": {\"n_ctx\": %u, \"n_vocab\": %u}}]}",
        (unsigned long long)s->started_s, s->ctx, s->vocab);
    return send_buf(s, c, 200, "application/json", buf, o.len);
}

static enum MHD_Result send_metrics(vib3_server *s, struct MHD_Connection *c) {
    static _Thread_local char buf[16384];
    out o = {buf, sizeof buf, 0, false};
    vib3_pages_stats ps;
    vib3_pages_stats_get(vib3_engine_pages(s->e), &ps);
    pthread_mutex_lock(&s->mu);
    metrics m = s->m;
    uint32_t queued = s->q_len, running = 0;
    for (uint32_t i = 0; i < s->n_jobs; i++) running += s->jobs[i].state == JOB_RUNNING;
    pthread_mutex_unlock(&s->mu);
    static const char *classes[8] = {"2xx", "400", "401", "404", "405", "413", "4xx", "5xx"};
    put(&o, "# HELP vib3_requests_total HTTP requests answered, by status.\n# TYPE vib3_requests_total counter\n");
    for (int k = 0; k < 8; k++) put(&o, "vib3_requests_total{status=\"%s\"} %llu\n", classes[k], (unsigned long long)m.requests[k]);
    put(&o, "# TYPE vib3_prompt_tokens_total counter\nvib3_prompt_tokens_total %llu\n", (unsigned long long)m.prompt_tokens);
    put(&o, "# TYPE vib3_generated_tokens_total counter\nvib3_generated_tokens_total %llu\n", (unsigned long long)m.gen_tokens);
    put(&o, "# TYPE vib3_requests_cancelled_total counter\nvib3_requests_cancelled_total %llu\n", (unsigned long long)m.cancelled);
    put(&o, "# TYPE vib3_requests_failed_total counter\nvib3_requests_failed_total %llu\n", (unsigned long long)m.failed);
    put(&o, "# HELP vib3_time_to_first_token_seconds Arrival to first generated token.\n# TYPE vib3_time_to_first_token_seconds histogram\n");
    for (int b = 0; b < N_TTFT_BUCKETS; b++)
        put(&o, "vib3_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", ttft_bounds[b], (unsigned long long)m.ttft_buckets[b]);
    put(&o, "vib3_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\nvib3_time_to_first_token_seconds_sum %.6f\n"
            "vib3_time_to_first_token_seconds_count %llu\n",
        (unsigned long long)m.ttft_count, m.ttft_sum, (unsigned long long)m.ttft_count);
    put(&o, "# HELP vib3_inter_token_latency_seconds Time between generated tokens of a request.\n"
            "# TYPE vib3_inter_token_latency_seconds histogram\n");
    for (int b = 0; b < N_ITL_BUCKETS; b++)
        put(&o, "vib3_inter_token_latency_seconds_bucket{le=\"%g\"} %llu\n", itl_bounds[b], (unsigned long long)m.itl_buckets[b]);
    put(&o, "vib3_inter_token_latency_seconds_bucket{le=\"+Inf\"} %llu\nvib3_inter_token_latency_seconds_sum %.6f\n"
            "vib3_inter_token_latency_seconds_count %llu\n",
        (unsigned long long)m.itl_count, m.itl_sum, (unsigned long long)m.itl_count);
    put(&o, "# TYPE vib3_queue_depth gauge\nvib3_queue_depth %u\n# TYPE vib3_sequences_running gauge\nvib3_sequences_running %u\n",
        queued, running);
    double fault_rate = ps.page_accesses ? (double)ps.page_faults / (double)ps.page_accesses : 0;
    put(&o, "# TYPE vib3_page_accesses_total counter\nvib3_page_accesses_total %llu\n", (unsigned long long)ps.page_accesses);
    put(&o, "# TYPE vib3_page_faults_total counter\nvib3_page_faults_total %llu\n", (unsigned long long)ps.page_faults);
    put(&o, "# TYPE vib3_page_fault_rate gauge\nvib3_page_fault_rate %.6f\n", fault_rate);
    put(&o, "# TYPE vib3_page_bytes_read_total counter\nvib3_page_bytes_read_total %llu\n", (unsigned long long)ps.bytes_read);
    put(&o, "# TYPE vib3_page_hits_total counter\nvib3_page_hits_total %llu\n", (unsigned long long)ps.page_hits);
    put(&o, "# HELP vib3_expert_faults_total Experts (layer, expert, token) with at least one blocking page read.\n"
            "# TYPE vib3_expert_faults_total counter\nvib3_expert_faults_total %llu\n"
            "# TYPE vib3_expert_accesses_total counter\nvib3_expert_accesses_total %llu\n"
            "# TYPE vib3_expert_fault_rate gauge\nvib3_expert_fault_rate %.6f\n",
        (unsigned long long)ps.expert_faults, (unsigned long long)ps.expert_accesses, ps.expert_fault_rate);
    put(&o, "# TYPE vib3_prefetch_issued_total counter\nvib3_prefetch_issued_total %llu\n"
            "# TYPE vib3_prefetch_used_total counter\nvib3_prefetch_used_total %llu\n"
            "# TYPE vib3_prefetch_precision gauge\nvib3_prefetch_precision %.6f\n"
            "# TYPE vib3_prefetch_recall gauge\nvib3_prefetch_recall %.6f\n"
            "# TYPE vib3_wasted_prefetch_bytes_total counter\nvib3_wasted_prefetch_bytes_total %llu\n"
            "# TYPE vib3_bytes_read_per_token gauge\nvib3_bytes_read_per_token %.1f\n"
            "# TYPE vib3_io_wait_ms_per_token gauge\nvib3_io_wait_ms_per_token %.6f\n",
        (unsigned long long)ps.prefetch_issued, (unsigned long long)ps.prefetch_used, ps.prefetch_precision,
        ps.prefetch_recall, (unsigned long long)ps.wasted_prefetch_bytes, ps.bytes_read_per_token,
        ps.io_wait_ms_per_token);
    struct vib3_prefetcher *pf = vib3_engine_prefetcher(s->e);
    vib3_prefetch_stats fs;
    if (pf) vib3_prefetcher_stats_get(pf, &fs);
    put(&o, "# HELP vib3_tier_info The buffer manager's backend, eviction policy, prefetch mode and predictor.\n"
            "# TYPE vib3_tier_info gauge\nvib3_tier_info{backend=\"%s\",evict=\"%s\",prefetch=\"%s\",predictor=\"%s\"} 1\n",
        ps.backend, ps.evict, pf ? fs.mode : "none", pf ? fs.predictor : "none");
    if (pf && fs.gated)
        put(&o, "# HELP vib3_prefetch_auto_hints_on --prefetch auto: 1 while look-ahead hints are on.\n"
                "# TYPE vib3_prefetch_auto_hints_on gauge\nvib3_prefetch_auto_hints_on %d\n", fs.gate_hints_on);
    put(&o, "# HELP vib3_tier_frames Page frames of the RAM tier.\n# TYPE vib3_tier_frames gauge\n"
            "vib3_tier_frames{tier=\"ram\",state=\"used\"} %llu\nvib3_tier_frames{tier=\"ram\",state=\"total\"} %llu\n",
        (unsigned long long)ps.frames_used, (unsigned long long)ps.frames_total);
    put(&o, "# TYPE vib3_tier_resident_bytes gauge\nvib3_tier_resident_bytes{tier=\"ram\"} %llu\n",
        (unsigned long long)ps.resident_bytes);
    return send_buf(s, c, 200, "text/plain; version=0.0.4", buf, o.len);
}

/* ---- SSE ---------------------------------------------------------------- */
static void sse_chunk_begin(vib3_server *s, job *j, out *o) {
    bool chat = j->req.kind == VIB3_API_CHAT;
    put(o, "data: {\"id\": \"%s\", \"object\": \"%s\", \"created\": %llu, \"model\": ", j->id,
        chat ? "chat.completion.chunk" : "text_completion", (unsigned long long)j->created);
    put_str(o, s->model_id, strlen(s->model_id));
    put(o, ", \"system_fingerprint\": \"vib3-0.1.0\", \"choices\": [");
}

/* produce the next SSE event(s) into j->resp; returns false at end of stream. mu held. */
static bool sse_next(vib3_server *s, job *j) {
    out o = {j->resp, s->resp_cap, 0, false};
    bool chat = j->req.kind == VIB3_API_CHAT;
    j->resp_len = j->resp_sent = 0;
    switch (j->sse_stage) {
    case 0:
        j->sse_stage = 1;
        if (!chat) return sse_next(s, j);
        sse_chunk_begin(s, j, &o);
        put(&o, "{\"index\": 0, \"delta\": {\"role\": \"assistant\", \"content\": \"\"}, \"logprobs\": null, \"finish_reason\": null}]}\n\n");
        break;
    case 1: {
        size_t ready = j->text_ready;
        if (ready <= j->streamed) {
            if (j->state == JOB_DONE) {
                j->sse_stage = 2;
                return sse_next(s, j);
            }
            return true; /* nothing yet */
        }
        size_t n = ready - j->streamed;
        if (n > SSE_CHUNK_BYTES) n = vib3_utf8_complete_prefix(j->text + j->streamed, SSE_CHUNK_BYTES);
        sse_chunk_begin(s, j, &o);
        if (chat) {
            put(&o, "{\"index\": 0, \"delta\": {\"content\": ");
            put_str(&o, j->text + j->streamed, n);
            put(&o, "}, \"logprobs\": null, \"finish_reason\": null}]}\n\n");
        } else {
            put(&o, "{\"index\": 0, \"text\": ");
            put_str(&o, j->text + j->streamed, n);
            put(&o, ", \"logprobs\": null, \"finish_reason\": null}]}\n\n");
        }
        j->streamed += n;
        break;
    }
    case 2:
        j->sse_stage = 3;
        if (j->error_status) {
            put(&o, "data: ");
            build_error(&o, j->error_msg, "server_error", NULL, NULL);
            put(&o, "\n\n");
            break;
        }
        sse_chunk_begin(s, j, &o);
        if (chat) put(&o, "{\"index\": 0, \"delta\": {}, \"logprobs\": ");
        else put(&o, "{\"index\": 0, \"text\": \"\", \"logprobs\": ");
        if (j->req.logprobs && chat) put_chat_logprobs(s, j, &o, 0, lp_count(s, j));
        else if (j->req.logprobs) put_completion_logprobs(s, j, &o);
        else put(&o, "null");
        put(&o, ", \"finish_reason\": \"%s\"}]}\n\n", j->finish_reason ? j->finish_reason : "stop");
        break;
    case 3:
        j->sse_stage = 4;
        if (!j->req.include_usage || j->error_status) return sse_next(s, j);
        sse_chunk_begin(s, j, &o);
        put(&o, "], \"usage\": ");
        put_usage(j, &o);
        put(&o, "}\n\n");
        break;
    case 4:
        j->sse_stage = 5;
        put(&o, "data: [DONE]\n\n");
        break;
    default: return false;
    }
    if (o.overflow) { /* cannot happen with SSE_CHUNK_BYTES << resp_cap; end the stream rather than send garbage */
        j->sse_stage = 5;
        return false;
    }
    j->resp_len = o.len;
    return true;
}

/* the reader needs the server too: jobs keep a back pointer via this table */
static vib3_server *the_server; /* one server per process (vib3 serve) */

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    vib3_server *s = the_server;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (j->resp_sent < j->resp_len) {
            size_t n = j->resp_len - j->resp_sent;
            if (n > max) n = max;
            memcpy(buf, j->resp + j->resp_sent, n);
            j->resp_sent += n;
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)n;
        }
        if (!sse_next(s, j)) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (j->resp_len > 0) continue;
        /* nothing to send yet: wait for the scheduler, watching the client */
        if (client_gone(j->sock_fd)) {
            atomic_store(&j->cancelled, true);
            vib3_seq *seq = j->seq;
            if (seq) vib3_seq_cancel(seq);
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cond, &s->mu, &ts);
    }
}

/* ---- the request handler ------------------------------------------------- */
static conn *conn_acquire(vib3_server *s) {
    pthread_mutex_lock(&s->mu);
    conn *c = NULL;
    for (uint32_t i = 0; i < s->n_conns && !c; i++)
        if (!s->conns[i].in_use) c = &s->conns[i];
    if (c) memset(c, 0, sizeof *c), c->in_use = true;
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)connection;
    vib3_server *s = cls;
    conn *c = *con_cls;
    if (!c) return;
    pthread_mutex_lock(&s->mu);
    if (c->j) {
        job *j = c->j;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && j->state != JOB_DONE) {
            atomic_store(&j->cancelled, true);
            if (j->seq) vib3_seq_cancel(j->seq);
            pthread_cond_signal(&s->sched_cond);
        }
        j->conn_holds = false;
        if (j->state == JOB_RECEIVING) j->state = JOB_DONE;
        job_maybe_free(j);
    }
    c->in_use = false;
    pthread_mutex_unlock(&s->mu);
    *con_cls = NULL;
}

static enum MHD_Result handle_generation(vib3_server *s, struct MHD_Connection *connection, conn *c) {
    job *j = c->j;
    if (j->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than %llu bytes", (unsigned long long)s->cfg->body_bytes_max);
        return send_error(s, connection, 413, msg, NULL, "request_too_large");
    }
    vib3_api_kind kind = c->route == ROUTE_CHAT ? VIB3_API_CHAT : VIB3_API_COMPLETION;
    if (vib3_api_parse(kind, j->body, j->body_len, j->tokens, s->cfg->body_bytes_max / 2 + 16, j->strbuf,
                       s->cfg->body_bytes_max + 1, &j->req) != VIB3_OK)
        return send_error(s, connection, 400, vib3_err_msg(), j->req.error_param, "invalid_request_error");
    if (j->req.model && strcmp(j->req.model, s->model_id) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist; this server serves '%.200s'", j->req.model, s->model_id);
        return send_error(s, connection, 404, msg, "model", "model_not_found");
    }
    /* prompt text */
    const char *text;
    size_t text_len;
    unsigned flags = VIB3_TOK_ADD_SPECIAL;
    if (kind == VIB3_API_CHAT) {
        vib3_chat_opts opts = {.add_generation_prompt = true, .bos_token = s->bos, .eos_token = s->eos,
                               .enable_thinking = -1, .fallback_chatml = true};
        vib3_err rc = vib3_chat_render(s->chat_tmpl, s->chat_tmpl_len, j->req.messages, j->req.n_messages, &opts,
                                       j->prompt_text, s->prompt_cap, &text_len);
        if (rc) return send_error(s, connection, rc == VIB3_ERR_INVALID || rc == VIB3_ERR_LIMIT ? 400 : 500,
                                  vib3_err_msg(), "messages", NULL);
        text = j->prompt_text;
        flags = VIB3_TOK_PARSE_SPECIAL; /* the template writes BOS itself */
    } else {
        text = j->req.prompt;
        text_len = j->req.prompt_len;
    }
    /* encode into the (still unused) logprob id buffer, (1 + 20) x ctx ids, so that a prompt longer
     * than the context can be reported with its length, as OpenAI and llama.cpp do */
    size_t n_ids = 0, count_cap = (size_t)s->ctx * (1 + VIB3_API_MAX_TOP_LOGPROBS);
    pthread_mutex_lock(&s->tok_mu);
    vib3_err rc = vib3_tokenizer_encode_scratch(s->tok, s->tok_scratch, text, text_len, flags, j->lp_ids, count_cap, &n_ids);
    pthread_mutex_unlock(&s->tok_mu);
    if (rc == VIB3_ERR_LIMIT || n_ids + 1 >= s->ctx) {
        char msg[320];
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %u tokens. However, your %s resulted in %s%zu tokens "
                 "(at least 1 more is needed to generate). Please reduce the length of the %s.",
                 s->ctx, kind == VIB3_API_CHAT ? "messages" : "prompt", rc == VIB3_ERR_LIMIT ? "more than " : "",
                 rc == VIB3_ERR_LIMIT ? count_cap : n_ids, kind == VIB3_API_CHAT ? "messages" : "prompt");
        return send_error(s, connection, 400, msg, kind == VIB3_API_CHAT ? "messages" : "prompt", "context_length_exceeded");
    }
    if (!rc) memcpy(j->prompt_ids, j->lp_ids, n_ids * sizeof *j->prompt_ids);
    if (rc) return send_error(s, connection, 400, vib3_err_msg(), kind == VIB3_API_CHAT ? "messages" : "prompt", NULL);
    if (n_ids == 0) return send_error(s, connection, 400, "the prompt is empty", "prompt", NULL);
    j->n_prompt = (uint32_t)n_ids;
    uint32_t top = j->req.top_logprobs;
    j->lp_stride = 1 + top;
    if (j->req.kind == VIB3_API_COMPLETION) memcpy(j->id, "cmpl", 4), memmove(j->id + 4, j->id + 8, strlen(j->id + 8) + 1);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->sock_fd = ci ? ci->connect_fd : -1;

    /* queue it (unless the grace period of a shutdown is already over) */
    pthread_mutex_lock(&s->mu);
    if (s->forced) {
        pthread_mutex_unlock(&s->mu);
        return send_error(s, connection, 503, "the server is shutting down", NULL, "server_shutting_down");
    }
    j->state = JOB_QUEUED;
    j->sched_holds = true;
    s->queue[(s->q_head + s->q_len) % s->n_jobs] = j->index;
    s->q_len++;
    pthread_cond_signal(&s->sched_cond);
    pthread_mutex_unlock(&s->mu);

    if (j->req.stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, j, NULL);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        if (atomic_load(&s->draining)) MHD_add_response_header(r, "Connection", "close");
        add_cors(s, connection, r);
        enum MHD_Result ret = MHD_queue_response(connection, 200, r);
        MHD_destroy_response(r);
        count_status(s, 200);
        return ret;
    }
    /* wait for the whole answer, watching for a client that gives up */
    pthread_mutex_lock(&s->mu);
    while (j->state != JOB_DONE) {
        if (client_gone(j->sock_fd)) {
            atomic_store(&j->cancelled, true);
            if (j->seq) vib3_seq_cancel(j->seq);
            pthread_cond_signal(&s->sched_cond);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (atomic_load(&j->cancelled)) return MHD_NO; /* the client is gone */
    if (j->error_status)
        return send_error(s, connection, (unsigned)j->error_status, j->error_msg, NULL,
                          j->error_status == 503 && s->forced ? "server_shutting_down" : NULL);
    out o = {j->resp, s->resp_cap, 0, false};
    build_full_response(s, j, &o);
    if (o.overflow) return send_error(s, connection, 500, "response larger than the response buffer", NULL, NULL);
    return send_buf(s, connection, 200, "application/json", o.buf, o.len);
}

/* OPTIONS: 204 with the methods and headers a browser may use, for an allowed origin; 403 otherwise */
static enum MHD_Result send_preflight(vib3_server *s, struct MHD_Connection *c, bool generation) {
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin_allowed(s, o)) {
        char msg[400];
        snprintf(msg, sizeof msg, "origin '%.255s' is not allowed (vib3 serve --cors-origins)", o ? o : "");
        return send_error(s, c, 403, msg, NULL, "origin_not_allowed");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    add_cors(s, c, r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", generation ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
    /* the headers the browser asks for (the openai client sends x-stainless-* ones), if they are plain names */
    const char *want = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    bool plain = want && *want && strlen(want) < 1024;
    for (const char *q = want; plain && *q; q++)
        plain = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' ||
                *q == '_' || *q == ',' || *q == ' ';
    MHD_add_response_header(r, "Access-Control-Allow-Headers", plain ? want : "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    enum MHD_Result ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    count_status(s, 204);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    vib3_server *s = cls;
    conn *c = *con_cls;
    if (!c) {
        /* a request that starts after a shutdown began (on a kept-alive connection: the listening
         * socket is closed by then) is refused; requests already started are finished */
        if (atomic_load(&s->draining))
            return send_error(s, connection, 503, "the server is shutting down", NULL, "server_shutting_down");
        c = conn_acquire(s);
        if (!c) return send_error(s, connection, 503, "too many connections", NULL, "overloaded");
        *con_cls = c;
        c->route = route_of(url);
        bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        c->preflight = !strcmp(method, "OPTIONS");
        c->method_ok = c->preflight || ((c->route == ROUTE_CHAT || c->route == ROUTE_COMPLETIONS) ? post : get);
        const char *auth = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Authorization");
        c->auth_ok = !s->cfg->api_key[0] || c->route == ROUTE_HEALTH || c->preflight || /* a preflight has no credentials */
                     (auth && !strncmp(auth, "Bearer ", 7) && key_matches(s->cfg->api_key, auth + 7));
        if (c->route != ROUTE_NONE && c->method_ok && c->auth_ok && post) {
            pthread_mutex_lock(&s->mu);
            c->j = job_acquire(s);
            pthread_mutex_unlock(&s->mu);
            if (!c->j) return send_error(s, connection, 503, "the server is busy: all request slots are in use, retry later", NULL, "overloaded");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (c->j) {
            size_t n = *upload_data_size;
            if (c->j->body_len + n > s->cfg->body_bytes_max) c->j->too_large = true;
            else memcpy(c->j->body + c->j->body_len, upload_data, n), c->j->body_len += n;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->route == ROUTE_NONE) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown route %.200s %.20s", method, url);
        return send_error(s, connection, 404, msg, NULL, "not_found");
    }
    if (!c->method_ok) {
        char msg[300];
        snprintf(msg, sizeof msg, "Method %.20s is not allowed on %.200s", method, url);
        bool gen = c->route == ROUTE_CHAT || c->route == ROUTE_COMPLETIONS;
        return send_error_allow(s, connection, 405, msg, NULL, "method_not_allowed", gen ? "POST" : "GET, HEAD");
    }
    if (!c->auth_ok) return send_error(s, connection, 401, "Invalid or missing API key (Authorization: Bearer <key>)", NULL, "invalid_api_key");
    if (c->preflight) return send_preflight(s, connection, c->route == ROUTE_CHAT || c->route == ROUTE_COMPLETIONS);
    switch (c->route) {
    case ROUTE_HEALTH: return send_buf(s, connection, 200, "application/json", "{\"status\": \"ok\"}", 16);
    case ROUTE_MODELS: return send_models(s, connection);
    case ROUTE_METRICS: return send_metrics(s, connection);
    default: return handle_generation(s, connection, c);
    }
}

/* ---- start / stop -------------------------------------------------------- */
static vib3_err carve_jobs(vib3_server *s) {
    const vib3_config *cfg = s->cfg;
    size_t body = cfg->body_bytes_max;
    for (uint32_t i = 0; i < s->n_jobs; i++) {
        job *j = &s->jobs[i];
        j->index = i;
        j->sock_fd = -1;
        pthread_cond_init(&j->cond, NULL);
        j->body = vib3_arena_alloc(&s->arena, body + 1, 0);
        j->tokens = vib3_arena_alloc(&s->arena, (body / 2 + 16) * sizeof(jsmntok_t), 0);
        j->strbuf = vib3_arena_alloc(&s->arena, body + 1, 0);
        j->prompt_text = vib3_arena_alloc(&s->arena, s->prompt_cap, 0);
        j->prompt_ids = vib3_arena_alloc(&s->arena, (size_t)s->ctx * sizeof(uint32_t), 0);
        j->text = vib3_arena_alloc(&s->arena, s->text_cap, 0);
        j->lp_ids = vib3_arena_alloc(&s->arena, (size_t)s->ctx * (1 + VIB3_API_MAX_TOP_LOGPROBS) * sizeof(uint32_t), 0);
        j->lp_vals = vib3_arena_alloc(&s->arena, (size_t)s->ctx * (1 + VIB3_API_MAX_TOP_LOGPROBS) * sizeof(float), 0);
        j->lp_off = vib3_arena_alloc(&s->arena, (size_t)s->ctx * sizeof(uint32_t), 0);
        j->resp = vib3_arena_alloc(&s->arena, s->resp_cap, 0);
        if (!j->body || !j->tokens || !j->strbuf || !j->prompt_text || !j->prompt_ids || !j->text || !j->lp_ids ||
            !j->lp_vals || !j->lp_off || !j->resp)
            return vib3_err_prefix("request slot %u", i);
    }
    /* one tokenizer scratch shared by the connection threads (tokenizing is short; it is locked),
     * in its own arena: its size depends on the tokenizer (normalizers can grow text) */
    if (vib3_arena_init(&s->tok_arena, 256 * s->prompt_cap + (1u << 20), "serve-tokenizer", 0) != VIB3_OK ||
        vib3_tokenizer_scratch_init(s->tok, s->prompt_cap, &s->tok_arena, &s->tok_scratch) != VIB3_OK)
        return vib3_err_prefix("tokenizer scratch");
    return VIB3_OK;
}

vib3_err vib3_server_start(vib3_server **out, vib3_engine *e, const vib3_config *cfg, const char *model_id) {
    vib3_server *s = calloc(1, sizeof *s);
    if (!s) return vib3_err_set(VIB3_ERR_NOMEM, "server state");
    s->e = e;
    s->cfg = cfg;
    s->tok = vib3_engine_tokenizer(e);
    if (!s->tok) {
        free(s);
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "the model has no tokenizer");
    }
    snprintf(s->model_id, sizeof s->model_id, "%s", model_id);
    s->ctx = vib3_engine_ctx_size(e);
    s->vocab = vib3_engine_vocab(e);
    s->n_jobs = vib3_engine_n_seq(e) + cfg->queue_max;
    s->free_seqs = vib3_engine_n_seq(e);
    s->n_conns = s->n_jobs + 32;
    s->text_cap = (64u << 10) + (size_t)s->ctx * 32;
    s->prompt_cap = 2 * cfg->body_bytes_max + 65536;
    s->resp_cap = 8 * s->text_cap + (size_t)s->ctx * (1 + VIB3_API_MAX_TOP_LOGPROBS) * 512 + (1u << 16);
    s->started_s = (uint64_t)time(NULL);
    const vib3_file *f = vib3_engine_file(e);
    s->chat_tmpl = (const char *)f->chat_template.data;
    s->chat_tmpl_len = f->chat_template.bytes;
    const vib3_tokenizer_info *ti = vib3_tokenizer_info_get(s->tok);
    size_t n;
    const char *t;
    if (ti->bos_id != VIB3_TOKEN_NONE && (t = vib3_tokenizer_token_text(s->tok, ti->bos_id, &n)) && n < sizeof s->bos)
        memcpy(s->bos, t, n);
    if (ti->eos_id != VIB3_TOKEN_NONE && (t = vib3_tokenizer_token_text(s->tok, ti->eos_id, &n)) && n < sizeof s->eos)
        memcpy(s->eos, t, n);
    uint64_t per_job = 2 * cfg->body_bytes_max + (cfg->body_bytes_max / 2 + 16) * sizeof(jsmntok_t) + s->prompt_cap + s->text_cap + s->resp_cap +
                       (uint64_t)s->ctx * (8 + 8 * (1 + VIB3_API_MAX_TOP_LOGPROBS)) + (8u << 20);
    vib3_err rc = vib3_arena_init(&s->arena, per_job * s->n_jobs + (1u << 24), "serve", 0);
    if (!rc) {
        s->jobs = vib3_arena_calloc(&s->arena, s->n_jobs, sizeof(job), 0);
        s->queue = vib3_arena_calloc(&s->arena, s->n_jobs, sizeof(uint32_t), 0);
        s->conns = vib3_arena_calloc(&s->arena, s->n_conns, sizeof(conn), 0);
        rc = s->jobs && s->queue && s->conns ? carve_jobs(s) : vib3_err_code();
    }
    if (rc) {
        if (s->tok_scratch) vib3_tokenizer_scratch_fini(s->tok_scratch);
        vib3_arena_fini(&s->tok_arena);
        vib3_arena_fini(&s->arena);
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tok_mu, NULL);
    pthread_cond_init(&s->sched_cond, NULL);
    the_server = s;
    if (pthread_create(&s->sched, NULL, scheduler_main, s) != 0) {
        vib3_server_stop(s);
        return vib3_err_set(VIB3_ERR_INTERNAL, "cannot start the scheduler thread");
    }
    s->sched_started = true;

    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    /* ITC: MHD_quiesce_daemon (graceful shutdown) needs it with an internal polling thread */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, cfg->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        vib3_server_stop(s);
        return vib3_err_set(VIB3_ERR_INVALID, "--host '%s' is not an IPv4 or IPv6 address", cfg->host);
    }
    if (cfg->port > 65535) {
        vib3_server_stop(s);
        return vib3_err_set(VIB3_ERR_INVALID, "--port %u is out of range (0..65535)", cfg->port);
    }
    s->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)s->n_conns, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10), MHD_OPTION_END);
    if (!s->daemon) {
        vib3_server_stop(s);
        return vib3_err_set(VIB3_ERR_IO, "cannot listen on %s:%u (in use or not permitted)", cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : (uint16_t)cfg->port;
    *out = s;
    return VIB3_OK;
}

uint16_t vib3_server_port(const vib3_server *s) { return s->port; }

void vib3_server_drain_begin(vib3_server *s) {
    atomic_store(&s->draining, true);
    if (!s->daemon) return;
    /* the listening socket is ours to close once quiesced: new connections are refused from here on */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

uint32_t vib3_server_in_flight(vib3_server *s) {
    pthread_mutex_lock(&s->mu);
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_jobs; i++) n += s->jobs[i].state != JOB_FREE;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void vib3_server_drain_force(vib3_server *s) {
    atomic_store(&s->draining, true);
    pthread_mutex_lock(&s->mu);
    s->forced = true;
    for (uint32_t i = 0; i < s->n_jobs; i++)  /* a prefill in progress stops between layers */
        if (s->jobs[i].seq) vib3_seq_cancel(s->jobs[i].seq);
    pthread_cond_signal(&s->sched_cond);
    pthread_mutex_unlock(&s->mu);
}

void vib3_server_stop(vib3_server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->sched_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        for (uint32_t i = 0; i < s->n_jobs; i++)
            if (s->jobs[i].seq) vib3_seq_cancel(s->jobs[i].seq);
        pthread_cond_signal(&s->sched_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sched, NULL);
    }
    if (s->tok_scratch) vib3_tokenizer_scratch_fini(s->tok_scratch); /* PCRE2 match data */
    vib3_arena_fini(&s->tok_arena);
    vib3_arena_fini(&s->arena);
    if (the_server == s) the_server = NULL;
    free(s);
}
