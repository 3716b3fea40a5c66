/* interaction.h - an incoming interaction parsed into a struct.
 *
 * Parsing checks the shape the router relies on (type, id, token,
 * application_id, data.name for commands, data.custom_id for components and
 * modals); everything else stays reachable through root. */
#ifndef GH_DISCORD_INTERACTION_H
#define GH_DISCORD_INTERACTION_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

enum gh_interaction_type {
    GH_IX_PING = 1,
    GH_IX_APPLICATION_COMMAND = 2,
    GH_IX_MESSAGE_COMPONENT = 3,
    GH_IX_AUTOCOMPLETE = 4,
    GH_IX_MODAL_SUBMIT = 5,
};

struct gh_interaction {
    int type;
    uint64_t id;
    uint64_t application_id;
    const char *token;           /* borrowed from root */
    uint64_t guild_id;           /* 0 in DMs */
    uint64_t channel_id;         /* 0 when absent */
    uint64_t user_id;            /* member.user.id or user.id */
    const char *username;        /* borrowed, may be NULL */
    const char *global_name;     /* borrowed, may be NULL */
    int has_member;              /* invoked in a guild */
    uint64_t member_permissions; /* member.permissions */
    uint64_t app_permissions;    /* app_permissions */
    json_object *member_roles;   /* borrowed array of role id strings, or NULL */
    const char *locale;          /* borrowed, may be NULL */
    int context;                 /* 0 guild, 1 bot DM, 2 private channel; -1 absent */
    /* data */
    const char *command_name; /* types 2 and 4 */
    int command_type;         /* 1 chat input, 2 user, 3 message */
    uint64_t target_id;       /* user/message commands */
    json_object *options;     /* borrowed data.options array, or NULL */
    const char *custom_id;    /* types 3 and 5 */
    int component_type;
    json_object *data; /* borrowed data object, or NULL */
    json_object *root; /* owned: gh_interaction_cleanup releases it */
};

/* body need not be NUL-terminated. Returns GH_OK, GH_EJSON (not JSON, or not
 * an object) or GH_EINVAL (a required field missing or of the wrong type;
 * err describes which). */
int gh_interaction_parse(const char *body, size_t len, struct gh_interaction *ix, char *err, size_t errlen);
void gh_interaction_cleanup(struct gh_interaction *ix);

/* Options of the command (subcommands are searched through, first match).
 * Returns the borrowed option object or NULL. */
json_object *gh_interaction_option(const struct gh_interaction *ix, const char *name);
const char *gh_interaction_option_str(const struct gh_interaction *ix, const char *name);
int gh_interaction_option_int(const struct gh_interaction *ix, const char *name, int64_t *out);
int gh_interaction_option_bool(const struct gh_interaction *ix, const char *name, int *out);
/* The chosen subcommand name (first SUB_COMMAND option), or NULL. */
const char *gh_interaction_subcommand(const struct gh_interaction *ix);

/* "123" -> 123, strict; 0 on anything else. */
uint64_t gh_snowflake_parse(const char *s);

#endif
