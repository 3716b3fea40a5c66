/* respond.c - interaction responses and message bodies (json-c).
 *
 * Every message carries allowed_mentions {"parse":[]}: nothing a user typed
 * can ping anyone. Content is capped at Discord's 2000 characters (code
 * points), cut on a UTF-8 boundary and ended with an ellipsis. Builders
 * replace the content of the output buffer with the JSON body; on failure
 * the buffer is left empty. */
#include "discord/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/str.h"

#define CONTENT_MAX_CHARS 2000
#define MODAL_TITLE_MAX_CHARS 45
#define CUSTOM_ID_MAX_CHARS 100
#define MODAL_MAX_COMPONENTS 5
#define AUTOCOMPLETE_MAX_CHOICES 25
#define ELLIPSIS "\xe2\x80\xa6"    /* U+2026 */
#define ZWSP "\xe2\x80\x8b"        /* U+200B */
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid
 * (bad lead byte, missing continuation, overlong, surrogate, > U+10FFFF). */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

/* Counts code points (an invalid byte counts as one). */
static size_t utf8_chars(const char *s, size_t *byte_at, size_t limit)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;
    size_t i = 0;

    while (p[i] != '\0') {
        size_t n = utf8_seq_len(p + i);
        if (chars == limit && byte_at != NULL)
            *byte_at = i;
        i += n ? n : 1;
        chars++;
    }
    if (chars <= limit && byte_at != NULL)
        *byte_at = i;
    return chars;
}

/* A new json string of s, capped at max_chars code points with "…". */
static json_object *capped_string(const char *s, size_t max_chars)
{
    size_t keep = 0;
    json_object *js;
    char *tmp;

    if (utf8_chars(s, NULL, max_chars) <= max_chars)
        return json_object_new_string(s);
    utf8_chars(s, &keep, max_chars - 1); /* byte offset where char max_chars-1 starts */
    tmp = malloc(keep + sizeof(ELLIPSIS));
    if (tmp == NULL)
        return NULL;
    memcpy(tmp, s, keep);
    memcpy(tmp + keep, ELLIPSIS, sizeof(ELLIPSIS));
    js = json_object_new_string(tmp);
    free(tmp);
    return js;
}

/* obj[key] = val, taking ownership of val even on failure. */
static int put(json_object *obj, const char *key, json_object *val)
{
    if (val == NULL)
        return GH_ENOMEM;
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        return GH_ENOMEM;
    }
    return GH_OK;
}

static json_object *no_mentions(void)
{
    json_object *am = json_object_new_object();

    if (am == NULL)
        return NULL;
    if (put(am, "parse", json_object_new_array()) != GH_OK) {
        json_object_put(am);
        return NULL;
    }
    return am;
}

/* Serializes obj into out (replacing its content). Does not release obj. */
static int emit(struct gh_buf *out, json_object *obj)
{
    const char *text;
    size_t len = 0;

    if (out == NULL || obj == NULL)
        return GH_EINVAL;
    text =
        json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text == NULL)
        return GH_ENOMEM;
    gh_buf_reset(out);
    return gh_buf_append(out, text, len);
}

/* {"type":type,"data":data}; takes ownership of data (may be NULL: no data). */
static int emit_callback(struct gh_buf *out, int type, json_object *data)
{
    json_object *root = json_object_new_object();
    int rc = GH_ENOMEM;

    if (root == NULL) {
        json_object_put(data);
        goto out;
    }
    rc = put(root, "type", json_object_new_int(type));
    if (rc != GH_OK) {
        json_object_put(data);
        goto out;
    }
    if (data != NULL) {
        rc = put(root, "data", data);
        if (rc != GH_OK)
            goto out;
    }
    rc = emit(out, root);
out:
    json_object_put(root);
    return rc;
}

json_object *gh_msg_new(const char *content, json_object *embeds, json_object *components, int flags)
{
    json_object *msg = json_object_new_object();

    if (msg == NULL)
        return NULL;
    if (content != NULL && put(msg, "content", capped_string(content, CONTENT_MAX_CHARS)) != GH_OK)
        goto fail;
    if (embeds != NULL && put(msg, "embeds", json_object_get(embeds)) != GH_OK)
        goto fail;
    if (components != NULL && put(msg, "components", json_object_get(components)) != GH_OK)
        goto fail;
    if (flags != 0 && put(msg, "flags", json_object_new_int(flags)) != GH_OK)
        goto fail;
    if (put(msg, "allowed_mentions", no_mentions()) != GH_OK)
        goto fail;
    return msg;
fail:
    json_object_put(msg);
    return NULL;
}

int gh_resp_pong(struct gh_buf *out)
{
    return emit_callback(out, GH_CB_PONG, NULL);
}

int gh_resp_message(struct gh_buf *out, const char *content, int ephemeral)
{
    json_object *msg =
        gh_msg_new(content != NULL ? content : "", NULL, NULL, ephemeral ? GH_MSG_EPHEMERAL : 0);

    if (msg == NULL)
        return GH_ENOMEM;
    return emit_callback(out, GH_CB_MESSAGE, msg);
}

int gh_resp_with_message(struct gh_buf *out, int type, json_object *msg)
{
    json_object *data = NULL;
    int rc = GH_EINVAL;

    if ((type != GH_CB_MESSAGE && type != GH_CB_UPDATE_MESSAGE) || msg == NULL ||
        !json_object_is_type(msg, json_type_object))
        return GH_EINVAL;
    /* A shallow copy: the caller's object stays untouched. */
    data = json_object_new_object();
    if (data == NULL)
        return GH_ENOMEM;
    json_object_object_foreach(msg, key, val)
    {
        json_object *v;

        if (strcmp(key, "content") == 0 && val != NULL && json_object_is_type(val, json_type_string))
            v = capped_string(json_object_get_string(val), CONTENT_MAX_CHARS);
        else
            v = json_object_get(val);
        if (val != NULL && v == NULL) {
            rc = GH_ENOMEM;
            goto out;
        }
        if (json_object_object_add(data, key, v) != 0) {
            json_object_put(v);
            rc = GH_ENOMEM;
            goto out;
        }
    }
    if (!json_object_object_get_ex(data, "allowed_mentions", NULL)) {
        rc = put(data, "allowed_mentions", no_mentions());
        if (rc != GH_OK)
            goto out;
    }
    rc = emit_callback(out, type, data);
    data = NULL;
out:
    json_object_put(data);
    return rc;
}

int gh_resp_deferred(struct gh_buf *out, int ephemeral)
{
    json_object *data = gh_msg_new(NULL, NULL, NULL, ephemeral ? GH_MSG_EPHEMERAL : 0);

    if (data == NULL)
        return GH_ENOMEM;
    return emit_callback(out, GH_CB_DEFERRED_MESSAGE, data);
}

int gh_resp_deferred_update(struct gh_buf *out)
{
    return emit_callback(out, GH_CB_DEFERRED_UPDATE, NULL);
}

int gh_resp_update(struct gh_buf *out, const char *content)
{
    json_object *msg = gh_msg_new(content != NULL ? content : "", NULL, NULL, 0);

    if (msg == NULL)
        return GH_ENOMEM;
    return emit_callback(out, GH_CB_UPDATE_MESSAGE, msg);
}

int gh_resp_modal(struct gh_buf *out, const char *custom_id, const char *title, json_object *components)
{
    json_object *data = NULL;
    size_t n_id, n_title, n_comp;
    int rc = GH_EINVAL;

    if (custom_id == NULL || title == NULL || components == NULL ||
        !json_object_is_type(components, json_type_array))
        return GH_EINVAL;
    n_id = utf8_chars(custom_id, NULL, CUSTOM_ID_MAX_CHARS);
    n_title = utf8_chars(title, NULL, MODAL_TITLE_MAX_CHARS);
    n_comp = json_object_array_length(components);
    if (n_id == 0 || n_id > CUSTOM_ID_MAX_CHARS || n_title == 0 || n_title > MODAL_TITLE_MAX_CHARS ||
        n_comp == 0 || n_comp > MODAL_MAX_COMPONENTS)
        return GH_EINVAL;
    data = json_object_new_object();
    if (data == NULL)
        return GH_ENOMEM;
    if ((rc = put(data, "custom_id", json_object_new_string(custom_id))) != GH_OK ||
        (rc = put(data, "title", json_object_new_string(title))) != GH_OK ||
        (rc = put(data, "components", json_object_get(components))) != GH_OK)
        goto out;
    rc = emit_callback(out, GH_CB_MODAL, data);
    data = NULL;
out:
    json_object_put(data);
    return rc;
}

int gh_resp_autocomplete(struct gh_buf *out, json_object *choices)
{
    json_object *data = NULL;
    json_object *list = NULL;
    size_t n = 0;
    int rc = GH_ENOMEM;

    if (choices != NULL && !json_object_is_type(choices, json_type_array))
        return GH_EINVAL;
    if (choices != NULL)
        n = json_object_array_length(choices);
    if (n > AUTOCOMPLETE_MAX_CHOICES)
        n = AUTOCOMPLETE_MAX_CHOICES;
    data = json_object_new_object();
    list = json_object_new_array_ext((int)n);
    if (data == NULL || list == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(choices, i);
        if (json_object_array_add(list, json_object_get(c)) != 0) {
            json_object_put(c);
            goto out;
        }
    }
    rc = put(data, "choices", list);
    list = NULL;
    if (rc != GH_OK)
        goto out;
    rc = emit_callback(out, GH_CB_AUTOCOMPLETE, data);
    data = NULL;
out:
    json_object_put(list);
    json_object_put(data);
    return rc;
}

/* ---- escaping ----------------------------------------------------------- */

/* Appends n bytes as one unit, or nothing when they do not fit (keeping the
 * NUL). Returns 0 when the output is full. */
static int put_unit(char *out, size_t size, size_t *o, const char *p, size_t n)
{
    if (*o + n + 1 > size)
        return 0;
    memcpy(out + *o, p, n);
    *o += n;
    return 1;
}

/* Inline markdown, escaped anywhere. */
static int is_markdown(unsigned char c)
{
    return c == '\\' || c == '*' || c == '_' || c == '~' || c == '`' || c == '|';
}

/* Block markdown (headings, quotes, lists, "-# " subtext), only meaningful
 * at the start of a line (after optional blanks). */
static int is_line_markdown(unsigned char c)
{
    return c == '#' || c == '>' || c == '-';
}

char *gh_escape_markdown(const char *in, char *out, size_t size)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    int line_start = 1;

    if (out == NULL || size == 0)
        return out;
    out[0] = '\0';
    if (in == NULL)
        return out;
    while (*p != '\0') {
        size_t n = utf8_seq_len(p);
        char pair[2];
        const char *unit = pair;
        size_t un = 0;

        if (n == 0) { /* invalid byte: replace, never copy broken UTF-8 */
            if (!put_unit(out, size, &o, REPLACEMENT, sizeof(REPLACEMENT) - 1))
                break;
            p++;
            line_start = 0;
            continue;
        }
        if (n > 1) {
            if (!put_unit(out, size, &o, (const char *)p, n))
                break;
            p += n;
            line_start = 0;
            continue;
        }
        if (*p == '@' && (strncmp((const char *)p + 1, "everyone", 8) == 0 ||
                          strncmp((const char *)p + 1, "here", 4) == 0)) {
            unit = "@" ZWSP;
            un = 4;
        } else if (*p == '<' && (p[1] == '@' || p[1] == '#')) {
            unit = "<" ZWSP;
            un = 4;
        } else if (is_markdown(*p) || (line_start && is_line_markdown(*p))) {
            pair[0] = '\\';
            pair[1] = (char)*p;
            un = 2;
        } else {
            pair[0] = (char)*p;
            un = 1;
        }
        if (!put_unit(out, size, &o, unit, un))
            break;
        line_start = (*p == '\n') || (line_start && (*p == ' ' || *p == '\t'));
        p++;
    }
    out[o] = '\0';
    return out;
}

void gh_msg_set_nonce(json_object *msg, const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    char nonce[20];

    if (!msg || !key)
        return;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    snprintf(nonce, sizeof(nonce), "j%016llx", (unsigned long long)h);
    json_object_object_add(msg, "nonce", json_object_new_string(nonce));
    json_object_object_add(msg, "enforce_nonce", json_object_new_boolean(1));
}
