/* timeutil.c - clocks and time formatting. */
#include "core/timeutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

/* Discord's epoch: the first second of 2015, in ms since the Unix epoch. */
#define DISCORD_EPOCH_MS 1420070400000LL

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gh_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t gh_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int gh_every(int64_t *last_ms, int64_t now_ms, int64_t every_ms)
{
    if (*last_ms != 0 && now_ms - *last_ms < every_ms)
        return 0;
    *last_ms = now_ms;
    return 1;
}

int64_t gh_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void gh_iso8601(int64_t epoch_ms, char *out, size_t size)
{
    struct tm tm;
    int64_t secs, ms;
    time_t t;
    int n;

    if (!out || size == 0)
        return;
    /* Floor division so that times before 1970 still get 0..999 ms. */
    secs = epoch_ms / 1000;
    ms = epoch_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (!gmtime_r(&t, &tm)) {
        out[0] = '\0';
        return;
    }
    n = snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    if (n < 0 || (size_t)n >= size)
        out[0] = '\0'; /* a cut timestamp would be misread: none at all */
}

int64_t gh_snowflake_ms(uint64_t snowflake)
{
    return (int64_t)(snowflake >> 22) + DISCORD_EPOCH_MS;
}

void gh_duration_text(int64_t seconds, int max_parts, const char *zero_text, char *out, size_t size)
{
    static const struct {
        int64_t secs;
        const char *unit;
    } units[] = {{(int64_t)7 * 86400, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
    size_t len = 0;
    int parts = 0;

    if (out == NULL || size == 0)
        return;
    out[0] = '\0';
    if (seconds <= 0) {
        (void)snprintf(out, size, "%s", zero_text ? zero_text : "");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && (max_parts <= 0 || parts < max_parts); i++) {
        int64_t n = seconds / units[i].secs;
        int w;
        if (n == 0)
            continue;
        seconds -= n * units[i].secs;
        w = snprintf(out + len, size - len, "%s%" PRId64 "%s", parts ? " " : "", n, units[i].unit);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
        parts++;
    }
}
