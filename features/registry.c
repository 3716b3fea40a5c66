/* registry.c - the one list of features, and lookups over it.
 *
 * Adding a feature is one line here plus its folder. The order matters for
 * gateway events: inline handlers run in this order (AutoMod flags a message
 * before events' prefix commands and levels' XP look at it). The lookups walk the
 * table linearly: a few dozen commands, called once per request. */
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/str.h"
#include "features/automod/automod.h"
#include "features/core/core.h"
#include "features/events/events.h"
#include "features/levels/levels.h"
#include "features/moderation/moderation.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "features/utility/utility.h"

const struct gh_feature *const gh_features[] = {
    &gh_feature_core,       &gh_feature_utility, &gh_feature_premium, &gh_feature_moderation,
    &gh_feature_automod,    &gh_feature_events,  &gh_feature_levels,  NULL,
};

const struct gh_feature *gh_registry_feature(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; gh_features[i]; i++)
        if (strcmp(gh_features[i]->name, name) == 0)
            return gh_features[i];
    return NULL;
}

static int command_type(const struct gh_command *c)
{
    return c->type ? c->type : 1;
}

/* type <= 0 matches any command type. */
const struct gh_command *gh_registry_command(const char *name, int type, const struct gh_feature **feature)
{
    if (feature)
        *feature = NULL;
    if (!name)
        return NULL;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_commands; j++) {
            const struct gh_command *c = &f->commands[j];
            if (strcmp(c->name, name) != 0 || (type > 0 && command_type(c) != type))
                continue;
            if (feature)
                *feature = f;
            return c;
        }
    }
    return NULL;
}

const struct gh_component *gh_registry_component(const char *custom_id, const struct gh_feature **feature)
{
    const struct gh_component *best = NULL;
    size_t best_len = 0;

    if (feature)
        *feature = NULL;
    if (!custom_id)
        return NULL;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_components; j++) {
            const struct gh_component *c = &f->components[j];
            size_t n = strlen(c->prefix);
            if (n == 0 || n <= best_len || strncmp(custom_id, c->prefix, n) != 0)
                continue;
            best = c;
            best_len = n;
            if (feature)
                *feature = f;
        }
    }
    return best;
}

const struct gh_job_kind *gh_registry_job(const char *kind, const struct gh_feature **feature)
{
    if (feature)
        *feature = NULL;
    if (!kind)
        return NULL;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_jobs; j++) {
            if (strcmp(f->jobs[j].kind, kind) != 0)
                continue;
            if (feature)
                *feature = f;
            return &f->jobs[j];
        }
    }
    return NULL;
}

/* One command object of Discord's bulk overwrite. NULL with *err set. */
static json_object *command_json(const struct gh_command *c, int *err)
{
    static const unsigned ctx_bits[] = {GH_CTX_GUILD, GH_CTX_BOT_DM, GH_CTX_PRIVATE_CHANNEL};
    json_object *o = json_object_new_object();
    json_object *contexts = NULL, *options = NULL;

    *err = GH_ENOMEM;
    if (!o)
        goto fail;
    json_object_object_add(o, "name", json_object_new_string(c->name));
    json_object_object_add(o, "description", json_object_new_string(c->description));
    json_object_object_add(o, "type", json_object_new_int(command_type(c)));
    if (c->options_json) {
        options = json_tokener_parse(c->options_json);
        if (!options || !json_object_is_type(options, json_type_array)) {
            *err = GH_EJSON;
            goto fail;
        }
        json_object_object_add(o, "options", options);
        options = NULL;
    }
    json_object_object_add(
        o, "default_member_permissions",
        c->default_member_permissions ? json_object_new_string(c->default_member_permissions) : NULL);
    contexts = json_object_new_array();
    if (!contexts)
        goto fail;
    for (size_t i = 0; i < GH_COUNT(ctx_bits); i++)
        if (c->contexts & ctx_bits[i])
            json_object_array_add(contexts, json_object_new_int((int)i));
    json_object_object_add(o, "contexts", contexts);
    contexts = json_object_new_array();
    if (!contexts)
        goto fail;
    json_object_array_add(contexts, json_object_new_int(0)); /* GUILD_INSTALL */
    json_object_object_add(o, "integration_types", contexts);
    *err = GH_OK;
    return o;
fail:
    json_object_put(options);
    json_object_put(o);
    return NULL;
}

/* Commands of disabled features are registered too: whether a feature is
 * on is per guild, and the router answers "disabled" for them. */
int gh_registry_commands_json(struct gh_buf *out)
{
    json_object *arr = json_object_new_array();
    const char *text;
    int rc = GH_ENOMEM;

    if (!arr)
        goto out;
    for (size_t i = 0; gh_features[i]; i++) {
        const struct gh_feature *f = gh_features[i];
        for (size_t j = 0; j < f->n_commands; j++) {
            json_object *c = command_json(&f->commands[j], &rc);
            if (!c)
                goto out;
            json_object_array_add(arr, c);
        }
    }
    rc = GH_ENOMEM;
    text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text)
        goto out;
    rc = gh_buf_puts(out, text);
out:
    json_object_put(arr);
    return rc;
}
