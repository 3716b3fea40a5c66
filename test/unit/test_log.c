/* test_log.c - JSON lines, fields, redaction, truncation, rotation, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"

static char tmpdir[256];
static char logpath[300];

static int setup(void **state)
{
    (void)state;
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    snprintf(tmpdir, sizeof tmpdir, "build/tmp/test_log.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(logpath, sizeof logpath, "%s/test.log", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[600];

    (void)state;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* Each test starts with no log files. */
static int clean(void **state)
{
    char p[400];
    int i;

    (void)state;
    unlink(logpath);
    for (i = 1; i <= 9; i++) {
        snprintf(p, sizeof p, "%s.%d", logpath, i);
        unlink(p);
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* Parses line number idx (0-based) of the log file; fails the test when it
 * is not one JSON object. Caller puts. */
static json_object *read_line(int idx)
{
    char *text = slurp(logpath, NULL), *line, *nl;
    json_object *o;
    int i;

    assert_non_null(text);
    line = text;
    for (i = 0; i < idx; i++) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        line = nl + 1;
    }
    nl = strchr(line, '\n');
    assert_non_null(nl); /* every line ends with a newline */
    *nl = '\0';
    o = json_tokener_parse(line);
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_object));
    free(text);
    return o;
}

static int count_lines(const char *path)
{
    char *text = slurp(path, NULL), *p;
    int n = 0;

    if (!text)
        return -1;
    for (p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

static const char *field(json_object *o, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static void line_has_all_fields(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    json_object *o, *v;
    const char *t;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "interactions", GH_LOG_DEBUG, logpath, 0, 0), GH_OK);
    gh_logger_init(&lg, &sink, "router");
    gh_logger_new_corr(&lg);
    lg.guild_id = 123456789012345678ULL;
    lg.user_id = 42;
    gh_log(&lg, GH_LOG_WARN, EACCES, "cannot open %s \"quoted\"\n", "x.txt");
    o = read_line(0);
    t = field(o, "time");
    assert_non_null(t);
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    assert_string_equal(field(o, "level"), "warn");
    assert_string_equal(field(o, "service"), "interactions");
    assert_string_equal(field(o, "component"), "router");
    assert_string_equal(field(o, "corr"), lg.corr);
    assert_string_equal(field(o, "guild"), "123456789012345678");
    assert_string_equal(field(o, "user"), "42");
    assert_string_equal(field(o, "msg"), "cannot open x.txt \"quoted\"\n");
    assert_true(json_object_object_get_ex(o, "errno", &v));
    assert_int_equal(json_object_get_int(v), EACCES);
    assert_string_equal(field(o, "err"), strerror(EACCES));
    json_object_put(o);

    /* guild, user, errno omitted when 0; a GH_E code gets its message */
    lg.guild_id = 0;
    lg.user_id = 0;
    gh_log(&lg, GH_LOG_INFO, 0, "plain");
    gh_log(&lg, GH_LOG_ERROR, GH_EPG, "db");
    o = read_line(1);
    assert_null(field(o, "guild"));
    assert_null(field(o, "user"));
    assert_null(field(o, "errno"));
    assert_null(field(o, "err"));
    assert_string_equal(field(o, "level"), "info");
    json_object_put(o);
    o = read_line(2);
    assert_string_equal(field(o, "err"), "PostgreSQL error");
    json_object_put(o);
    gh_log_sink_cleanup(&sink);
}

static void level_filter_and_parse(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    enum gh_log_level l = GH_LOG_DEBUG;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "worker", GH_LOG_INFO, logpath, 0, 0), GH_OK);
    gh_logger_init(&lg, &sink, "jobs");
    GH_DEBUG(&lg, "hidden");
    GH_INFO(&lg, "shown");
    GH_CRIT(&lg, "shown too");
    assert_int_equal(count_lines(logpath), 2);
    gh_log_sink_cleanup(&sink);

    assert_int_equal(gh_log_level_parse("WARN", &l), GH_OK);
    assert_int_equal(l, GH_LOG_WARN);
    assert_int_equal(gh_log_level_parse("crit", &l), GH_OK);
    assert_int_equal(l, GH_LOG_CRIT);
    assert_int_equal(gh_log_level_parse("verbose", &l), GH_EINVAL);
    assert_int_equal(gh_log_level_parse("inf", &l), GH_EINVAL);
    assert_int_equal(gh_log_level_parse(NULL, &l), GH_EINVAL);
}

static void extra_fields(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    json_object *o, *v, *n;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "api", GH_LOG_DEBUG, logpath, 0, 0), GH_OK);
    gh_log_sink_add_secret(&sink, "s3cr3t-value");
    gh_logger_init(&lg, &sink, "http");
    gh_log_fields(&lg, GH_LOG_INFO, 0,
                  "{\"route\":\"/x\",\"status\":429,\"ok\":false,\"msg\":\"clash\","
                  "\"access_token\":\"abc\",\"nested\":{\"note\":\"has s3cr3t-value in it\","
                  "\"list\":[1,\"Bearer 9f8e7d6c5b4a\"]}}",
                  "request %d", 1);
    o = read_line(0);
    assert_string_equal(field(o, "msg"), "request 1");
    assert_string_equal(field(o, "route"), "/x");
    assert_true(json_object_object_get_ex(o, "status", &v));
    assert_int_equal(json_object_get_int(v), 429);
    assert_true(json_object_object_get_ex(o, "ok", &v));
    assert_true(json_object_is_type(v, json_type_boolean));
    assert_string_equal(field(o, "x_msg"), "clash"); /* does not override msg */
    assert_string_equal(field(o, "access_token"), "[redacted]");
    assert_true(json_object_object_get_ex(o, "nested", &n));
    assert_string_equal(field(n, "note"), "has [redacted] in it");
    assert_true(json_object_object_get_ex(n, "list", &v));
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 1)), "Bearer [redacted]");
    json_object_put(o);

    /* not an object: kept as text under "extra" */
    gh_log_fields(&lg, GH_LOG_INFO, 0, "[1,2", "bad extra");
    o = read_line(1);
    assert_string_equal(field(o, "extra"), "[1,2");
    json_object_put(o);
    gh_log_fields(&lg, GH_LOG_INFO, 0, "\"str\"", "string extra");
    o = read_line(2);
    assert_string_equal(field(o, "extra"), "\"str\"");
    json_object_put(o);
    gh_log_fields(&lg, GH_LOG_INFO, 0, NULL, "no extra");
    o = read_line(3);
    assert_null(field(o, "extra"));
    json_object_put(o);
    gh_log_sink_cleanup(&sink);
}

static void redact_expect(const struct gh_log_sink *s, const char *in, const char *want)
{
    char out[512];

    gh_log_redact(s, in, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("redact(%s)\n  got  %s\n  want %s", in, out, want);
}

static void redaction_patterns(void **state)
{
    struct gh_log_sink sink;
    char small[8];

    (void)state;
    gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, NULL, 0, 0);
    gh_log_sink_add_secret(&sink, "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs");
    gh_log_sink_add_secret(&sink, "hunter22");
    gh_log_sink_add_secret(&sink, "short"); /* ignored: < 6 bytes */
    gh_log_sink_add_secret(&sink, NULL);
    assert_int_equal(sink.n_secrets, 2);

    redact_expect(&sink, "nothing to hide here", "nothing to hide here");
    redact_expect(&sink, "", "");
    /* registered secrets, anywhere */
    redact_expect(&sink, "tok=xMTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWsx end",
                  "tok=x[redacted]x end");
    redact_expect(&sink, "pw hunter22hunter22!", "pw [redacted][redacted]!");
    redact_expect(&sink, "short stays", "short stays");
    /* key-like words */
    redact_expect(&sink, "token=abc123 next", "token=[redacted] next");
    redact_expect(&sink, "Password: opensesame, user=bob", "Password: [redacted], user=bob");
    redact_expect(&sink, "passwd='x y' z", "passwd='[redacted]' z");
    redact_expect(&sink, "{\"password\": \"two words\", \"n\": 1}",
                  "{\"password\": \"[redacted]\", \"n\": 1}");
    redact_expect(&sink, "token=\"unclosed rest", "token=\"[redacted]");
    redact_expect(&sink, "{\"client_secret\":\"abc\",\"n\":1}", "{\"client_secret\":\"[redacted]\",\"n\":1}");
    redact_expect(&sink, "a?api_key=k1&apikey=k2&x=1", "a?api_key=[redacted]&apikey=[redacted]&x=1");
    redact_expect(&sink, "KEY = \"v\"}", "KEY = \"[redacted]\"}");
    redact_expect(&sink, "secret:  spaced", "secret:  [redacted]");
    redact_expect(&sink, "{\\\"token\\\":\\\"esc\\\"}", "{\\\"token\\\":\\\"[redacted]\\\"}");
    redact_expect(&sink, "tokens=5 monkey=1 keys are fine", "tokens=5 monkey=1 keys are fine");
    redact_expect(&sink, "token= ", "token= ");
    /* Authorization headers */
    redact_expect(&sink, "Authorization: Bot abc.def.ghi", "Authorization: Bot [redacted]");
    redact_expect(&sink, "authorization=Bearer zz", "authorization=Bearer [redacted]");
    redact_expect(&sink, "sent Bot NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I ok",
                  "sent Bot [redacted] ok");
    redact_expect(&sink, "header Bearer 6qrZcUqja7812RVdnEKjpzOL4CvHBFG, next",
                  "header Bearer [redacted], next");
    redact_expect(&sink, "Bot started in 3 shards", "Bot started in 3 shards");
    /* URL passwords */
    redact_expect(&sink, "postgresql://guildhall:pa55word@127.0.0.1:18082/guildhall",
                  "postgresql://guildhall:[redacted]@127.0.0.1:18082/guildhall");
    redact_expect(&sink, "connect redis://:rpw@127.0.0.1:18083/0 failed",
                  "connect redis://:[redacted]@127.0.0.1:18083/0 failed");
    redact_expect(&sink, "https://user@host/a:b@c and http://h:80/x",
                  "https://user@host/a:b@c and http://h:80/x");
    /* output is capped and terminated */
    gh_log_redact(&sink, "token=abcdefgh", small, sizeof small);
    assert_string_equal(small, "token=[");
    gh_log_sink_cleanup(&sink);
}

static void secrets_never_reach_the_file(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    char *text;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 0, 0), GH_OK);
    gh_log_sink_add_secret(&sink, "topsecretvalue");
    gh_logger_init(&lg, &sink, "c");
    gh_log(&lg, GH_LOG_ERROR, 0, "db postgresql://u:dbpass99@h/db token=%s and %s", "tk123",
           "topsecretvalue");
    gh_log_fields(&lg, GH_LOG_INFO, 0, "{\"password\":12345,\"u\":\"topsecretvalue\"}", "x");
    gh_log_fields(&lg, GH_LOG_INFO, 0, "not json topsecretvalue", "y");
    text = slurp(logpath, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "dbpass99"));
    assert_null(strstr(text, "tk123"));
    assert_null(strstr(text, "topsecretvalue"));
    assert_null(strstr(text, "12345"));
    assert_non_null(strstr(text, "[redacted]"));
    free(text);
    gh_log_sink_cleanup(&sink);
}

static void long_messages_are_truncated(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    static char big[20000];
    const char *msg;
    json_object *o;
    size_t n;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 0, 0), GH_OK);
    gh_log_sink_add_secret(&sink, "SECRETSECRETSECRET");
    gh_logger_init(&lg, &sink, "c");
    /* the secret straddles the 8 KB cut: no prefix of it may survive */
    memset(big, 'a', sizeof big - 1);
    memcpy(big + 8190, "SECRETSECRETSECRET", 18);
    gh_log(&lg, GH_LOG_INFO, 0, "%s", big);
    o = read_line(0);
    msg = field(o, "msg");
    n = strlen(msg);
    assert_true(n <= 8192 + strlen("\xe2\x80\xa6[truncated]"));
    assert_true(n > 8000);
    assert_string_equal(msg + n - strlen("\xe2\x80\xa6[truncated]"), "\xe2\x80\xa6[truncated]");
    assert_null(strstr(msg, "SECRET"));
    json_object_put(o);

    /* multibyte characters are not split at the cut */
    for (n = 0; n + 2 < sizeof big; n += 2) {
        big[n] = '\xc3';
        big[n + 1] = '\xa9';
    }
    big[n] = '\0';
    gh_log(&lg, GH_LOG_INFO, 0, "x%s", big); /* odd offset */
    o = read_line(1);
    msg = field(o, "msg");
    assert_non_null(strstr(msg, "\xc3\xa9\xe2\x80\xa6[truncated]"));
    json_object_put(o);
    gh_log_sink_cleanup(&sink);
}

static void rotation(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    struct stat st;
    char p1[400], p2[400], p3[400];
    int i, total = 0;

    (void)state;
    snprintf(p1, sizeof p1, "%s.1", logpath);
    snprintf(p2, sizeof p2, "%s.2", logpath);
    snprintf(p3, sizeof p3, "%s.3", logpath);
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 4096, 2), GH_OK);
    gh_logger_init(&lg, &sink, "rot");
    for (i = 0; i < 1000 && stat(p2, &st) != 0; i++)
        gh_log(&lg, GH_LOG_INFO, 0, "line %d of the rotation test, padded to a decent length", i);
    assert_true(i < 1000);
    /* and a full third file's worth, so that the oldest is dropped */
    for (int k = 0; k < 60; k++, i++)
        gh_log(&lg, GH_LOG_INFO, 0, "line %d of the rotation test, padded to a decent length", i);
    assert_int_equal(stat(logpath, &st), 0);
    assert_true((size_t)st.st_size <= 4096);
    assert_int_equal(stat(p1, &st), 0);
    assert_true((size_t)st.st_size <= 4096 && st.st_size > 3000);
    assert_int_equal(stat(p2, &st), 0);
    assert_true((size_t)st.st_size <= 4096 && st.st_size > 3000);
    assert_int_not_equal(stat(p3, &st), 0); /* max_files = 2 */
    total = count_lines(logpath) + count_lines(p1) + count_lines(p2);
    assert_true(total < i); /* the oldest lines were dropped */
    /* the newest line is the last line of path */
    {
        char *text = slurp(logpath, NULL);
        char want[64];

        snprintf(want, sizeof want, "line %d of", i - 1);
        assert_non_null(strstr(text, want));
        free(text);
    }
    gh_log_sink_cleanup(&sink);
}

/* Prefork children share the sink's descriptor: rotation must still happen
 * once per full file, and no line may be lost, split or duplicated. */
static void rotation_with_forked_writers(void **state)
{
    struct gh_log_sink sink;
    char p[400], *text, *line, *save = NULL;
    static unsigned char seen[3][400];
    int k, i, files = 0, lines = 0;
    struct stat st;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 32768, 9), GH_OK);
    for (k = 0; k < 3; k++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            struct gh_logger lg;

            gh_logger_init(&lg, &sink, "child");
            for (i = 0; i < 400; i++)
                gh_log(&lg, GH_LOG_INFO, 0, "w%d n%d padding to make the line longer", k, i);
            _exit(0);
        }
    }
    for (k = 0; k < 3; k++)
        wait(NULL);
    gh_log_sink_cleanup(&sink);
    memset(seen, 0, sizeof seen);
    for (i = 0; i <= 9; i++) {
        if (i)
            snprintf(p, sizeof p, "%s.%d", logpath, i);
        else
            snprintf(p, sizeof p, "%s", logpath);
        if (stat(p, &st) != 0)
            continue;
        files++;
        assert_true(st.st_size <= 32768 + 3 * 200); /* at most a line per writer past max */
        if (i)
            assert_true(st.st_size > 32768 / 2); /* no near-empty rotated files */
        text = slurp(p, NULL);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_object *o = json_tokener_parse(line);
            int w = -1, n = -1;

            assert_non_null(o);
            assert_int_equal(sscanf(field(o, "msg"), "w%d n%d", &w, &n), 2);
            assert_true(w >= 0 && w < 3 && n >= 0 && n < 400);
            assert_int_equal(seen[w][n], 0);
            seen[w][n] = 1;
            lines++;
            json_object_put(o);
        }
        free(text);
    }
    assert_int_equal(lines, 1200); /* 10 files of 32 KB hold them all */
    assert_true(files >= 5);
}

static void sink_learns_existing_size(void **state)
{
    struct gh_log_sink sink;
    FILE *f = fopen(logpath, "w");

    (void)state;
    assert_non_null(f);
    fputs("previous content\n", f);
    fclose(f);
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 1000, 3), GH_OK);
    assert_int_equal(sink.written, strlen("previous content\n"));
    assert_int_not_equal(sink.fd, 2);
    gh_log_sink_cleanup(&sink);
    assert_int_equal(sink.fd, 2);

    /* an unopenable path: error, and the sink still logs (to stderr) */
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, "/nonexistent-dir/x.log", 0, 0), GH_EIO);
    assert_int_equal(sink.fd, 2);
    gh_log_sink_cleanup(&sink);
}

static void corr_ids(void **state)
{
    struct gh_logger a, b;
    size_t i;

    (void)state;
    gh_logger_init(&a, NULL, "x");
    gh_logger_init(&b, NULL, "x");
    assert_string_equal(a.corr, "");
    gh_logger_new_corr(&a);
    gh_logger_new_corr(&b);
    assert_int_equal(strlen(a.corr), 16);
    for (i = 0; i < 16; i++)
        assert_non_null(strchr("0123456789abcdef", a.corr[i]));
    assert_string_not_equal(a.corr, b.corr);
}

/* Ids stay distinct over many calls, and a forked child does not repeat its
 * parent's sequence (it reseeds). */
static void corr_ids_unique_and_fork(void **state)
{
    enum { N = 2000 };
    static char seen[N][40];
    struct gh_logger a;
    char parent_next[40], child_next[40] = "";
    int fds[2], i, j, st;
    pid_t pid;

    (void)state;
    gh_logger_init(&a, NULL, "x");
    for (i = 0; i < N; i++) {
        gh_logger_new_corr(&a);
        assert_int_equal(strlen(a.corr), 16);
        memcpy(seen[i], a.corr, sizeof(seen[i]));
    }
    for (i = 0; i < N; i++)
        for (j = i + 1; j < N; j++)
            assert_string_not_equal(seen[i], seen[j]);

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gh_logger_new_corr(&a);
        (void)!write(fds[1], a.corr, 17);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child_next, 17), 17);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    gh_logger_new_corr(&a);
    memcpy(parent_next, a.corr, sizeof(parent_next));
    assert_int_equal(strlen(child_next), 16);
    assert_string_not_equal(child_next, parent_next);
    for (i = 0; i < N; i++)
        assert_string_not_equal(child_next, seen[i]);
}

static void clocks(void **state)
{
    char ts[32];
    int64_t m1, m2;

    (void)state;
    gh_iso8601(0, ts, sizeof ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    gh_iso8601(1700000000123LL, ts, sizeof ts);
    assert_string_equal(ts, "2023-11-14T22:13:20.123Z");
    gh_iso8601(-1, ts, sizeof ts);
    assert_string_equal(ts, "1969-12-31T23:59:59.999Z");
    gh_iso8601(0, ts, 10); /* too small: empty, not cut */
    assert_string_equal(ts, "");
    /* Discord's documented example */
    assert_true(gh_snowflake_ms(175928847299117063ULL) == 1462015105796LL);
    assert_true(gh_now_ms() > 1600000000000LL);
    m1 = gh_mono_ms();
    m2 = gh_mono_ms();
    assert_true(m2 >= m1);
}

static void sink_open_failures_fall_back_to_stderr(void **state)
{
    struct gh_log_sink sink;
    char longpath[700], missing[400];

    (void)state;
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_INFO, longpath, 0, 0), GH_EIO);
    assert_int_equal(sink.fd, 2);
    assert_string_equal(sink.path, "");
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.log", tmpdir);
    assert_int_equal(gh_log_sink_init(&sink, NULL, GH_LOG_INFO, missing, 0, -3), GH_EIO);
    assert_int_equal(sink.fd, 2);
    assert_string_equal(sink.service, "guildhall");
    assert_int_equal(sink.max_files, 0);
    gh_log_sink_cleanup(&sink);
    gh_log_sink_cleanup(NULL);
    assert_int_equal(gh_log_level_parse(NULL, NULL), GH_EINVAL);
    assert_int_equal(gh_log_level_parse("CRIT", NULL), GH_OK);
    assert_int_equal(gh_log_level_parse("war", NULL), GH_EINVAL);
}

/* At most GH_LOG_MAX_SECRETS are kept; duplicates and short values do not
 * take a slot. */
static void secret_slots_are_capped(void **state)
{
    static char values[GH_LOG_MAX_SECRETS + 1][24];
    struct gh_log_sink sink;
    struct gh_logger lg;
    char *text;
    int i;

    (void)state;
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 0, 0), GH_OK);
    gh_log_sink_add_secret(&sink, NULL);
    gh_log_sink_add_secret(&sink, "short");
    gh_log_sink_add_secret(NULL, "longenough");
    assert_int_equal(sink.n_secrets, 0);
    for (i = 0; i <= GH_LOG_MAX_SECRETS; i++) {
        snprintf(values[i], sizeof values[i], "secretvalue%02d", i);
        gh_log_sink_add_secret(&sink, values[i]);
        gh_log_sink_add_secret(&sink, values[i]); /* twice: one slot */
    }
    assert_int_equal(sink.n_secrets, GH_LOG_MAX_SECRETS);
    gh_logger_init(&lg, &sink, "c");
    gh_log(&lg, GH_LOG_INFO, 0, "first %s last %s", values[0], values[GH_LOG_MAX_SECRETS]);
    text = slurp(logpath, NULL);
    assert_non_null(text);
    assert_null(strstr(text, values[0]));
    assert_non_null(strstr(text, values[GH_LOG_MAX_SECRETS])); /* no slot left for it */
    free(text);
    gh_log_sink_cleanup(&sink);
}

/* With no old files to keep, a full file is simply started again. */
static void rotation_without_old_files(void **state)
{
    struct gh_log_sink sink;
    struct gh_logger lg;
    struct stat st;
    char p1[400];
    int i;

    (void)state;
    snprintf(p1, sizeof p1, "%s.1", logpath);
    assert_int_equal(gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, logpath, 2048, 0), GH_OK);
    gh_logger_init(&lg, &sink, "rot0");
    for (i = 0; i < 200; i++)
        gh_log(&lg, GH_LOG_INFO, 0, "line %d of the no-keep rotation test, padded to a decent length", i);
    assert_int_equal(stat(logpath, &st), 0);
    assert_true((size_t)st.st_size <= 2048);
    assert_int_not_equal(stat(p1, &st), 0);
    {
        char *text = slurp(logpath, NULL);

        assert_null(strstr(text, "line 0 of"));
        assert_non_null(strstr(text, "line 199 of"));
        free(text);
    }
    gh_log_sink_cleanup(&sink);
}

static void iso8601_edges(void **state)
{
    char out[40];

    (void)state;
    gh_iso8601(-1, out, sizeof out); /* before 1970: still 0..999 ms */
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    gh_iso8601(0, out, 10); /* would be cut: nothing instead */
    assert_string_equal(out, "");
    strcpy(out, "keep");
    gh_iso8601(0, out, 0);
    assert_string_equal(out, "keep");
    gh_iso8601(0, NULL, 10);
}

static void redaction_edges(void **state)
{
    struct gh_log_sink sink;

    (void)state;
    gh_log_sink_init(&sink, "t", GH_LOG_DEBUG, NULL, 0, 0);
    /* URL user info: only a non-empty password before '@' is one. */
    redact_expect(&sink, "http://u:@h/x", "http://u:@h/x");
    redact_expect(&sink, "http://user:pw#x@h", "http://user:pw#x@h");
    redact_expect(&sink, "http://user:p w@h", "http://user:p w@h");
    redact_expect(&sink, "ends with x://", "ends with x://");
    redact_expect(&sink, "http://a:b:c@h/", "http://a:[redacted]@h/");
    /* Schemes after the header name in any case; tokens by shape. */
    redact_expect(&sink, "authorization: bot abc123 x", "authorization: bot [redacted] x");
    redact_expect(&sink, "AUTHORIZATION=bearer Zz9.q rest", "AUTHORIZATION=bearer [redacted] rest");
    redact_expect(&sink, "Bot abcdefghij.k more", "Bot [redacted] more");
    redact_expect(&sink, "Bot abcdefghijklmnopqrstuvwxyz", "Bot [redacted]");
    redact_expect(&sink, "Bearer ", "Bearer ");
    redact_expect(&sink, "a Bot", "a Bot");
    /* Keywords: escaped quotes, tabs, lists, nothing after the separator. */
    redact_expect(&sink, "key:\\\"v\\\" x", "key:\\\"[redacted]\\\" x");
    redact_expect(&sink, "password\t=\tpw1 z", "password\t=\t[redacted] z");
    redact_expect(&sink, "apikey = x,y", "apikey = [redacted],y");
    redact_expect(&sink, "secret", "secret");
    redact_expect(&sink, "token:", "token:");
    redact_expect(&sink, "key=\"\"", "key=\"\"");
    gh_log_sink_cleanup(&sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(line_has_all_fields, clean),
        cmocka_unit_test_setup(level_filter_and_parse, clean),
        cmocka_unit_test_setup(extra_fields, clean),
        cmocka_unit_test(redaction_patterns),
        cmocka_unit_test_setup(secrets_never_reach_the_file, clean),
        cmocka_unit_test_setup(long_messages_are_truncated, clean),
        cmocka_unit_test_setup(rotation, clean),
        cmocka_unit_test_setup(rotation_with_forked_writers, clean),
        cmocka_unit_test_setup(sink_learns_existing_size, clean),
        cmocka_unit_test(corr_ids),
        cmocka_unit_test(corr_ids_unique_and_fork),
        cmocka_unit_test(clocks),
        cmocka_unit_test(iso8601_edges),
        cmocka_unit_test(redaction_edges),
        cmocka_unit_test_setup(sink_open_failures_fall_back_to_stderr, clean),
        cmocka_unit_test_setup(secret_slots_are_capped, clean),
        cmocka_unit_test_setup(rotation_without_old_files, clean),
    };

    return cmocka_run_group_tests_name("log", tests, setup, teardown);
}
