/* request.c — validating parser of OpenAI request bodies (see request.h). */
#include "api/request.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"

typedef struct parse_ctx {
    vib3_json j;
    char *buf;          /* decoded strings */
    size_t cap, used;
    vib3_api_request *req;
} parse_ctx;

static vib3_err bad(parse_ctx *c, const char *param, const char *fmt, const char *detail) {
    snprintf(c->req->error_param, sizeof c->req->error_param, "%s", param);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    return vib3_err_set(VIB3_ERR_INVALID, "%s: %s", param, msg);
}

/* decode a string token into the string buffer */
static const char *take_str(parse_ctx *c, int tok, size_t *len_out) {
    long n = vib3_json_str(&c->j, tok, c->buf + c->used, c->cap - c->used);
    if (n < 0) return NULL;
    const char *s = c->buf + c->used;
    c->used += (size_t)n + 1;
    if (len_out) *len_out = (size_t)n;
    return s;
}

/* text that must be valid UTF-8 without NUL (the tokenizer and the chat template take C strings) */
static int valid_text(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        size_t k = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n || b == 0) return 0;
        uint32_t cp = k == 1 ? b : b & (0x7F >> k);
        for (size_t m = 1; m < k; m++) {
            if (((unsigned char)s[i + m] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | ((unsigned char)s[i + m] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp < 0xE000))
            return 0;
        i += k;
    }
    return 1;
}

static vib3_err get_text(parse_ctx *c, int tok, const char *param, const char **out, size_t *len) {
    size_t n;
    const char *s = take_str(c, tok, &n);
    if (!s) return bad(c, param, "must be a string%s", NULL);
    if (!valid_text(s, n)) return bad(c, param, "is not valid UTF-8 text (or contains NUL)%s", NULL);
    *out = s;
    if (len) *len = n;
    return VIB3_OK;
}

static vib3_err get_number(parse_ctx *c, const char *key, double lo, double hi, float *out) {
    int t = vib3_json_get(&c->j, 0, key);
    if (t < 0 || vib3_json_is_null(&c->j, t)) return VIB3_OK;
    double v;
    if (!vib3_json_f64(&c->j, t, &v)) return bad(c, key, "must be a number%s", NULL);
    if (!(v >= lo && v <= hi)) {
        char range[64];
        snprintf(range, sizeof range, "%g..%g", lo, hi);
        return bad(c, key, "must be in %s", range);
    }
    *out = (float)v;
    return VIB3_OK;
}

static vib3_err get_uint(parse_ctx *c, const char *key, uint64_t hi, uint32_t *out, bool *set) {
    int t = vib3_json_get(&c->j, 0, key);
    if (t < 0 || vib3_json_is_null(&c->j, t)) return VIB3_OK;
    uint64_t v;
    if (!vib3_json_u64(&c->j, t, &v)) return bad(c, key, "must be a non-negative integer%s", NULL);
    if (v > hi) {
        char range[32];
        snprintf(range, sizeof range, "%llu", (unsigned long long)hi);
        return bad(c, key, "must be at most %s", range);
    }
    *out = (uint32_t)v;
    if (set) *set = true;
    return VIB3_OK;
}

static vib3_err get_bool(parse_ctx *c, int obj, const char *key, const char *param, bool *out) {
    int t = vib3_json_get(&c->j, obj, key);
    if (t < 0 || vib3_json_is_null(&c->j, t)) return VIB3_OK;
    if (!vib3_json_bool(&c->j, t, out)) return bad(c, param, "must be a boolean%s", NULL);
    return VIB3_OK;
}

/* content: a string, or an array of parts {"type": "text", "text": "..."} (concatenated) */
static vib3_err parse_content(parse_ctx *c, int t, const char *param, const char **out) {
    if (vib3_json_is(&c->j, t, JSMN_STRING)) return get_text(c, t, param, out, NULL);
    if (!vib3_json_is(&c->j, t, JSMN_ARRAY)) return bad(c, param, "must be a string or an array of text parts%s", NULL);
    char *start = c->buf + c->used;
    size_t total = 0;
    for (int i = 0; i < vib3_json_size(&c->j, t); i++) {
        int part = vib3_json_index(&c->j, t, i);
        if (!vib3_json_eq(&c->j, vib3_json_get(&c->j, part, "type"), "text"))
            return bad(c, param, "only parts of type \"text\" are supported%s", NULL);
        long n = vib3_json_str(&c->j, vib3_json_get(&c->j, part, "text"), start + total, c->cap - c->used - total);
        if (n < 0) return bad(c, param, "text part must have a string \"text\"%s", NULL);
        total += (size_t)n;
    }
    if (c->used + total + 1 > c->cap) return bad(c, param, "too long%s", NULL);
    start[total] = 0;
    if (!valid_text(start, total)) return bad(c, param, "is not valid UTF-8 text (or contains NUL)%s", NULL);
    c->used += total + 1;
    *out = start;
    return VIB3_OK;
}

static vib3_err parse_messages(parse_ctx *c) {
    int t = vib3_json_get(&c->j, 0, "messages");
    if (t < 0) return bad(c, "messages", "is required%s", NULL);
    if (!vib3_json_is(&c->j, t, JSMN_ARRAY)) return bad(c, "messages", "must be an array%s", NULL);
    int n = vib3_json_size(&c->j, t);
    if (n == 0) return bad(c, "messages", "must not be empty%s", NULL);
    if (n > VIB3_API_MAX_MESSAGES) return bad(c, "messages", "has more than 256 entries%s", NULL);
    int m = t + 1;
    for (int i = 0; i < n; i++, m = vib3_json_next(&c->j, m)) {
        char param[64];
        vib3_chat_msg *msg = &c->req->messages[i];
        if (!vib3_json_is(&c->j, m, JSMN_OBJECT)) {
            snprintf(param, sizeof param, "messages[%d]", i);
            return bad(c, param, "must be an object%s", NULL);
        }
        snprintf(param, sizeof param, "messages[%d].role", i);
        int r = vib3_json_get(&c->j, m, "role");
        if (r < 0) return bad(c, param, "is required%s", NULL);
        if (vib3_json_eq(&c->j, r, "developer")) msg->role = "system";
        else if (vib3_json_eq(&c->j, r, "system")) msg->role = "system";
        else if (vib3_json_eq(&c->j, r, "user")) msg->role = "user";
        else if (vib3_json_eq(&c->j, r, "assistant")) msg->role = "assistant";
        else return bad(c, param, "must be one of system, user, assistant, developer%s", NULL);
        snprintf(param, sizeof param, "messages[%d].content", i);
        int ct = vib3_json_get(&c->j, m, "content");
        if (ct < 0 || vib3_json_is_null(&c->j, ct)) {
            if (strcmp(msg->role, "assistant") != 0) return bad(c, param, "is required%s", NULL);
            msg->content = "";
        } else {
            vib3_err rc = parse_content(c, ct, param, &msg->content);
            if (rc) return rc;
        }
    }
    c->req->n_messages = (uint32_t)n;
    return VIB3_OK;
}

static vib3_err parse_stop(parse_ctx *c) {
    int t = vib3_json_get(&c->j, 0, "stop");
    if (t < 0 || vib3_json_is_null(&c->j, t)) return VIB3_OK;
    vib3_api_request *r = c->req;
    if (vib3_json_is(&c->j, t, JSMN_STRING)) {
        vib3_err rc = get_text(c, t, "stop", &r->stop[0], &r->stop_len[0]);
        if (rc) return rc;
        if (r->stop_len[0] == 0) return bad(c, "stop", "must not be empty%s", NULL);
        r->n_stop = 1;
        return VIB3_OK;
    }
    if (!vib3_json_is(&c->j, t, JSMN_ARRAY)) return bad(c, "stop", "must be a string or an array of strings%s", NULL);
    int n = vib3_json_size(&c->j, t);
    if (n > VIB3_API_MAX_STOP) return bad(c, "stop", "takes at most 4 sequences%s", NULL);
    for (int i = 0; i < n; i++) {
        char param[32];
        snprintf(param, sizeof param, "stop[%d]", i);
        vib3_err rc = get_text(c, vib3_json_index(&c->j, t, i), param, &r->stop[i], &r->stop_len[i]);
        if (rc) return rc;
        if (r->stop_len[i] == 0 || r->stop_len[i] > 256) return bad(c, param, "must be 1..256 bytes%s", NULL);
    }
    r->n_stop = (uint32_t)n;
    return VIB3_OK;
}

static vib3_err parse_sampling(parse_ctx *c) {
    vib3_api_request *r = c->req;
    vib3_err rc;
    bool mt_set = false, mct_set = false;
    uint32_t mt = 0, mct = 0;
    if ((rc = get_number(c, "temperature", 0, 2, &r->temperature)) || (rc = get_number(c, "top_p", 0, 1, &r->top_p)) ||
        (rc = get_number(c, "min_p", 0, 1, &r->min_p)) ||
        (rc = get_number(c, "repeat_penalty", 0.01, 10, &r->repeat_penalty)) ||
        (rc = get_number(c, "presence_penalty", -2, 2, &r->presence_penalty)) ||
        (rc = get_number(c, "frequency_penalty", -2, 2, &r->frequency_penalty)) ||
        (rc = get_uint(c, "top_k", 1u << 20, &r->top_k, NULL)) ||
        (rc = get_uint(c, "max_tokens", 1u << 24, &mt, &mt_set)) ||
        (rc = get_uint(c, "max_completion_tokens", 1u << 24, &mct, &mct_set)))
        return rc;
    if (mt_set && mt == 0) return bad(c, "max_tokens", "must be at least 1%s", NULL);
    if (mct_set && mct == 0) return bad(c, "max_completion_tokens", "must be at least 1%s", NULL);
    r->max_tokens = mct_set ? mct : mt; /* the newer name wins when both are given */
    int t = vib3_json_get(&c->j, 0, "seed");
    if (t >= 0 && !vib3_json_is_null(&c->j, t)) {
        int64_t s;
        if (!vib3_json_i64(&c->j, t, &s)) return bad(c, "seed", "must be an integer%s", NULL);
        r->seed = (uint64_t)s;
        r->seed_set = true;
    }
    uint32_t n = 1;
    if ((rc = get_uint(c, "n", 128, &n, NULL))) return rc;
    if (n != 1) return bad(c, "n", "only n=1 is supported%s", NULL);
    return VIB3_OK;
}

static vib3_err parse_logprobs(parse_ctx *c) {
    vib3_api_request *r = c->req;
    int t = vib3_json_get(&c->j, 0, "logprobs");
    if (r->kind == VIB3_API_CHAT) {
        vib3_err rc = get_bool(c, 0, "logprobs", "logprobs", &r->logprobs);
        if (rc) return rc;
        bool set = false;
        if ((rc = get_uint(c, "top_logprobs", VIB3_API_MAX_TOP_LOGPROBS, &r->top_logprobs, &set))) return rc;
        if (set && !r->logprobs) return bad(c, "top_logprobs", "requires logprobs: true%s", NULL);
        return VIB3_OK;
    }
    if (t < 0 || vib3_json_is_null(&c->j, t)) return VIB3_OK;
    uint64_t v;
    if (!vib3_json_u64(&c->j, t, &v) || v > 5) return bad(c, "logprobs", "must be an integer in 0..5%s", NULL);
    r->logprobs = true;
    r->top_logprobs = (uint32_t)v;
    return VIB3_OK;
}

/* Features this server does not implement are refused with a 400 naming the parameter rather than
 * ignored: a client that sends tools, a JSON response_format or a logit_bias and gets plain text back
 * would take it for the model's own choice. Their "off" values (empty tools, tool_choice "none",
 * response_format "text", an empty logit_bias) are accepted. */
static vib3_err refuse_unsupported(parse_ctx *c) {
    int t = vib3_json_get(&c->j, 0, "tools");
    if (t >= 0 && !vib3_json_is_null(&c->j, t) && vib3_json_size(&c->j, t) > 0)
        return bad(c, "tools", "tool calling is not supported by this server%s", NULL);
    t = vib3_json_get(&c->j, 0, "functions");
    if (t >= 0 && !vib3_json_is_null(&c->j, t) && vib3_json_size(&c->j, t) > 0)
        return bad(c, "functions", "function calling is not supported by this server%s", NULL);
    t = vib3_json_get(&c->j, 0, "response_format");
    if (t >= 0 && !vib3_json_is_null(&c->j, t)) {
        int ty = vib3_json_get(&c->j, t, "type");
        if (!vib3_json_is(&c->j, t, JSMN_OBJECT) || !vib3_json_eq(&c->j, ty, "text"))
            return bad(c, "response_format", "only {\"type\": \"text\"} is supported (no JSON mode or schemas)%s", NULL);
    }
    t = vib3_json_get(&c->j, 0, "logit_bias");
    if (t >= 0 && !vib3_json_is_null(&c->j, t) && vib3_json_size(&c->j, t) > 0)
        return bad(c, "logit_bias", "is not supported by this server%s", NULL);
    if (c->req->kind != VIB3_API_COMPLETION) return VIB3_OK;
    uint32_t best_of = 1; /* completions only: best_of (n = 1 here) and suffix (insert mode) */
    vib3_err rc = get_uint(c, "best_of", 128, &best_of, NULL);
    if (rc) return rc;
    if (best_of != 1) return bad(c, "best_of", "only best_of=1 is supported%s", NULL);
    t = vib3_json_get(&c->j, 0, "suffix");
    if (t >= 0 && !vib3_json_is_null(&c->j, t) && !vib3_json_eq(&c->j, t, ""))
        return bad(c, "suffix", "is not supported by this server%s", NULL);
    return VIB3_OK;
}

vib3_err vib3_api_parse(vib3_api_kind kind, const char *body, size_t len, jsmntok_t *tokens, size_t cap,
                        char *strbuf, size_t strbuf_cap, vib3_api_request *req) {
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->temperature = 1;
    req->top_p = 1;
    req->repeat_penalty = 1;
    parse_ctx c = {.buf = strbuf, .cap = strbuf_cap, .req = req};
    if (vib3_json_parse_into(&c.j, body, len, tokens, cap, "request body") != VIB3_OK) {
        snprintf(req->error_param, sizeof req->error_param, "body");
        char why[256]; /* the message names the byte; copy it before re-setting the error */
        snprintf(why, sizeof why, "%s", vib3_err_msg());
        return vib3_err_set(VIB3_ERR_INVALID, "%s", why);
    }
    if (!vib3_json_is(&c.j, 0, JSMN_OBJECT)) return bad(&c, "body", "must be a JSON object%s", NULL);
    vib3_err rc;
    int t = vib3_json_get(&c.j, 0, "model");
    if (t >= 0 && !vib3_json_is_null(&c.j, t) && (rc = get_text(&c, t, "model", &req->model, NULL))) return rc;
    if (kind == VIB3_API_CHAT) {
        if ((rc = parse_messages(&c))) return rc;
    } else {
        t = vib3_json_get(&c.j, 0, "prompt");
        if (t < 0) return bad(&c, "prompt", "is required%s", NULL);
        if (vib3_json_is(&c.j, t, JSMN_ARRAY)) {
            if (vib3_json_size(&c.j, t) != 1) return bad(&c, "prompt", "arrays must hold exactly one string%s", NULL);
            t = vib3_json_index(&c.j, t, 0);
        }
        if ((rc = get_text(&c, t, "prompt", &req->prompt, &req->prompt_len))) return rc;
        bool echo = false;
        if ((rc = get_bool(&c, 0, "echo", "echo", &echo))) return rc;
        if (echo) return bad(&c, "echo", "echo is not supported%s", NULL);
    }
    if ((rc = parse_sampling(&c)) || (rc = parse_stop(&c)) || (rc = parse_logprobs(&c)) || (rc = refuse_unsupported(&c)))
        return rc;
    if ((rc = get_bool(&c, 0, "stream", "stream", &req->stream))) return rc;
    if ((rc = get_bool(&c, 0, "ignore_eos", "ignore_eos", &req->ignore_eos))) return rc;
    t = vib3_json_get(&c.j, 0, "stream_options");
    if (t >= 0 && !vib3_json_is_null(&c.j, t)) {
        if (!vib3_json_is(&c.j, t, JSMN_OBJECT)) return bad(&c, "stream_options", "must be an object%s", NULL);
        if ((rc = get_bool(&c, t, "include_usage", "stream_options.include_usage", &req->include_usage))) return rc;
    }
    return VIB3_OK;
}
