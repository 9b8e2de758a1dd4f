/* test_log.c - JSON lines: validity (parsed back with jansson), field order and omission,
 * escaping, redaction, levels. Output is captured in a temporary file via ks_log_set_fd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/log.h"
#include "tests/unit/ktest.h"

static FILE *cap;

static void capture_start(void)
{
    cap = tmpfile();
    ks_log_set_fd(fileno(cap));
}

/* Returns the captured text (caller frees) and stops capturing. */
static char *capture_end(void)
{
    long n;
    char *buf;

    ks_log_set_fd(2);
    fflush(cap);
    n = lseek(fileno(cap), 0, SEEK_END);
    buf = calloc(1, (size_t)n + 1);
    if (pread(fileno(cap), buf, (size_t)n, 0) != n)
        buf[0] = '\0';
    fclose(cap);
    return buf;
}

/* The one line in text, parsed; NULL (and a failed check) if it is not exactly one valid
 * JSON object followed by a newline. */
static json_t *one_line(const char *text)
{
    json_error_t jerr;
    json_t *j;
    size_t len = strlen(text);

    KT_CHECK_MSG(len > 0 && text[len - 1] == '\n', "line does not end with a newline");
    KT_CHECK_MSG(strchr(text, '\n') == text + len - 1, "more than one line: %s", text);
    j = json_loads(text, 0, &jerr);
    KT_CHECK_MSG(j && json_is_object(j), "not JSON (%s): %s", jerr.text, text);
    return j;
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

KT_TEST(test_basic_line)
{
    char *text;
    json_t *j;

    ks_log_init("ingress", KS_LOG_DEBUG);
    capture_start();
    ks_log(KS_LOG_INFO, "ingress.request", "request served", "trace_id", "abc123",
           "status", "201", NULL);
    text = capture_end();
    j = one_line(text);
    if (j) {
        KT_CHECK(str(j, "ts") != NULL);
        KT_INTEQ(strlen(str(j, "ts")), strlen("2024-05-01T12:00:00.123Z"));
        KT_STREQ(str(j, "level"), "info");
        KT_STREQ(str(j, "svc"), "ingress");
        KT_STREQ(str(j, "event"), "ingress.request");
        KT_STREQ(str(j, "trace_id"), "abc123");
        KT_STREQ(str(j, "status"), "201");
        KT_STREQ(str(j, "msg"), "request served");
        KT_INTEQ(json_object_size(j), 7);
    }
    /* ts, level, svc, event come first and msg last, as log.h promises */
    KT_CHECK(strncmp(text, "{\"ts\":\"", 7) == 0);
    KT_CHECK(strstr(text, "\",\"level\":\"info\",\"svc\":\"ingress\",\"event\":") != NULL);
    KT_CHECK(strstr(text, ",\"msg\":\"request served\"}\n") != NULL);
    json_decref(j);
    free(text);
}

KT_TEST(test_null_fields_omitted)
{
    char *text;
    json_t *j;

    ks_log_init("risk", KS_LOG_INFO);
    capture_start();
    ks_log(KS_LOG_WARN, "risk.decision", NULL, "buyer_id", NULL, "decision", "REVIEW",
           "reason", NULL, NULL);
    text = capture_end();
    j = one_line(text);
    if (j) {
        KT_CHECK(json_object_get(j, "buyer_id") == NULL);
        KT_CHECK(json_object_get(j, "reason") == NULL);
        KT_CHECK(json_object_get(j, "msg") == NULL);
        KT_STREQ(str(j, "decision"), "REVIEW");
        KT_STREQ(str(j, "level"), "warn");
    }
    json_decref(j);
    free(text);
}

KT_TEST(test_escaping)
{
    static const char *const values[] = {
        "say \"hi\"",
        "back\\slash",
        "two\nlines\r\n",
        "tab\there",
        "bell\x01\x07\x1f del\x7f",
        "\b\f",
        "rupiah Rp, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x92\xb8",
        "</script>",
    };
    char *text;
    json_t *j;

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        capture_start();
        ks_log(KS_LOG_ERROR, "test.escape", values[i], "value", values[i], NULL);
        text = capture_end();
        j = one_line(text);
        if (j) {
            KT_STREQ(str(j, "value"), values[i]);
            KT_STREQ(str(j, "msg"), values[i]);
        }
        /* raw control characters never reach the line */
        for (const char *p = text; *p && p[1]; p++)
            KT_CHECK_MSG((unsigned char)*p >= 0x20 && *p != 0x7f, "raw byte 0x%02x in %s",
                         (unsigned char)*p, text);
        json_decref(j);
        free(text);
    }
}

KT_TEST(test_invalid_utf8_replaced)
{
    static const char *const values[] = {
        "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
    };
    char *text;
    json_t *j;

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        capture_start();
        ks_log(KS_LOG_ERROR, "test.utf8", NULL, "value", values[i], NULL);
        text = capture_end();
        j = one_line(text);
        if (j)
            KT_CHECK(strstr(str(j, "value"), "\xef\xbf\xbd") != NULL); /* U+FFFD */
        json_decref(j);
        free(text);
    }
}

KT_TEST(test_redaction)
{
    static const char *const secret[] = {
        "api_key", "authorization", "Authorization", "card_number", "x-api-key",
        "client_secret", "access_token", "password", "webhook_signature", "cvv", "pan",
        "card.pan", "apikey", "jwt", "Card.PAN", "X-Webhook-SIG", "PAN", "card-Pin",
        /* longer than the lowercasing buffer: redacted whatever it says */
        "a_very_long_field_name_that_goes_on_and_on_and_on_and_on_and_on_and_on_and_on_"
        "and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on",
    };
    /* 127 characters, the longest name that is looked at rather than redacted unread */
    static const char *const plain[] = {
        "company", "span", "trace_id", "amount", "partner",
        "a_field_name_of_one_hundred_and_twenty_seven_characters_that_is_still_read_word_"
        "by_word_because_it_fits_the_buffer_exactly_ok_1",
    };
    char *text;
    json_t *j;

    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        capture_start();
        ks_log(KS_LOG_INFO, "test.redact", NULL, secret[i], "sk_live_4242424242424242",
               NULL);
        text = capture_end();
        j = one_line(text);
        if (j)
            KT_CHECK_MSG(str(j, secret[i]) && strcmp(str(j, secret[i]), "[redacted]") == 0,
                         "%s not redacted", secret[i]);
        KT_CHECK_MSG(strstr(text, "4242") == NULL, "%s leaked: %s", secret[i], text);
        json_decref(j);
        free(text);
    }
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        capture_start();
        ks_log(KS_LOG_INFO, "test.redact", NULL, plain[i], "visible", NULL);
        text = capture_end();
        j = one_line(text);
        if (j)
            KT_CHECK_MSG(str(j, plain[i]) && strcmp(str(j, plain[i]), "visible") == 0,
                         "%s redacted", plain[i]);
        json_decref(j);
        free(text);
    }
}

/* The redaction answers are cached per name: the cache is keyed by the name's text, so a
 * name built in a reused buffer is judged by what it says each time, and two names that
 * share a slot do not take each other's answer. */
KT_TEST(test_redaction_cache_by_text)
{
    static const char *const names[] = {"trace_id", "api_key", "route", "signature",
                                        "partner_id", "card_pan", "status", "token"};
    char buf[32];
    char *text;
    json_t *j;

    ks_log_init("ingress", KS_LOG_DEBUG);
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            int secret = i % 2 == 1;
            snprintf(buf, sizeof(buf), "%s", names[i]);
            capture_start();
            ks_log(KS_LOG_INFO, "test.redact", NULL, buf, "value", NULL);
            text = capture_end();
            j = one_line(text);
            if (j)
                KT_CHECK_MSG(str(j, names[i]) &&
                                 strcmp(str(j, names[i]), secret ? "[redacted]" : "value") == 0,
                             "round %d: %s %s", round, names[i],
                             secret ? "not redacted" : "redacted");
            json_decref(j);
            free(text);
        }
    /* many distinct names through 64 slots: each answer stays its own */
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof(buf), i % 3 == 0 ? "x%d_secret" : "field_%d", i);
        capture_start();
        ks_log(KS_LOG_INFO, "test.redact", NULL, buf, "value", NULL);
        text = capture_end();
        j = one_line(text);
        if (j)
            KT_CHECK_MSG(str(j, buf) && strcmp(str(j, buf), i % 3 == 0 ? "[redacted]" : "value") == 0,
                         "%s judged wrong", buf);
        json_decref(j);
        free(text);
    }
}

/* ts is UTC to the millisecond, its seconds part formatted once a second */
KT_TEST(test_timestamp_format)
{
    char *text;
    json_t *j;
    const char *ts;

    ks_log_init("ingress", KS_LOG_DEBUG);
    for (int i = 0; i < 2; i++) {
        capture_start();
        ks_log(KS_LOG_INFO, "test.ts", NULL, NULL);
        text = capture_end();
        j = one_line(text);
        ts = j ? str(j, "ts") : NULL;
        KT_CHECK_MSG(ts && strlen(ts) == 24 && ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' &&
                         ts[13] == ':' && ts[16] == ':' && ts[19] == '.' && ts[23] == 'Z' &&
                         ts[20] >= '0' && ts[20] <= '9' && ts[21] >= '0' && ts[21] <= '9' &&
                         ts[22] >= '0' && ts[22] <= '9',
                     "ts %s", ts ? ts : "(none)");
        json_decref(j);
        free(text);
    }
    KT_CHECK(ks_log_enabled(KS_LOG_DEBUG));
    ks_log_init("ingress", KS_LOG_INFO);
    KT_CHECK(!ks_log_enabled(KS_LOG_DEBUG));
    KT_CHECK(ks_log_enabled(KS_LOG_ERROR));
}

KT_TEST(test_levels)
{
    char *text;

    KT_INTEQ(ks_log_level_parse("debug"), KS_LOG_DEBUG);
    KT_INTEQ(ks_log_level_parse("info"), KS_LOG_INFO);
    KT_INTEQ(ks_log_level_parse("WARN"), KS_LOG_WARN);
    KT_INTEQ(ks_log_level_parse("error"), KS_LOG_ERROR);
    KT_INTEQ(ks_log_level_parse("verbose"), -1);
    KT_INTEQ(ks_log_level_parse(""), -1);
    KT_INTEQ(ks_log_level_parse(NULL), -1);

    ks_log_init("ledger", KS_LOG_WARN);
    capture_start();
    ks_log(KS_LOG_DEBUG, "a.b", "dropped", NULL);
    ks_log(KS_LOG_INFO, "a.b", "dropped", NULL);
    ks_logf(KS_LOG_INFO, "a.b", "dropped %d", 1);
    ks_log(KS_LOG_WARN, "a.b", "kept", NULL);
    ks_log(KS_LOG_ERROR, "a.b", "kept", NULL);
    text = capture_end();
    KT_CHECK(strstr(text, "dropped") == NULL);
    KT_CHECK(strstr(text, "\"level\":\"warn\"") != NULL);
    KT_CHECK(strstr(text, "\"level\":\"error\"") != NULL);
    free(text);
}

KT_TEST(test_logf)
{
    char *text;
    json_t *j;

    ks_log_init("executor", KS_LOG_INFO);
    capture_start();
    ks_logf(KS_LOG_ERROR, "executor.psp.failed", "psp %s answered %d \"%s\"", "xendit", 503,
            "busy\n");
    text = capture_end();
    j = one_line(text);
    if (j) {
        KT_STREQ(str(j, "msg"), "psp xendit answered 503 \"busy\n\"");
        KT_STREQ(str(j, "event"), "executor.psp.failed");
        KT_INTEQ(json_object_size(j), 5);
    }
    json_decref(j);
    free(text);
}

KT_TEST(test_long_line)
{
    size_t n = 200000;
    char *big = malloc(n + 1), *text;
    json_t *j;

    memset(big, 'x', n);
    big[n - 1] = '"';
    big[n] = '\0';
    capture_start();
    ks_log(KS_LOG_INFO, "test.long", "m", "body", big, "after", "yes", NULL);
    text = capture_end();
    j = one_line(text);
    if (j) {
        KT_STREQ(str(j, "body"), big);
        KT_STREQ(str(j, "after"), "yes");
        KT_CHECK(json_object_get(j, "log_truncated") == NULL);
    }
    json_decref(j);
    free(text);
    free(big);
}

KT_TEST(test_lines_are_separate)
{
    char *text, *line, *save = NULL;
    int count = 0, valid = 0;

    capture_start();
    for (int i = 0; i < 50; i++)
        ks_log(KS_LOG_INFO, "test.many", "multi\nline\nmsg", "i", "x", NULL);
    text = capture_end();
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        count++;
        valid += j != NULL;
        json_decref(j);
    }
    KT_INTEQ(count, 50);
    KT_INTEQ(valid, 50);
    free(text);
}

KT_MAIN(test_basic_line, test_null_fields_omitted, test_escaping, test_invalid_utf8_replaced,
        test_redaction, test_redaction_cache_by_text, test_timestamp_format, test_levels, test_logf, test_long_line, test_lines_are_separate)
