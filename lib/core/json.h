/* json.h - small json-c helpers used everywhere.
 *
 * Parsing is strict and bounded (depth limit, one complete document, no
 * trailing bytes but whitespace, valid UTF-8). Getters return children that
 * are *borrowed* from their parent: valid until the parent is put, never
 * json_object_put by the caller. */
#ifndef GH_CORE_JSON_H
#define GH_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct gh_buf;

#define GH_JSON_DEFAULT_DEPTH 32

/* Parses len bytes at p (no NUL needed). max_depth is the deepest nesting
 * of objects and arrays allowed ("[[1]]" is 2); <= 0 picks
 * GH_JSON_DEFAULT_DEPTH. Returns GH_OK with *out set (caller frees with
 * json_object_put; a JSON null gives *out == NULL), or GH_EJSON with *out
 * NULL: empty, truncated, too deep, invalid UTF-8, or trailing garbage. */
int gh_json_parse(const char *p, size_t len, int max_depth, json_object **out);

/* Borrowed; NULL when obj is not an object, key is missing or of another type. */
const char *gh_json_get_str(const json_object *obj, const char *key);
json_object *gh_json_get_obj(const json_object *obj, const char *key);
json_object *gh_json_get_arr(const json_object *obj, const char *key);
/* GH_OK with *out set; GH_ENOTFOUND when missing (or null); GH_EINVAL when
 * not an integer (a double or a numeric string is not accepted). */
int gh_json_get_int(const json_object *obj, const char *key, int64_t *out);
/* Same for booleans; *out is 0 or 1. */
int gh_json_get_bool(const json_object *obj, const char *key, int *out);
/* A snowflake is a string of decimal digits; 0 when missing, not a string,
 * not all digits, or out of range. */
uint64_t gh_json_get_snowflake(const json_object *obj, const char *key);

/* Appends obj as compact JSON (no spaces, "/" not escaped) to buf; NULL
 * appends "null". GH_OK or GH_ETOOBIG/GH_ENOMEM with buf unchanged. */
int gh_json_to_buf(const json_object *obj, struct gh_buf *buf);

#endif
