/* json.c - strict json-c parsing and borrowed getters. */
#include "core/json.h"

#include <string.h>

#include "core/err.h"
#include "core/str.h"

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int gh_json_parse(const char *p, size_t len, int max_depth, json_object **out)
{
    struct json_tokener *tok = NULL;
    json_object *obj = NULL;
    enum json_tokener_error jerr;
    size_t end;
    int rc = GH_EJSON;

    *out = NULL;
    if (!p || len == 0 || len > (size_t)INT32_MAX)
        goto out;
    /* json-c counts the top value as a level: depth d allows d - 1 nested
     * containers. Ours counts containers: "[[1]]" has depth 2. */
    tok = json_tokener_new_ex((max_depth > 0 ? max_depth : GH_JSON_DEFAULT_DEPTH) + 1);
    if (!tok) {
        rc = GH_ENOMEM;
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, p, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number or literal is only complete once the tokener
         * sees the end: feed it the terminating NUL. Truncated documents
         * fail here with "unexpected end of data". */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    }
    if (jerr != json_tokener_success)
        goto out;
    while (end < len && is_json_space(p[end]))
        end++;
    if (end != len)
        goto out; /* trailing garbage, or an embedded NUL */
    *out = obj;
    obj = NULL;
    rc = GH_OK;
out:
    json_object_put(obj);
    if (tok)
        json_tokener_free(tok);
    return rc;
}

static json_object *get_typed(const json_object *obj, const char *key, enum json_type type)
{
    json_object *v = NULL;

    if (!obj || !key || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return json_object_is_type(v, type) ? v : NULL;
}

const char *gh_json_get_str(const json_object *obj, const char *key)
{
    json_object *v = get_typed(obj, key, json_type_string);

    return v ? json_object_get_string(v) : NULL;
}

json_object *gh_json_get_obj(const json_object *obj, const char *key)
{
    return get_typed(obj, key, json_type_object);
}

json_object *gh_json_get_arr(const json_object *obj, const char *key)
{
    return get_typed(obj, key, json_type_array);
}

/* GH_OK and *v (possibly of another type), or GH_ENOTFOUND. */
static int get_present(const json_object *obj, const char *key, json_object **v)
{
    *v = NULL;
    if (!obj || !key || !json_object_is_type(obj, json_type_object))
        return GH_ENOTFOUND;
    if (!json_object_object_get_ex(obj, key, v) || !*v)
        return GH_ENOTFOUND; /* missing, or JSON null */
    return GH_OK;
}

int gh_json_get_int(const json_object *obj, const char *key, int64_t *out)
{
    json_object *v;
    int rc = get_present(obj, key, &v);

    if (rc != GH_OK)
        return rc;
    if (!json_object_is_type(v, json_type_int))
        return GH_EINVAL;
    if (out)
        *out = json_object_get_int64(v);
    return GH_OK;
}

int gh_json_get_bool(const json_object *obj, const char *key, int *out)
{
    json_object *v;
    int rc = get_present(obj, key, &v);

    if (rc != GH_OK)
        return rc;
    if (!json_object_is_type(v, json_type_boolean))
        return GH_EINVAL;
    if (out)
        *out = json_object_get_boolean(v) ? 1 : 0;
    return GH_OK;
}

uint64_t gh_json_get_snowflake(const json_object *obj, const char *key)
{
    json_object *v = get_typed(obj, key, json_type_string);
    uint64_t id = 0;

    if (!v)
        return 0;
    if (gh_str_to_u64((struct gh_str){json_object_get_string(v), (size_t)json_object_get_string_len(v)},
                      &id) != GH_OK)
        return 0;
    return id;
}

int gh_json_to_buf(const json_object *obj, struct gh_buf *buf)
{
    size_t len = 0;
    const char *s;

    /* json-c caches the text in the object, hence the cast: the value itself
     * is not changed. */
    s = json_object_to_json_string_length((json_object *)obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!s)
        return GH_ENOMEM;
    return gh_buf_append(buf, s, len);
}
