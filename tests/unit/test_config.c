/* test_config.c - table-driven settings: file, environment, types, problems reported all at
 * once, kafka.* passthrough, the start-up path of main() and the Markdown table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/config.h"
#include "tests/unit/ktest.h"

static const struct ks_config_def defs[] = {
    {"pg.dsn", KS_CFG_STRING, NULL, 1, "database"},
    {"kafka.brokers", KS_CFG_STRING, "127.0.0.1:9092", 1, "brokers"},
    {"http.port", KS_CFG_INT, "8080", 1, "port"},
    {"log.level", KS_CFG_STRING, "info", 0, "level"},
    {"risk.enabled", KS_CFG_BOOL, "true", 0, "switch"},
    {"poll.timeout", KS_CFG_DURATION_MS, "250ms", 0, "poll"},
    {"retry.delay", KS_CFG_DURATION_MS, "5s", 0, "retry"},
    {"lock.ttl", KS_CFG_DURATION_MS, "1m", 0, "lock"},
    {"keep.for", KS_CFG_DURATION_MS, "2h", 0, "keep"},
    {"flush.every", KS_CFG_DURATION_MS, "1500", 0, "flush"},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *write_conf(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/kasir-test-conf-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        path[0] = '\0';
    if (fd >= 0)
        close(fd);
    return path;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* Environment variables a test may set; cleared before each test so that the tests do not
 * depend on each other or on the shell. */
/* Every KASIR_* variable is removed, not a list: a variable of the caller's shell (CI
 * sets stack ports, developers set DSNs) must not leak into what a test expects. */
static void clear_env(void)
{
    extern char **environ;
    char name[256];
    size_t i = 0;

    while (environ[i]) {
        const char *eq = strchr(environ[i], '=');
        size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        if (n < sizeof(name) && strncmp(environ[i], "KASIR_", 6) == 0) {
            memcpy(name, environ[i], n);
            name[n] = '\0';
            unsetenv(name); /* shifts environ down: look at index i again */
            continue;
        }
        i++;
    }
}

KT_TEST(test_defaults_and_types)
{
    struct ks_err err;
    struct ks_config *cfg;
    const char *path;

    clear_env();
    memset(&err, 0x5a, sizeof(err));
    path = write_conf("# a comment\n\n  pg.dsn = host=/tmp dbname=kasir  \n");
    cfg = ks_config_load(defs, NDEFS, path, NULL, &err);
    KT_CHECK(cfg != NULL);
    KT_INTEQ(err.code, 0x5a5a5a5a); /* untouched */
    KT_STREQ(ks_config_str(cfg, "pg.dsn"), "host=/tmp dbname=kasir");
    KT_STREQ(ks_config_str(cfg, "kafka.brokers"), "127.0.0.1:9092");
    KT_INTEQ(ks_config_int(cfg, "http.port"), 8080);
    KT_STREQ(ks_config_str(cfg, "http.port"), "8080");
    KT_INTEQ(ks_config_bool(cfg, "risk.enabled"), 1);
    KT_INTEQ(ks_config_ms(cfg, "poll.timeout"), 250);
    KT_INTEQ(ks_config_ms(cfg, "retry.delay"), 5000);
    KT_INTEQ(ks_config_ms(cfg, "lock.ttl"), 60000);
    KT_INTEQ(ks_config_ms(cfg, "keep.for"), 7200000);
    KT_INTEQ(ks_config_ms(cfg, "flush.every"), 1500);
    /* names not in the table, or asked as another type */
    KT_STREQ(ks_config_str(cfg, "no.such"), "");
    KT_INTEQ(ks_config_int(cfg, "no.such"), 0);
    KT_INTEQ(ks_config_int(cfg, "pg.dsn"), 0);
    KT_INTEQ(ks_config_ms(cfg, "http.port"), 0);
    ks_config_free(cfg);
    unlink(path);
    ks_config_free(NULL);
}

KT_TEST(test_three_problems_at_once)
{
    struct ks_err err;
    char *problems = NULL;
    struct ks_config *cfg;
    const char *path;

    clear_env();
    /* unknown name, malformed int, and pg.dsn (required, no default) missing */
    path = write_conf("no.such.setting = 1\nhttp.port = 80x\n");
    cfg = ks_config_load(defs, NDEFS, path, &problems, &err);
    KT_CHECK(cfg == NULL);
    KT_INTEQ(err.code, KS_ECONFIG);
    KT_CHECK(strstr(err.msg, "3 configuration problems") != NULL);
    KT_CHECK(problems != NULL);
    if (problems) {
        KT_INTEQ(count_lines(problems), 3);
        KT_CHECK_MSG(strstr(problems, "no.such.setting: unknown setting") != NULL, "%s",
                     problems);
        KT_CHECK_MSG(strstr(problems, ":1)") != NULL, "line number missing: %s", problems);
        KT_CHECK_MSG(strstr(problems, "http.port: \"80x\" is not an integer") != NULL, "%s",
                     problems);
        KT_CHECK_MSG(strstr(problems, ":2)") != NULL, "line number missing: %s", problems);
        KT_CHECK_MSG(strstr(problems, "pg.dsn: missing required setting") != NULL, "%s",
                     problems);
        KT_CHECK(strstr(problems, "KASIR_PG_DSN") != NULL);
    }
    free(problems);
    unlink(path);
}

KT_TEST(test_more_problems)
{
    static const struct {
        const char *file, *want;
    } t[] = {
        {"pg.dsn = x\njust words\n", "expected \"name = value\""},
        {"pg.dsn = x\n = 5\n", "expected \"name = value\""},
        {"pg.dsn = x\nrisk.enabled = maybe\n", "risk.enabled: \"maybe\" is not a boolean"},
        {"pg.dsn = x\npoll.timeout = 5 s\n", "poll.timeout: \"5 s\" is not a duration"},
        {"pg.dsn = x\npoll.timeout = 1w\n", "is not a duration"},
        {"pg.dsn = x\npoll.timeout = -1s\n", "is not a duration"},
        {"pg.dsn = x\npoll.timeout = ms\n", "is not a duration"},
        {"pg.dsn = x\nhttp.port = 99999999999999999999\n", "is not an integer"},
        {"pg.dsn = x\nhttp.port = +80\n", "is not an integer"},
        {"pg.dsn = x\nhttp.port = \n", "http.port: missing required setting"},
        {"pg.dsn =\n", "pg.dsn: missing required setting"},
        {"pg.dsn = x\nlog.level = verbose\n", "log.level: \"verbose\" is not one of"},
    };

    clear_env();
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct ks_err err;
        char *problems = NULL;
        const char *path = write_conf(t[i].file);
        struct ks_config *cfg = ks_config_load(defs, NDEFS, path, &problems, &err);
        KT_CHECK(cfg == NULL);
        KT_INTEQ(err.code, KS_ECONFIG);
        KT_CHECK_MSG(problems && strstr(problems, t[i].want), "case %zu: %s", i,
                     problems ? problems : "(null)");
        KT_INTEQ(count_lines(problems), 1);
        free(problems);
        ks_config_free(cfg);
        unlink(path);
    }
}

KT_TEST(test_missing_file)
{
    struct ks_err err;
    char *problems = NULL;

    clear_env();
    setenv("KASIR_PG_DSN", "x", 1);
    KT_CHECK(ks_config_load(defs, NDEFS, "/nonexistent/kasir.conf", &problems, &err) == NULL);
    KT_CHECK(problems && strstr(problems, "could not open config file"));
    free(problems);
    /* no file at all is fine */
    struct ks_config *cfg = ks_config_load(defs, NDEFS, NULL, NULL, &err);
    KT_CHECK(cfg != NULL);
    ks_config_free(cfg);
    clear_env();
}

KT_TEST(test_env_beats_file)
{
    struct ks_err err;
    struct ks_config *cfg;
    const char *path;

    clear_env();
    path = write_conf("pg.dsn = from-file\nhttp.port = 8081\nrisk.enabled = yes\n");
    setenv("KASIR_HTTP_PORT", "9090", 1);
    setenv("KASIR_RISK_ENABLED", "off", 1);
    setenv("KASIR_POLL_TIMEOUT", "1m", 1);
    setenv("KASIR_LOG_LEVEL", "", 1); /* empty: unset, the default stays */
    cfg = ks_config_load(defs, NDEFS, path, NULL, &err);
    KT_CHECK(cfg != NULL);
    KT_STREQ(ks_config_str(cfg, "pg.dsn"), "from-file");
    KT_INTEQ(ks_config_int(cfg, "http.port"), 9090);
    KT_INTEQ(ks_config_bool(cfg, "risk.enabled"), 0);
    KT_INTEQ(ks_config_ms(cfg, "poll.timeout"), 60000);
    KT_STREQ(ks_config_str(cfg, "log.level"), "info");
    ks_config_free(cfg);

    /* an empty value in the file unsets an optional setting, default included */
    const char *path2 = write_conf("pg.dsn = x\nflush.every =\n");
    cfg = ks_config_load(defs, NDEFS, path2, NULL, &err);
    KT_CHECK(cfg != NULL);
    KT_INTEQ(ks_config_ms(cfg, "flush.every"), 0);
    KT_STREQ(ks_config_str(cfg, "flush.every"), "");
    ks_config_free(cfg);
    unlink(path2);

    /* a bad env value is named by its variable */
    char *problems = NULL;
    setenv("KASIR_HTTP_PORT", "eighty", 1);
    KT_CHECK(ks_config_load(defs, NDEFS, path, &problems, &err) == NULL);
    KT_CHECK_MSG(problems && strstr(problems, "(env KASIR_HTTP_PORT)"), "%s",
                 problems ? problems : "(null)");
    free(problems);
    clear_env();
    unlink(path);
}

struct props {
    char text[512];
    int n;
};

static void collect(const char *prop, const char *value, void *opaque)
{
    struct props *p = opaque;
    size_t len = strlen(p->text);
    snprintf(p->text + len, sizeof(p->text) - len, "%s=%s;", prop, value);
    p->n++;
}

KT_TEST(test_kafka_passthrough)
{
    struct ks_err err;
    struct ks_config *cfg;
    struct props p = {"", 0};
    const char *path;

    clear_env();
    path = write_conf("pg.dsn = x\n"
                      "kafka.brokers = b1:9092,b2:9092\n"
                      "kafka.socket.timeout.ms = 1000\n"
                      "kafka.client.id = kasir-test\n");
    setenv("KASIR_KAFKA_SOCKET_TIMEOUT_MS", "2000", 1);
    setenv("KASIR_KAFKA_SECURITY_PROTOCOL", "ssl", 1);
    cfg = ks_config_load(defs, NDEFS, path, NULL, &err);
    KT_CHECK(cfg != NULL);
    ks_config_kafka_props(cfg, collect, &p);
    KT_INTEQ(p.n, 3);
    KT_CHECK_MSG(strstr(p.text, "socket.timeout.ms=2000;") != NULL, "%s", p.text);
    KT_CHECK_MSG(strstr(p.text, "client.id=kasir-test;") != NULL, "%s", p.text);
    KT_CHECK_MSG(strstr(p.text, "security.protocol=ssl;") != NULL, "%s", p.text);
    /* kafka.brokers is a table setting, not a librdkafka property */
    KT_CHECK(strstr(p.text, "brokers") == NULL);
    KT_STREQ(ks_config_str(cfg, "kafka.brokers"), "b1:9092,b2:9092");
    ks_config_free(cfg);

    /* env beats file for table settings under kafka. too */
    setenv("KASIR_KAFKA_BROKERS", "env:9092", 1);
    cfg = ks_config_load(defs, NDEFS, path, NULL, &err);
    KT_STREQ(ks_config_str(cfg, "kafka.brokers"), "env:9092");
    ks_config_free(cfg);
    ks_config_kafka_props(NULL, collect, &p); /* harmless */
    clear_env();
    unlink(path);
}

KT_TEST(test_common_settings)
{
    struct ks_err err;
    struct ks_config *cfg;
    char *problems = NULL;
    int have_dsn = 0, have_port = 0;

    clear_env();
    KT_INTEQ(ks_common_settings_count, 5);
    for (size_t i = 0; i < ks_common_settings_count; i++) {
        KT_CHECK(ks_common_settings[i].description && *ks_common_settings[i].description);
        have_dsn |= strcmp(ks_common_settings[i].name, "pg.dsn") == 0;
        have_port |= strcmp(ks_common_settings[i].name, "http.port") == 0;
    }
    KT_CHECK(have_dsn && have_port);
    /* without pg.dsn and http.port a daemon must not start */
    KT_CHECK(ks_config_load(ks_common_settings, ks_common_settings_count, NULL, &problems,
                            &err) == NULL);
    KT_INTEQ(count_lines(problems), 2);
    free(problems);
    setenv("KASIR_PG_DSN", "dbname=kasir", 1);
    setenv("KASIR_HTTP_PORT", "7001", 1);
    cfg = ks_config_load(ks_common_settings, ks_common_settings_count, NULL, NULL, &err);
    KT_CHECK(cfg != NULL);
    KT_INTEQ(ks_config_int(cfg, "http.port"), 7001);
    KT_STREQ(ks_config_str(cfg, "log.level"), "info");
    KT_STREQ(ks_config_str(cfg, "instance.id"), "");
    ks_config_free(cfg);
    clear_env();
}

/* The path of main(): in a child whose stderr is a pipe, ks_config_load_main with three
 * bad settings must print three config.invalid JSON lines and the child exits 2. */
KT_TEST(test_load_main_exit_code_and_lines)
{
    int fds[2], status = 0, lines = 0, valid = 0;
    const char *path;
    char buf[8192], *save = NULL;
    size_t len = 0;
    ssize_t r;
    pid_t pid;

    clear_env();
    path = write_conf("no.such.setting = 1\nhttp.port = 80x\n");
    KT_CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct ks_config *cfg;
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        cfg = ks_config_load_main("testd", defs, NDEFS, path);
        if (!cfg)
            _exit(2);
        ks_config_free(cfg);
        _exit(0);
    }
    close(fds[1]);
    while (len < sizeof(buf) - 1 && (r = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status));
    KT_INTEQ(WEXITSTATUS(status), 2);
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        lines++;
        if (j && strcmp(json_string_value(json_object_get(j, "event")), "config.invalid") == 0 &&
            strcmp(json_string_value(json_object_get(j, "level")), "error") == 0 &&
            strcmp(json_string_value(json_object_get(j, "svc")), "testd") == 0 &&
            json_is_string(json_object_get(j, "setting")) &&
            json_is_string(json_object_get(j, "msg")))
            valid++;
        else
            fprintf(stderr, "unexpected line: %s\n", line);
        json_decref(j);
    }
    KT_INTEQ(lines, 3);
    KT_INTEQ(valid, 3);
    unlink(path);

    /* and a good configuration starts */
    path = write_conf("pg.dsn = x\nlog.level = warn\n");
    pid = fork();
    if (pid == 0) {
        struct ks_config *cfg = ks_config_load_main("testd", defs, NDEFS, path);
        int ok = cfg && ks_config_int(cfg, "http.port") == 8080;
        ks_config_free(cfg);
        _exit(ok ? 0 : 2);
    }
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink(path);
}

KT_TEST(test_markdown)
{
    static const struct ks_config_def md_defs[] = {
        {"pg.dsn", KS_CFG_STRING, NULL, 1, "database"},
        {"a.b", KS_CFG_DURATION_MS, "5s", 0, "pipe | in\ndescription"},
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ks_config_markdown(f, "Test", md_defs, 2);
    fclose(f);
    KT_CHECK(strncmp(text, "## Test\n\n| Name |", 17) == 0);
    KT_CHECK_MSG(strstr(text, "| `pg.dsn` | string |  | yes | `KASIR_PG_DSN` | database |\n"),
                 "%s", text);
    KT_CHECK_MSG(strstr(text, "| `a.b` | duration | `5s` | no | `KASIR_A_B` | pipe \\| in "
                              "description |\n"),
                 "%s", text);
    free(text);
}

KT_MAIN(test_defaults_and_types, test_three_problems_at_once, test_more_problems,
        test_missing_file, test_env_beats_file, test_kafka_passthrough, test_common_settings,
        test_load_main_exit_code_and_lines, test_markdown)
