/* prefix.c - legacy prefix commands: "<prefix>name args" in a message runs
 * the registry's slash command of that name.
 *
 * Detection is inline (gateway-lite, MESSAGE_CREATE): guild message, author
 * not a bot, the guild's "events" settings (through lib/store/setcache.h)
 * enable it, the first word is a registered CHAT_INPUT command. Then a
 * per-user rate key (SET NX PX, pipelined for the batch) and a job
 * "events:prefix" with the message; everything else (parsing, permissions,
 * running the handler, answering) happens in the worker (jobs.c).
 *
 * Arguments are positional, in the order the command declares its options:
 * subcommand groups and subcommands first by name, then one token per
 * option ("double quoted" tokens may hold spaces, \" escapes a quote). A
 * STRING option that is the last one declared takes the rest of the line,
 * so "!warn @bob spamming links again" works without quotes. */
#include "features/events/events.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "store/jobspool.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/setcache.h"

/* ---- settings ----------------------------------------------------------- */

void gh_events_settings_load(json_object *doc, struct gh_events_settings *s)
{
    const char *p;
    int b = 0;

    memset(s, 0, sizeof(*s));
    memcpy(s->prefix, "!", 2);
    if (!doc)
        return;
    if (gh_json_get_bool(doc, "prefix_enabled", &b) == GH_OK)
        s->prefix_enabled = b;
    p = gh_json_get_str(doc, "prefix");
    if (p && *p && strlen(p) <= GH_EVENTS_PREFIX_MAX && !strpbrk(p, " \t\r\n"))
        memcpy(s->prefix, p, strlen(p) + 1);
    json_object *c = gh_json_get_arr(doc, "commands");
    if (c && json_object_array_length(c) > 0)
        s->commands = json_object_get(c);
}

int gh_events_settings_allows(const struct gh_events_settings *s, const char *name)
{
    size_t n = s->commands ? json_object_array_length(s->commands) : 0;
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        const char *c = json_object_get_string(json_object_array_get_idx(s->commands, i));
        if (c && !strcmp(c, name))
            return 1;
    }
    return 0;
}

static void *settings_parse(json_object *doc, uint64_t guild_id)
{
    (void)guild_id;
    struct gh_events_settings *s = malloc(sizeof(*s));
    if (s)
        gh_events_settings_load(doc, s);
    return s;
}

static void settings_free(void *p)
{
    struct gh_events_settings *s = p;
    if (s)
        json_object_put(s->commands);
    free(s);
}

/* ---- splitting and tokens ----------------------------------------------- */

int gh_events_prefix_split(const char *content, const char *prefix, char *name, size_t name_size,
                           const char **rest)
{
    size_t pl = prefix ? strlen(prefix) : 0, i = 0;
    if (!content || !pl || strncmp(content, prefix, pl) != 0)
        return 0;
    const char *p = content + pl;
    while (p[i] && !isspace((unsigned char)p[i])) {
        if (i + 1 >= name_size)
            return 0;
        name[i] = (char)tolower((unsigned char)p[i]);
        i++;
    }
    name[i] = '\0';
    if (i == 0)
        return 0;
    p += i;
    while (*p && isspace((unsigned char)*p))
        p++;
    *rest = p;
    return 1;
}

struct tok {
    char *text;        /* unquoted value (owned) */
    const char *start; /* where it began in the arguments (for "rest of line") */
};

#define MAX_TOKENS 64

static void free_tokens(struct tok *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].text);
}

/* GH_OK, GH_EINVAL (unterminated quote), GH_ETOOBIG. */
static int tokenize(const char *s, struct tok *t, int *n)
{
    *n = 0;
    while (*s) {
        while (*s && isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        if (*n >= MAX_TOKENS)
            return GH_ETOOBIG;
        size_t cap = strlen(s) + 1, len = 0;
        char *out = malloc(cap);
        if (!out)
            return GH_ENOMEM;
        t[*n].start = s;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                out[len++] = *s++;
            }
            if (*s != '"') {
                free(out);
                return GH_EINVAL;
            }
            s++;
        } else {
            while (*s && !isspace((unsigned char)*s))
                out[len++] = *s++;
        }
        out[len] = '\0';
        t[*n].text = out;
        (*n)++;
    }
    return GH_OK;
}

/* ---- usage -------------------------------------------------------------- */

static int is_sub(json_object *o)
{
    int64_t t = 0;
    return gh_json_get_int(o, "type", &t) == GH_OK && (t == 1 || t == 2);
}

static const char *type_hint(int64_t type)
{
    switch (type) {
    case 4: return "a whole number";
    case 10: return "a number";
    case 5: return "true or false";
    case 6: return "a user mention (@user) or a user id";
    case 7: return "a channel mention (#channel) or a channel id";
    case 8: return "a role mention (@role) or a role id";
    case 9: return "a user or role mention or an id";
    case 11: return "an attachment";
    default: return "text";
    }
}

/* "<prefix><path> <a> [b]" for the leaf option array opts. */
static void usage_line(char *out, size_t size, const char *prefix, const char *path, json_object *opts)
{
    size_t n = opts ? json_object_array_length(opts) : 0, used;
    int w = snprintf(out, size, "%s%s", prefix, path);
    used = w < 0 ? 0 : ((size_t)w >= size ? size - 1 : (size_t)w);
    for (size_t i = 0; i < n && used + 1 < size; i++) {
        json_object *o = json_object_array_get_idx(opts, i);
        int req = 0;
        (void)gh_json_get_bool(o, "required", &req);
        const char *nm = gh_json_get_str(o, "name");
        w = snprintf(out + used, size - used, req ? " <%s>" : " [%s]", nm ? nm : "?");
        used = w < 0 ? used : (used + (size_t)w >= size ? size - 1 : used + (size_t)w);
    }
}

/* "<prefix><path> <a|b|c>" for a level of subcommands. */
static void usage_subs(char *out, size_t size, const char *prefix, const char *path, json_object *opts)
{
    size_t n = opts ? json_object_array_length(opts) : 0, used;
    int w = snprintf(out, size, "%s%s <", prefix, path);
    used = w < 0 ? 0 : ((size_t)w >= size ? size - 1 : (size_t)w);
    for (size_t i = 0; i < n && used + 1 < size; i++) {
        const char *nm = gh_json_get_str(json_object_array_get_idx(opts, i), "name");
        w = snprintf(out + used, size - used, "%s%s", i ? "|" : "", nm ? nm : "?");
        used = w < 0 ? used : (used + (size_t)w >= size ? size - 1 : used + (size_t)w);
    }
    if (used + 2 < size) {
        out[used++] = '>';
        out[used] = '\0';
    }
}

/* ---- values ------------------------------------------------------------- */

/* "<@123>", "<@!123>", "<#123>", "<@&123>" or "123" -> 123 when the form is
 * one of the allowed opens (e.g. "<@" "<@!"); 0 otherwise. */
static uint64_t mention_id(const char *s, const char *const *opens, int *which)
{
    for (int i = 0; opens[i]; i++) {
        size_t ol = strlen(opens[i]);
        if (strncmp(s, opens[i], ol) != 0)
            continue;
        const char *p = s + ol;
        size_t dl = strspn(p, "0123456789");
        if (dl == 0 || dl > 20 || p[dl] != '>' || p[dl + 1] != '\0')
            continue;
        char digits[24];
        memcpy(digits, p, dl);
        digits[dl] = '\0';
        if (which)
            *which = i;
        return gh_snowflake_parse(digits);
    }
    if (which)
        *which = -1;
    return gh_snowflake_parse(s);
}

/* Matches a choice by name or value (case-insensitive); the choice's value
 * (borrowed) or NULL. */
static json_object *match_choice(json_object *choices, const char *text)
{
    size_t n = json_object_array_length(choices);
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(choices, i), *v = NULL;
        const char *nm = gh_json_get_str(c, "name");
        if (!json_object_object_get_ex(c, "value", &v))
            continue;
        const char *vs = json_object_get_string(v);
        if ((nm && !strcasecmp(nm, text)) || (vs && !strcasecmp(vs, text)))
            return v;
    }
    return NULL;
}

static double num_of(json_object *o, const char *key, int *has)
{
    json_object *v = NULL;
    *has = json_object_object_get_ex(o, key, &v) && v &&
           (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
    return *has ? json_object_get_double(v) : 0;
}

/* Converts text for option o into a value (new reference) or NULL with err. */
static json_object *convert(json_object *o, const char *text, char *err, size_t errlen)
{
    static const char *const user_opens[] = {"<@!", "<@", NULL};
    static const char *const chan_opens[] = {"<#", NULL};
    static const char *const role_opens[] = {"<@&", NULL};
    static const char *const any_opens[] = {"<@&", "<@!", "<@", NULL};
    int64_t type = 3;
    const char *name = gh_json_get_str(o, "name");
    json_object *choices = gh_json_get_arr(o, "choices");
    int hmin = 0, hmax = 0;
    double mn, mx;
    char digits[24];

    (void)gh_json_get_int(o, "type", &type);
    if (!name)
        name = "?";
    if (choices && json_object_array_length(choices) > 0) {
        json_object *v = match_choice(choices, text);
        if (!v) {
            size_t used = 0, n = json_object_array_length(choices);
            int w = snprintf(err, errlen, "`%s` must be one of:", name);
            used = w < 0 ? 0 : (size_t)w;
            for (size_t i = 0; i < n && used + 1 < errlen; i++) {
                const char *cn = gh_json_get_str(json_object_array_get_idx(choices, i), "name");
                w = snprintf(err + used, errlen - used, "%s %s", i ? "," : "", cn ? cn : "?");
                used = w < 0 ? used : used + (size_t)w;
            }
            return NULL;
        }
        return json_object_get(v);
    }
    switch (type) {
    case 3: {
        size_t len = strlen(text);
        mn = num_of(o, "min_length", &hmin);
        mx = num_of(o, "max_length", &hmax);
        if ((hmin && (double)len < mn) || (hmax && (double)len > mx)) {
            (void)snprintf(err, errlen, "`%s` must be %s%.0f to %.0f characters long", name, "", hmin ? mn : 0,
                           hmax ? mx : 6000);
            return NULL;
        }
        return json_object_new_string(text);
    }
    case 4: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || errno || *end) {
            (void)snprintf(err, errlen, "`%s` must be %s, not \"%.40s\"", name, type_hint(type), text);
            return NULL;
        }
        mn = num_of(o, "min_value", &hmin);
        mx = num_of(o, "max_value", &hmax);
        if ((hmin && (double)v < mn) || (hmax && (double)v > mx)) {
            (void)snprintf(err, errlen, "`%s` must be between %.0f and %.0f", name, hmin ? mn : -9007199254740991.0,
                           hmax ? mx : 9007199254740991.0);
            return NULL;
        }
        return json_object_new_int64(v);
    }
    case 10: {
        char *end = NULL;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || errno || *end || !isfinite(v)) {
            (void)snprintf(err, errlen, "`%s` must be %s, not \"%.40s\"", name, type_hint(type), text);
            return NULL;
        }
        mn = num_of(o, "min_value", &hmin);
        mx = num_of(o, "max_value", &hmax);
        if ((hmin && v < mn) || (hmax && v > mx)) {
            (void)snprintf(err, errlen, "`%s` must be between %g and %g", name, hmin ? mn : -1e15,
                           hmax ? mx : 1e15);
            return NULL;
        }
        return json_object_new_double(v);
    }
    case 5: {
        static const char *const yes[] = {"true", "yes", "y", "on", "1"};
        static const char *const no[] = {"false", "no", "n", "off", "0"};
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (!strcasecmp(text, yes[i]))
                return json_object_new_boolean(1);
            if (!strcasecmp(text, no[i]))
                return json_object_new_boolean(0);
        }
        (void)snprintf(err, errlen, "`%s` must be true or false (yes/no), not \"%.40s\"", name, text);
        return NULL;
    }
    case 6:
    case 7:
    case 8:
    case 9: {
        const char *const *opens = type == 6 ? user_opens : type == 7 ? chan_opens : type == 8 ? role_opens : any_opens;
        uint64_t id = mention_id(text, opens, NULL);
        if (!id) {
            (void)snprintf(err, errlen, "`%s` must be %s, not \"%.40s\"", name, type_hint(type), text);
            return NULL;
        }
        (void)snprintf(digits, sizeof(digits), "%" PRIu64, id);
        return json_object_new_string(digits);
    }
    default:
        (void)snprintf(err, errlen, "`%s` (%s) cannot be given in a message", name, type_hint(type));
        return NULL;
    }
}

/* Parses tokens t[*pos..n) into leaf options opts; raw: the arguments text
 * (for the rest-of-line string). */
static int parse_leaf(json_object *opts, struct tok *t, int n, int *pos, json_object *out, char *err,
                      size_t errlen)
{
    size_t no = opts ? json_object_array_length(opts) : 0;
    for (size_t i = 0; i < no; i++) {
        json_object *o = json_object_array_get_idx(opts, i);
        const char *nm = gh_json_get_str(o, "name");
        int64_t type = 3;
        int req = 0;
        (void)gh_json_get_int(o, "type", &type);
        (void)gh_json_get_bool(o, "required", &req);
        if (type == 11) {
            if (req) {
                (void)snprintf(err, errlen, "`%s` is an attachment, which a message command cannot carry",
                               nm ? nm : "?");
                return GH_EUNAVAILABLE;
            }
            continue;
        }
        if (*pos >= n) {
            if (req) {
                (void)snprintf(err, errlen, "missing `%s` (%s)", nm ? nm : "?", type_hint(type));
                return GH_EINVAL;
            }
            continue;
        }
        char *rest = NULL;
        const char *text = t[*pos].text;
        /* the last declared option, a plain string: the rest of the line */
        if (type == 3 && i + 1 == no && *pos + 1 < n && !gh_json_get_arr(o, "choices")) {
            rest = strdup(t[*pos].start);
            if (!rest)
                return GH_ENOMEM;
            size_t l = strlen(rest);
            while (l > 0 && isspace((unsigned char)rest[l - 1]))
                rest[--l] = '\0';
            text = rest;
            *pos = n - 1;
        }
        json_object *v = convert(o, text, err, errlen);
        free(rest);
        if (!v)
            return GH_EINVAL;
        (*pos)++;
        json_object *opt = json_object_new_object();
        json_object_object_add(opt, "name", json_object_new_string(nm ? nm : "?"));
        json_object_object_add(opt, "type", json_object_new_int((int)type));
        json_object_object_add(opt, "value", v);
        json_object_array_add(out, opt);
    }
    if (*pos < n) {
        (void)snprintf(err, errlen, "too many arguments (from \"%.40s\")", t[*pos].text);
        return GH_EINVAL;
    }
    return GH_OK;
}

static json_object *find_named(json_object *opts, const char *name)
{
    size_t n = opts ? json_object_array_length(opts) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(opts, i);
        const char *nm = gh_json_get_str(o, "name");
        if (nm && !strcasecmp(nm, name))
            return o;
    }
    return NULL;
}

int gh_events_prefix_parse(const char *prefix, const char *name, const char *options_json, const char *args,
                           json_object **out, char *err, size_t errlen, char *usage, size_t usage_size)
{
    json_object *decl = NULL, *result = NULL, *level = NULL, *container = NULL;
    struct tok t[MAX_TOKENS];
    char path[128];
    int n = 0, pos = 0, rc = GH_EINVAL;

    *out = NULL;
    err[0] = '\0';
    usage[0] = '\0';
    memset(t, 0, sizeof(t));
    if (options_json && gh_json_parse(options_json, strlen(options_json), 16, &decl) != GH_OK)
        return GH_EJSON;
    if (decl && !json_object_is_type(decl, json_type_array)) {
        json_object_put(decl);
        return GH_EJSON;
    }
    (void)snprintf(path, sizeof(path), "%s", name);
    rc = tokenize(args ? args : "", t, &n);
    if (rc != GH_OK) {
        (void)snprintf(err, errlen, rc == GH_ETOOBIG ? "too many arguments" : "a quote \" is not closed");
        rc = rc == GH_ENOMEM ? GH_ENOMEM : GH_EINVAL;
        usage_line(usage, usage_size, prefix, path, decl);
        goto out;
    }
    result = json_object_new_array();
    level = decl;
    container = result;
    /* subcommand groups and subcommands, by name */
    for (int depth = 0; depth < 2 && level && json_object_array_length(level) > 0 &&
                        is_sub(json_object_array_get_idx(level, 0));
         depth++) {
        json_object *sub = pos < n ? find_named(level, t[pos].text) : NULL;
        if (!sub) {
            usage_subs(usage, usage_size, prefix, path, level);
            if (pos < n)
                (void)snprintf(err, errlen, "unknown subcommand \"%.40s\"", t[pos].text);
            else
                (void)snprintf(err, errlen, "missing subcommand");
            rc = GH_EINVAL;
            goto out;
        }
        pos++;
        size_t pl = strlen(path);
        (void)snprintf(path + pl, sizeof(path) - pl, " %s", gh_json_get_str(sub, "name"));
        int64_t st = 1;
        (void)gh_json_get_int(sub, "type", &st);
        json_object *o = json_object_new_object();
        json_object *inner = json_object_new_array();
        json_object_object_add(o, "name", json_object_new_string(gh_json_get_str(sub, "name")));
        json_object_object_add(o, "type", json_object_new_int((int)st));
        json_object_object_add(o, "options", inner);
        json_object_array_add(container, o);
        container = inner;
        level = gh_json_get_arr(sub, "options");
        if (st == 1)
            break;
    }
    usage_line(usage, usage_size, prefix, path, level && json_object_array_length(level) > 0 &&
                                                        is_sub(json_object_array_get_idx(level, 0))
                                                    ? NULL
                                                    : level);
    rc = parse_leaf(level && (json_object_array_length(level) == 0 || !is_sub(json_object_array_get_idx(level, 0)))
                        ? level
                        : NULL,
                    t, n, &pos, container, err, errlen);
    if (rc == GH_OK) {
        *out = result;
        result = NULL;
    }
out:
    free_tokens(t, n);
    json_object_put(result);
    json_object_put(decl);
    return rc;
}

/* ---- permissions -------------------------------------------------------- */

static uint64_t perms_of(const json_object *o, const char *key)
{
    const char *s = gh_json_get_str(o, key);
    uint64_t v = 0;
    if (s && gh_perms_parse(s, &v) == GH_OK)
        return v;
    return 0;
}

static int has_role(const json_object *member_roles, const char *id)
{
    size_t n = member_roles ? json_object_array_length(member_roles) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *r = json_object_get_string(json_object_array_get_idx(member_roles, i));
        if (r && !strcmp(r, id))
            return 1;
    }
    return 0;
}

uint64_t gh_events_perms_compute(const json_object *roles, const json_object *channel,
                                 const json_object *member_roles, uint64_t guild_id, uint64_t user_id,
                                 int is_owner)
{
    char gid[24], uid[24];
    uint64_t base = 0;
    size_t n = roles ? json_object_array_length(roles) : 0;

    if (is_owner)
        return GH_EVENTS_PERMS_ALL;
    (void)snprintf(gid, sizeof(gid), "%" PRIu64, guild_id);
    (void)snprintf(uid, sizeof(uid), "%" PRIu64, user_id);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        const char *id = gh_json_get_str(r, "id");
        if (id && (!strcmp(id, gid) || has_role(member_roles, id)))
            base |= perms_of(r, "permissions");
    }
    if (base & GH_PERM(ADMINISTRATOR))
        return GH_EVENTS_PERMS_ALL;
    json_object *ow = channel ? gh_json_get_arr(channel, "permission_overwrites") : NULL;
    size_t m = ow ? json_object_array_length(ow) : 0;
    uint64_t allow = 0, deny = 0;
    /* @everyone, then the roles together, then the member */
    for (size_t i = 0; i < m; i++) {
        json_object *o = json_object_array_get_idx(ow, i);
        const char *id = gh_json_get_str(o, "id");
        if (id && !strcmp(id, gid)) {
            base &= ~perms_of(o, "deny");
            base |= perms_of(o, "allow");
        }
    }
    for (size_t i = 0; i < m; i++) {
        json_object *o = json_object_array_get_idx(ow, i);
        const char *id = gh_json_get_str(o, "id");
        int64_t type = 0;
        (void)gh_json_get_int(o, "type", &type);
        if (id && type == 0 && strcmp(id, gid) != 0 && has_role(member_roles, id)) {
            allow |= perms_of(o, "allow");
            deny |= perms_of(o, "deny");
        }
    }
    base &= ~deny;
    base |= allow;
    for (size_t i = 0; i < m; i++) {
        json_object *o = json_object_array_get_idx(ow, i);
        const char *id = gh_json_get_str(o, "id");
        int64_t type = 0;
        (void)gh_json_get_int(o, "type", &type);
        if (id && type == 1 && !strcmp(id, uid)) {
            base &= ~perms_of(o, "deny");
            base |= perms_of(o, "allow");
        }
    }
    return base;
}

/* ---- inline detection --------------------------------------------------- */

static struct gh_setcache *settings_cache; /* gateway-lite's loop thread only */

void gh_events_prefix_detect(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    enum { MAXC = 64 };
    int cand[MAXC], nc = 0;
    char key[MAXC][128];

    for (int i = 0; i < n && nc < MAXC; i++) {
        struct gh_event *ev = evs[i];
        json_object *author = gh_json_get_obj(ev->d, "author");
        const char *content = gh_json_get_str(ev->d, "content");
        const char *rest = NULL;
        char name[40];
        int bot = 0;
        if (!ev->guild_id || !author || !content || !*content || (ev->flags & GH_EVF_DELETED))
            continue;
        (void)gh_json_get_bool(author, "bot", &bot);
        if (bot || gh_json_get_obj(ev->d, "webhook_id"))
            continue;
        if (!settings_cache) {
            int ttl = ctx->cfg ? ctx->cfg->gateway_settings_ttl_ms : 0;
            settings_cache = gh_setcache_new("events", ttl > 0 ? ttl : 5000, settings_parse, settings_free);
            if (!settings_cache)
                return;
        }
        const struct gh_events_settings *s = gh_setcache_get(settings_cache, ctx, ev->guild_id);
        if (!s || !s->prefix_enabled || !gh_events_prefix_split(content, s->prefix, name, sizeof(name), &rest))
            continue;
        if (!gh_registry_command(name, 1, NULL) || !gh_events_settings_allows(s, name))
            continue;
        uint64_t uid = gh_json_get_snowflake(author, "id");
        if (!uid || gh_key_guild(key[nc], sizeof(key[nc]), ev->guild_id, "events", "prefix_rl:%" PRIu64, uid) != GH_OK)
            continue;
        ev->flags |= GH_EVF_PREFIX_CMD;
        cand[nc++] = i;
    }
    if (nc == 0)
        return;
    if (!ctx->redis) {
        gh_events_redis_down(ctx, "prefix commands");
        return;
    }
    int sent[MAXC], k = 0;
    for (int c = 0; c < nc; c++) {
        sent[c] = gh_redis_append(ctx->redis, "SET %s 1 NX PX %d", key[c], GH_EVENTS_PREFIX_RATE_MS) == GH_OK;
        k += sent[c];
    }
    int ok[MAXC];
    for (int c = 0; c < nc; c++) {
        ok[c] = 0;
        if (!sent[c])
            continue;
        redisReply *r = gh_redis_get_reply(ctx->redis);
        ok[c] = r && r->type == REDIS_REPLY_STATUS;
        if (!r)
            gh_events_redis_down(ctx, "prefix commands");
        freeReplyObject(r);
    }
    for (int c = 0; c < nc; c++) {
        struct gh_event *ev = evs[cand[c]];
        char id[96];
        if (!ok[c]) {
            GH_DEBUG(&ctx->log, "events: prefix command in guild %" PRIu64 " rate limited", ev->guild_id);
            continue;
        }
        uint64_t mid = gh_json_get_snowflake(ev->d, "id");
        (void)snprintf(id, sizeof(id), "prefix:%" PRIu64 ":%" PRIu64, ev->guild_id, mid);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "message", json_object_get(ev->d));
        json_object_object_add(p, "received_ms", json_object_new_int64(gh_now_ms()));
        int rc = gh_jobspool_enqueue(ctx, NULL, id, "events:prefix", ev->guild_id, p, 0, 0);
        if (rc != GH_OK && rc != GH_EDUPLICATE)
            GH_WARN(&ctx->log, "events: prefix command %s not queued: %s", id, gh_strerror(rc));
        json_object_put(p);
    }
}
