/* timeutil.h - clocks. */
#ifndef GH_CORE_TIMEUTIL_H
#define GH_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t gh_now_ms(void);  /* wall clock, ms since the epoch (CLOCK_REALTIME) */
int64_t gh_mono_ms(void); /* monotonic ms, for durations and timeouts */
int64_t gh_mono_us(void); /* monotonic microseconds, for latencies */
/* Rate limiter for log lines ("Redis down" once per burst): 1 when *last_ms is
 * 0 or at least every_ms before now_ms (then *last_ms = now_ms), else 0. */
int gh_every(int64_t *last_ms, int64_t now_ms, int64_t every_ms);
/* ISO 8601 UTC with milliseconds: 2026-11-25T11:02:07.123Z; out >= 25 bytes. */
void gh_iso8601(int64_t epoch_ms, char *out, size_t size);
/* A duration in seconds for people: "1w 2d", "3h 30m", "45s" (units w d h m
 * s, the largest first, at most max_parts of them; 0 = all). zero_text when
 * seconds <= 0. Output cut to size. */
void gh_duration_text(int64_t seconds, int max_parts, const char *zero_text, char *out, size_t size);
/* Milliseconds since the epoch from a Discord snowflake. */
int64_t gh_snowflake_ms(uint64_t snowflake);

#endif
