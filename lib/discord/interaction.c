/* interaction.c - parse an incoming interaction into struct gh_interaction.
 *
 * The body is parsed strictly (json-c strict mode, UTF-8 validated, depth 32,
 * nothing after the top-level object), then the fields the router relies on
 * are checked by a table per interaction type. Strings in the struct are
 * borrowed from ix->root and live until gh_interaction_cleanup. */
#include "discord/interaction.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "discord/perms.h"

#define JSON_MAX_DEPTH 32
#define OPT_SUB_COMMAND 1
#define OPT_SUB_COMMAND_GROUP 2
#define OPT_MAX_NESTING 4 /* group > subcommand > option, with room to spare */

/* What each interaction type must carry beyond the common fields. */
struct ix_shape {
    int type;
    const char *name;
    int needs_user; /* member.user.id or user.id */
    int needs_data;
    int needs_command; /* data.name */
    int needs_custom;  /* data.custom_id */
};

static const struct ix_shape ix_shapes[] = {
    {GH_IX_PING, "PING", 0, 0, 0, 0},
    {GH_IX_APPLICATION_COMMAND, "APPLICATION_COMMAND", 1, 1, 1, 0},
    {GH_IX_MESSAGE_COMPONENT, "MESSAGE_COMPONENT", 1, 1, 0, 1},
    {GH_IX_AUTOCOMPLETE, "APPLICATION_COMMAND_AUTOCOMPLETE", 1, 1, 1, 0},
    {GH_IX_MODAL_SUBMIT, "MODAL_SUBMIT", 1, 1, 0, 1},
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t gh_snowflake_parse(const char *s)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return 0;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned d;
        if (*p < '0' || *p > '9')
            return 0;
        d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static json_object *member_of(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

/* A present, non-null member (json null counts as absent). */
static json_object *present(json_object *obj, const char *key)
{
    json_object *v = member_of(obj, key);

    return (v != NULL && !json_object_is_type(v, json_type_null)) ? v : NULL;
}

static const char *str_of(json_object *obj, const char *key)
{
    json_object *v = present(obj, key);

    return (v != NULL && json_object_is_type(v, json_type_string)) ? json_object_get_string(v) : NULL;
}

/* Required snowflake string at obj.key. */
static int req_snowflake(json_object *obj, const char *where, const char *key, uint64_t *out, char *err,
                         size_t errlen)
{
    json_object *v = present(obj, key);

    if (v == NULL) {
        set_err(err, errlen, "missing field %s%s", where, key);
        return GH_EINVAL;
    }
    if (!json_object_is_type(v, json_type_string) ||
        (*out = gh_snowflake_parse(json_object_get_string(v))) == 0) {
        set_err(err, errlen, "field %s%s must be a snowflake string", where, key);
        return GH_EINVAL;
    }
    return GH_OK;
}

/* Optional snowflake string: absent or null -> 0; present but bad -> error. */
static int opt_snowflake(json_object *obj, const char *where, const char *key, uint64_t *out, char *err,
                         size_t errlen)
{
    *out = 0;
    if (present(obj, key) == NULL)
        return GH_OK;
    return req_snowflake(obj, where, key, out, err, errlen);
}

/* Optional permission string (decimal). */
static int opt_perms(json_object *obj, const char *where, const char *key, uint64_t *out, char *err,
                     size_t errlen)
{
    json_object *v = present(obj, key);

    *out = 0;
    if (v == NULL)
        return GH_OK;
    if (!json_object_is_type(v, json_type_string) ||
        gh_perms_parse(json_object_get_string(v), out) != GH_OK) {
        set_err(err, errlen, "field %s%s must be a decimal permission string", where, key);
        return GH_EINVAL;
    }
    return GH_OK;
}

/* Optional int that fits in an int; absent -> def. */
static int opt_int(json_object *obj, const char *where, const char *key, int def, int *out, char *err,
                   size_t errlen)
{
    json_object *v = present(obj, key);
    int64_t n;

    *out = def;
    if (v == NULL)
        return GH_OK;
    if (!json_object_is_type(v, json_type_int)) {
        set_err(err, errlen, "field %s%s must be an integer", where, key);
        return GH_EINVAL;
    }
    n = json_object_get_int64(v);
    if (n < 0 || n > 1000000) {
        set_err(err, errlen, "field %s%s is out of range", where, key);
        return GH_EINVAL;
    }
    *out = (int)n;
    return GH_OK;
}

static const struct ix_shape *shape_of(int type)
{
    for (size_t i = 0; i < sizeof(ix_shapes) / sizeof(ix_shapes[0]); i++)
        if (ix_shapes[i].type == type)
            return &ix_shapes[i];
    return NULL;
}

/* json-c's strict mode still takes 'single quotes', NaN, Infinity and raw
 * control characters in strings. One pass over the bytes rejects them:
 * outside strings only JSON punctuation, numbers and the letters of true,
 * false and null may appear. Returns the offset of the first bad byte, or
 * len when the text is clean. */
static size_t lexical_check(const char *p, size_t len)
{
    int in_str = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (in_str) {
            if (c < 0x20)
                return i;
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            continue;
        }
        if (strchr("{}[]:, \t\r\n0123456789+-.eEtrufalsn", c) == NULL || c == '\0')
            return i;
    }
    return len;
}

/* Parses body into a new object. GH_OK or GH_EJSON with a reason. */
static int parse_json(const char *body, size_t len, json_object **out, char *err, size_t errlen)
{
    struct json_tokener *tok = NULL;
    json_object *obj = NULL;
    enum json_tokener_error jerr;
    size_t end;
    int rc = GH_EJSON;

    *out = NULL;
    if (body == NULL || len == 0) {
        set_err(err, errlen, "empty body");
        goto out;
    }
    if (len > INT32_MAX) {
        set_err(err, errlen, "body too large");
        goto out;
    }
    if (memchr(body, '\0', len) != NULL) {
        set_err(err, errlen, "body contains a NUL byte");
        goto out;
    }
    end = lexical_check(body, len);
    if (end < len) {
        set_err(err, errlen, "malformed JSON: unexpected character at offset %zu", end);
        goto out;
    }
    tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (tok == NULL) {
        set_err(err, errlen, "out of memory");
        rc = GH_ENOMEM;
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        set_err(err, errlen, "malformed JSON: unexpected end of input");
        goto out;
    }
    if (obj == NULL || jerr != json_tokener_success) {
        set_err(err, errlen, "malformed JSON: %s at offset %zu", json_tokener_error_desc(jerr),
                json_tokener_get_parse_end(tok));
        goto out;
    }
    end = json_tokener_get_parse_end(tok);
    for (; end < len; end++) {
        char c = body[end];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            set_err(err, errlen, "malformed JSON: trailing data at offset %zu", end);
            goto out;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        set_err(err, errlen, "interaction must be a JSON object");
        goto out;
    }
    *out = obj;
    obj = NULL;
    rc = GH_OK;
out:
    json_object_put(obj);
    if (tok != NULL)
        json_tokener_free(tok);
    return rc;
}

static int parse_user(struct gh_interaction *ix, const struct ix_shape *shape, char *err, size_t errlen)
{
    json_object *member = present(ix->root, "member");
    json_object *user = NULL;
    const char *where = "user.";
    int rc;

    if (member != NULL) {
        if (!json_object_is_type(member, json_type_object)) {
            set_err(err, errlen, "field member must be an object");
            return GH_EINVAL;
        }
        ix->has_member = 1;
        user = present(member, "user");
        where = "member.user.";
        rc = opt_perms(member, "member.", "permissions", &ix->member_permissions, err, errlen);
        if (rc != GH_OK)
            return rc;
        ix->member_roles = present(member, "roles");
        if (ix->member_roles != NULL && !json_object_is_type(ix->member_roles, json_type_array)) {
            set_err(err, errlen, "field member.roles must be an array");
            return GH_EINVAL;
        }
    }
    if (user == NULL)
        user = present(ix->root, "user");
    if (user == NULL) {
        if (!shape->needs_user)
            return GH_OK;
        set_err(err, errlen, "missing field member.user.id or user.id");
        return GH_EINVAL;
    }
    if (!json_object_is_type(user, json_type_object)) {
        set_err(err, errlen, "field %.*s must be an object", (int)strlen(where) - 1, where);
        return GH_EINVAL;
    }
    rc = req_snowflake(user, where, "id", &ix->user_id, err, errlen);
    if (rc != GH_OK)
        return rc;
    ix->username = str_of(user, "username");
    ix->global_name = str_of(user, "global_name");
    return GH_OK;
}

static int parse_data(struct gh_interaction *ix, const struct ix_shape *shape, char *err, size_t errlen)
{
    json_object *data = present(ix->root, "data");
    int rc;

    if (data == NULL) {
        if (!shape->needs_data)
            return GH_OK;
        set_err(err, errlen, "missing field data");
        return GH_EINVAL;
    }
    if (!json_object_is_type(data, json_type_object)) {
        set_err(err, errlen, "field data must be an object");
        return GH_EINVAL;
    }
    ix->data = data;
    if (shape->needs_command) {
        ix->command_name = str_of(data, "name");
        if (ix->command_name == NULL || ix->command_name[0] == '\0') {
            set_err(err, errlen, "missing field data.name");
            return GH_EINVAL;
        }
        rc = opt_int(data, "data.", "type", 1, &ix->command_type, err, errlen);
        if (rc != GH_OK)
            return rc;
        rc = opt_snowflake(data, "data.", "target_id", &ix->target_id, err, errlen);
        if (rc != GH_OK)
            return rc;
        ix->options = present(data, "options");
        if (ix->options != NULL && !json_object_is_type(ix->options, json_type_array)) {
            set_err(err, errlen, "field data.options must be an array");
            return GH_EINVAL;
        }
    }
    if (shape->needs_custom) {
        ix->custom_id = str_of(data, "custom_id");
        if (ix->custom_id == NULL || ix->custom_id[0] == '\0') {
            set_err(err, errlen, "missing field data.custom_id");
            return GH_EINVAL;
        }
        rc = opt_int(data, "data.", "component_type", 0, &ix->component_type, err, errlen);
        if (rc != GH_OK)
            return rc;
    }
    return GH_OK;
}

static int parse_fields(struct gh_interaction *ix, char *err, size_t errlen)
{
    json_object *root = ix->root;
    json_object *v;
    const struct ix_shape *shape;
    int64_t type;
    int rc;

    v = present(root, "type");
    if (v == NULL) {
        set_err(err, errlen, "missing field type");
        return GH_EINVAL;
    }
    if (!json_object_is_type(v, json_type_int)) {
        set_err(err, errlen, "field type must be an integer");
        return GH_EINVAL;
    }
    type = json_object_get_int64(v);
    shape = (type >= 1 && type <= 5) ? shape_of((int)type) : NULL;
    if (shape == NULL) {
        set_err(err, errlen, "unknown interaction type %lld", (long long)type);
        return GH_EINVAL;
    }
    ix->type = shape->type;

    rc = req_snowflake(root, "", "id", &ix->id, err, errlen);
    if (rc != GH_OK)
        return rc;
    rc = req_snowflake(root, "", "application_id", &ix->application_id, err, errlen);
    if (rc != GH_OK)
        return rc;
    v = present(root, "token");
    if (v == NULL) {
        set_err(err, errlen, "missing field token");
        return GH_EINVAL;
    }
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        set_err(err, errlen, "field token must be a non-empty string");
        return GH_EINVAL;
    }
    ix->token = json_object_get_string(v);
    v = present(root, "version");
    if (v != NULL && !json_object_is_type(v, json_type_int)) {
        set_err(err, errlen, "field version must be an integer");
        return GH_EINVAL;
    }

    rc = opt_snowflake(root, "", "guild_id", &ix->guild_id, err, errlen);
    if (rc != GH_OK)
        return rc;
    rc = opt_snowflake(root, "", "channel_id", &ix->channel_id, err, errlen);
    if (rc != GH_OK)
        return rc;
    rc = opt_perms(root, "", "app_permissions", &ix->app_permissions, err, errlen);
    if (rc != GH_OK)
        return rc;
    ix->locale = str_of(root, "locale");
    v = present(root, "context");
    ix->context = -1;
    if (v != NULL) {
        rc = opt_int(root, "", "context", -1, &ix->context, err, errlen);
        if (rc != GH_OK)
            return rc;
    }

    rc = parse_user(ix, shape, err, errlen);
    if (rc != GH_OK)
        return rc;
    return parse_data(ix, shape, err, errlen);
}

int gh_interaction_parse(const char *body, size_t len, struct gh_interaction *ix, char *err, size_t errlen)
{
    json_object *root = NULL;
    int rc;

    if (ix == NULL)
        return GH_EINVAL;
    memset(ix, 0, sizeof(*ix));
    ix->context = -1;
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    rc = parse_json(body, len, &root, err, errlen);
    if (rc != GH_OK)
        return rc;
    ix->root = root;
    rc = parse_fields(ix, err, errlen);
    if (rc != GH_OK)
        gh_interaction_cleanup(ix);
    return rc;
}

void gh_interaction_cleanup(struct gh_interaction *ix)
{
    if (ix == NULL)
        return;
    json_object_put(ix->root);
    memset(ix, 0, sizeof(*ix));
    ix->context = -1;
}

static int option_type(json_object *opt)
{
    json_object *t = present(opt, "type");

    return (t != NULL && json_object_is_type(t, json_type_int)) ? json_object_get_int(t) : 0;
}

/* Depth-first through subcommand groups and subcommands; value options only. */
static json_object *find_option(json_object *options, const char *name, int depth)
{
    size_t n;

    if (options == NULL || depth > OPT_MAX_NESTING || !json_object_is_type(options, json_type_array))
        return NULL;
    n = json_object_array_length(options);
    for (size_t i = 0; i < n; i++) {
        json_object *opt = json_object_array_get_idx(options, i);
        int type;
        const char *oname;

        if (opt == NULL || !json_object_is_type(opt, json_type_object))
            continue;
        type = option_type(opt);
        if (type == OPT_SUB_COMMAND || type == OPT_SUB_COMMAND_GROUP) {
            json_object *hit = find_option(present(opt, "options"), name, depth + 1);
            if (hit != NULL)
                return hit;
            continue;
        }
        oname = str_of(opt, "name");
        if (oname != NULL && strcmp(oname, name) == 0)
            return opt;
    }
    return NULL;
}

json_object *gh_interaction_option(const struct gh_interaction *ix, const char *name)
{
    if (ix == NULL || name == NULL)
        return NULL;
    return find_option(ix->options, name, 0);
}

const char *gh_interaction_option_str(const struct gh_interaction *ix, const char *name)
{
    return str_of(gh_interaction_option(ix, name), "value");
}

int gh_interaction_option_int(const struct gh_interaction *ix, const char *name, int64_t *out)
{
    json_object *v = present(gh_interaction_option(ix, name), "value");

    if (v == NULL || out == NULL)
        return GH_ENOTFOUND;
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return GH_OK;
    }
    /* Autocomplete sends the partial value of an INTEGER option as typed. */
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        const char *digits = (*s == '-') ? s + 1 : s;
        uint64_t u = gh_snowflake_parse(digits);

        if ((u != 0 || strcmp(digits, "0") == 0) && u <= (uint64_t)INT64_MAX) {
            *out = (*s == '-') ? -(int64_t)u : (int64_t)u;
            return GH_OK;
        }
    }
    return GH_EINVAL;
}

int gh_interaction_option_bool(const struct gh_interaction *ix, const char *name, int *out)
{
    json_object *v = present(gh_interaction_option(ix, name), "value");

    if (v == NULL || out == NULL)
        return GH_ENOTFOUND;
    if (!json_object_is_type(v, json_type_boolean))
        return GH_EINVAL;
    *out = json_object_get_boolean(v) ? 1 : 0;
    return GH_OK;
}

const char *gh_interaction_subcommand(const struct gh_interaction *ix)
{
    json_object *options;

    if (ix == NULL)
        return NULL;
    options = ix->options;
    for (int depth = 0; depth < 2 && options != NULL; depth++) {
        json_object *first;
        int type;

        if (!json_object_is_type(options, json_type_array) || json_object_array_length(options) == 0)
            return NULL;
        first = json_object_array_get_idx(options, 0);
        type = option_type(first);
        if (type == OPT_SUB_COMMAND)
            return str_of(first, "name");
        if (type != OPT_SUB_COMMAND_GROUP)
            return NULL;
        options = present(first, "options");
    }
    return NULL;
}
