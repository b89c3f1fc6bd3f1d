/* test_chat.c — chat templates against @huggingface/jinja (tests/node/chat_oracle.mjs).
 *
 *   oracle_templates   the real templates (Mixtral, Mistral v0.3, Llama-2, Llama-3, Llama-3.1, Qwen3,
 *                      DeepSeek-V3, Kimi K2)
 *                      rendered by vib3's interpreter == @huggingface/jinja, byte for byte, for
 *                      11 conversations x add_generation_prompt (x enable_thinking for Qwen3);
 *                      conversations the template rejects must be rejected too
 *   oracle_builtins    vib3's built-in family templates == the real template's output
 *   syntax_errors      unsupported / malformed templates fail with a message, never crash
 *   limits             runaway templates stop at the step / output limits
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/fault.h"
#include "core/json.h"
#include "runtime/chat.h"
#include "tests/runtime/fixture.h"
#include "tests/test.h"

static const char *oracle(void) {
    static char path[1100];
    static int state;
    if (state) return state > 0 ? path : NULL;
    state = -1;
    struct stat st;
    if (stat("tests/node/node_modules/@huggingface/jinja", &st) != 0) {
        fprintf(stderr, "test_chat: SKIP oracle: tests/node/node_modules missing (run sh tests/node/install.sh)\n");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/chat_oracle.json", vib3_test_tmpdir());
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "node tests/node/chat_oracle.mjs '%s' >/dev/null 2>&1", path);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_chat: SKIP oracle: node tests/node/chat_oracle.mjs failed\n");
        return NULL;
    }
    state = 1;
    return path;
}

typedef struct oracle_data {
    char *text;
    vib3_arena a;
    vib3_json j;
} oracle_data;

static bool oracle_load(oracle_data *d) {
    const char *p = oracle();
    if (!p) return false;
    size_t n;
    d->text = slurp(p, &n);
    if (!d->text) return false;
    if (vib3_arena_init(&d->a, (size_t)1 << 30, "chat-oracle", 0)) return false;
    return vib3_json_parse(&d->j, d->text, n, &d->a, 0, "chat oracle") == VIB3_OK;
}

static void oracle_free(oracle_data *d) {
    vib3_arena_fini(&d->a);
    free(d->text);
}

static vib3_chat_family family_of(const char *name) {
    if (!strcmp(name, "mixtral")) return VIB3_CHAT_MISTRAL;
    if (!strcmp(name, "llama2")) return VIB3_CHAT_LLAMA2;
    if (!strcmp(name, "llama3")) return VIB3_CHAT_LLAMA3;
    if (!strcmp(name, "qwen3")) return VIB3_CHAT_QWEN3;
    if (!strcmp(name, "deepseek_v3")) return VIB3_CHAT_DEEPSEEK_V3;
    if (!strcmp(name, "kimi_k2")) return VIB3_CHAT_KIMI_K2;
    return VIB3_CHAT_UNKNOWN;
}

/* run every oracle case through the template (builtin = false) or the family built-in */
static void run_cases(bool builtin) {
    oracle_data d;
    if (!oracle_load(&d)) SKIP("@huggingface/jinja oracle unavailable (npm / node)");
    vib3_json *j = &d.j;
    int templates = vib3_json_get(j, 0, "templates");
    int cases = vib3_json_get(j, 0, "cases");
    int n = vib3_json_size(j, cases);
    static char out[1 << 16], want[1 << 16], tname[64], role[16][32];
    static char content[16][512];
    int total = 0, ok = 0, errors_ok = 0;
    vib3_arena scratch;
    CHECK_OK(vib3_arena_init(&scratch, (size_t)64 << 20, "chat-scratch", 0));
    for (int i = 0, it = cases + 1; i < n; i++, it = vib3_json_next(j, it)) {
        vib3_json_get_str(j, it, "template", tname, sizeof tname);
        vib3_chat_family fam = family_of(tname);
        if (builtin && fam == VIB3_CHAT_UNKNOWN) continue;
        int msgs = vib3_json_get(j, it, "messages");
        int nm = vib3_json_size(j, msgs);
        vib3_chat_msg m[16];
        for (int k = 0, mt = msgs + 1; k < nm && k < 16; k++, mt = vib3_json_next(j, mt)) {
            vib3_json_get_str(j, mt, "role", role[k], sizeof role[k]);
            vib3_json_get_str(j, mt, "content", content[k], sizeof content[k]);
            m[k].role = role[k];
            m[k].content = content[k];
        }
        char bos[64], eos[64];
        vib3_json_get_str(j, it, "bos", bos, sizeof bos);
        vib3_json_get_str(j, it, "eos", eos, sizeof eos);
        int64_t think = -1;
        vib3_json_i64(j, vib3_json_get(j, it, "enable_thinking"), &think);
        vib3_chat_opts o = {vib3_json_get_bool(j, it, "agp", true), bos, eos, (int)think, false, &scratch};
        size_t len = 0;
        vib3_err e;
        if (builtin) {
            e = vib3_chat_render_family(fam, m, (size_t)nm, &o, out, sizeof out, &len);
        } else {
            size_t tl;
            int tt = vib3_json_get(j, templates, tname);
            char *tmpl = vib3_json_str_dup(j, tt, &d.a, &tl);
            CHECK(tmpl != NULL);
            CHECK(vib3_chat_detect(tmpl, tl) == fam || fam == VIB3_CHAT_UNKNOWN);
            e = vib3_chat_render(tmpl, tl, m, (size_t)nm, &o, out, sizeof out, &len);
        }
        total++;
        long wl = vib3_json_get_str(j, it, "expected", want, sizeof want);
        if (wl < 0) {
            /* the oracle raised: so must we (built-ins may accept what a template rejects only
             * when the template's rejection is about roles the built-in also rejects) */
            if (e != VIB3_OK) { ok++; errors_ok++; }
            else CHECK_MSG(0, "%s%s case %d conv %d: rendered, the oracle raised", builtin ? "builtin " : "", tname, i,
                           (int)vib3_json_get_u64(j, it, "conv", 0));
            continue;
        }
        if (e == VIB3_OK && len == (size_t)wl && memcmp(out, want, len) == 0) ok++;
        else
            CHECK_MSG(0, "%s%s case %d conv %d agp %d think %d: %s\n  got  \"%.300s\"\n  want \"%.300s\"", builtin ? "builtin " : "",
                      tname, i, (int)vib3_json_get_u64(j, it, "conv", 0), o.add_generation_prompt, (int)think,
                      e ? vib3_err_msg() : "differs", e ? "" : out, want);
    }
    printf("    %s: %d/%d equal to @huggingface/jinja (%d expected rejections)\n", builtin ? "built-in families" : "real templates",
           ok, total, errors_ok);
    CHECK(total > 50);
    vib3_arena_fini(&scratch);
    oracle_free(&d);
}

TEST(oracle_templates) { run_cases(false); }
TEST(oracle_builtins) { run_cases(true); }

static vib3_err render_str(const char *tmpl, char *out, size_t cap) {
    vib3_chat_msg m[2] = {{"user", "hi"}, {"assistant", "yo"}};
    vib3_chat_opts o = {true, "<s>", "</s>", -1, false, NULL};
    size_t len;
    return vib3_chat_render(tmpl, strlen(tmpl), m, 2, &o, out, cap, &len);
}

TEST(syntax_errors) {
    char out[4096];
    struct { const char *t; vib3_err want; } bad[] = {
        {"{% if x %}never closed", VIB3_ERR_FORMAT},
        {"{{ unclosed", VIB3_ERR_FORMAT},
        {"{% for %}{% endfor %}", VIB3_ERR_FORMAT},
        {"{{ 'unterminated }}", VIB3_ERR_FORMAT},
        {"{% include 'x' %}", VIB3_ERR_UNSUPPORTED},
        {"{{ 1.5 }}", VIB3_ERR_UNSUPPORTED},
        {"{{ x | frobnicate }}", VIB3_ERR_UNSUPPORTED},
        {"{{ messages[0].content.zfill(3) }}", VIB3_ERR_UNSUPPORTED},
        {"{{ raise_exception('no thanks') }}", VIB3_ERR_INVALID},
        {"{% endif %}", VIB3_ERR_FORMAT},
        {"{{ (1, 2) }}", VIB3_ERR_UNSUPPORTED},
        {"{{ 1 / 0 }}", VIB3_ERR_UNSUPPORTED},
        {"{{ 1 // 0 }}", VIB3_ERR_INVALID},
        {"{% set ns.x = 1 %}", VIB3_ERR_INVALID},
        {"{{ 'a' < 1 }}", VIB3_ERR_INVALID},
        {"{# open comment", VIB3_ERR_FORMAT},
        {"{{ \x01 }}", VIB3_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vib3_err e = render_str(bad[i].t, out, sizeof out);
        CHECK_MSG(e == bad[i].want, "template %zu \"%s\": got %s (%s), want %s", i, bad[i].t, vib3_err_name(e), vib3_err_msg(),
                  vib3_err_name(bad[i].want));
        CHECK(strstr(vib3_err_msg(), "chat template") != NULL);
    }
    CHECK(strstr((render_str("{{ raise_exception('no thanks') }}", out, sizeof out), vib3_err_msg()), "no thanks") != NULL);
    /* a few things that do work */
    CHECK_OK(render_str("{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content|upper }}{% endfor %}", out, sizeof out));
    CHECK_STR(out, "1:HI");
    CHECK_OK(render_str("{% macro t(x, y='!') %}[{{ x }}{{ y }}]{% endmacro %}{{ t('a') }}{{ t('b', y='?') }}", out, sizeof out));
    CHECK_STR(out, "[a!][b?]");
    CHECK_OK(render_str("{{ messages|length }} {{ [1,2,3][::-1]|join(',') }} {{ 'a,b'.split(',')[-1] }} {{ 7 % 3 }} {{ -7 // 2 }}", out,
                        sizeof out));
    CHECK_STR(out, "2 3,2,1 b 1 -4");
    CHECK_OK(render_str("{% set d = {'k': 'v'} %}{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}{{ d|tojson }}", out, sizeof out));
    CHECK_STR(out, "k=v{\"k\": \"v\"}");
    CHECK_OK(render_str("{%- for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{%- endfor %}", out, sizeof out));
    CHECK_STR(out, "012");
    CHECK(vib3_chat_render("", 0, NULL, 0, NULL, out, sizeof out, &(size_t){0}) == VIB3_ERR_NOT_FOUND);
}

TEST(limits) {
    char out[256];
    CHECK(render_str("{% for i in range(100000) %}{% for k in range(100000) %}{% endfor %}{% endfor %}", out, sizeof out) ==
          VIB3_ERR_LIMIT);
    CHECK(render_str("{% for i in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}", out, sizeof out) ==
          VIB3_ERR_LIMIT);
    CHECK(strstr(vib3_err_msg(), "steps") != NULL);
    CHECK(render_str("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", out, sizeof out) == VIB3_ERR_LIMIT);
    CHECK(render_str("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", out, sizeof out) == VIB3_ERR_LIMIT);
    char deep[2000];
    size_t w = 0;
    w += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 300; i++) deep[w++] = '(';
    deep[w++] = '1';
    for (int i = 0; i < 300; i++) deep[w++] = ')';
    memcpy(deep + w, " }}", 4);
    CHECK(render_str(deep, out, sizeof out) == VIB3_ERR_LIMIT);
}

/* OOM loop over the interpreter's scratch allocations: fail cleanly or render the same text */
TEST(oom_loop_render) {
    vib3_chat_msg m[3] = {{"system", "sys"}, {"user", "hi"}, {"assistant", "<think>r</think>yo"}};
    char want[4096], out[4096];
    size_t wl, ol;
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)64 << 20, "chat-oom", 0));
    vib3_chat_opts o = {true, "<s>", "</s>", -1, false, &a};
    for (int fam = VIB3_CHAT_CHATML; fam < VIB3_CHAT_FAMILY_COUNT_; fam++) {
        vib3_fault_arm(VIB3_FAULT_ALLOC, UINT64_MAX, false);
        vib3_err e0 = vib3_chat_render_family((vib3_chat_family)fam, m, fam == VIB3_CHAT_MISTRAL || fam == VIB3_CHAT_LLAMA2 ? 2 : 3, &o,
                                              want, sizeof want, &wl);
        uint64_t calls = vib3_fault_calls(VIB3_FAULT_ALLOC);
        vib3_fault_disarm(VIB3_FAULT_ALLOC);
        CHECK_OK(e0);
        for (uint64_t nth = 1; nth <= calls; nth++) {
            vib3_fault_arm(VIB3_FAULT_ALLOC, nth, nth & 1);
            vib3_err e = vib3_chat_render_family((vib3_chat_family)fam, m, fam == VIB3_CHAT_MISTRAL || fam == VIB3_CHAT_LLAMA2 ? 2 : 3,
                                                 &o, out, sizeof out, &ol);
            vib3_fault_disarm(VIB3_FAULT_ALLOC);
            if (e) CHECK(e == VIB3_ERR_NOMEM);
            else CHECK(ol == wl && memcmp(out, want, wl) == 0);
        }
        CHECK_EQ_U64(vib3_arena_mark(&a), 0); /* the scratch is reset after every render */
    }
    vib3_arena_fini(&a);
}
