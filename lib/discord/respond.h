/* respond.h - interaction responses and message bodies.
 *
 * Every builder sets allowed_mentions explicitly ({"parse":[]} unless the
 * caller passes users/roles to ping). Text that came from users must pass
 * through gh_escape_markdown before it is echoed. Output goes into a capped
 * buffer as the JSON body to send: the gh_resp_* builders replace the
 * buffer's content, and leave it empty when they fail. Content longer than
 * 2000 characters is cut on a UTF-8 boundary and ends with "\u2026". */
#ifndef GH_DISCORD_RESPOND_H
#define GH_DISCORD_RESPOND_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct gh_buf;

enum gh_callback_type {
    GH_CB_PONG = 1,
    GH_CB_MESSAGE = 4,
    GH_CB_DEFERRED_MESSAGE = 5,
    GH_CB_DEFERRED_UPDATE = 6,
    GH_CB_UPDATE_MESSAGE = 7,
    GH_CB_AUTOCOMPLETE = 8,
    GH_CB_MODAL = 9,
};

#define GH_MSG_EPHEMERAL (1 << 6)
#define GH_MSG_SUPPRESS_EMBEDS (1 << 2)

/* A message: content (may be NULL), embeds (borrowed array or NULL),
 * components (borrowed array or NULL), flags. Returns a new object with
 * allowed_mentions {"parse":[]}; caller puts. */
json_object *gh_msg_new(const char *content, json_object *embeds, json_object *components, int flags);
/* Makes a message POST idempotent: adds "nonce" (a 17-character string
 * derived from key, e.g. the job id: "j" + 16 hex digits of its FNV-1a 64
 * hash; Discord allows 25) and "enforce_nonce": true to msg, so a second POST
 * of the same key to the same channel within a few minutes returns the first
 * message instead of posting again (a job run twice, at-least-once). */
void gh_msg_set_nonce(json_object *msg, const char *key);

int gh_resp_pong(struct gh_buf *out);
/* {"type":4,"data":{content, flags, allowed_mentions}} */
int gh_resp_message(struct gh_buf *out, const char *content, int ephemeral);
/* type 4 or 7 with a full message object (borrowed). */
int gh_resp_with_message(struct gh_buf *out, int type, json_object *msg);
int gh_resp_deferred(struct gh_buf *out, int ephemeral);     /* type 5 */
int gh_resp_deferred_update(struct gh_buf *out);             /* type 6 */
int gh_resp_update(struct gh_buf *out, const char *content); /* type 7 */
/* components: borrowed array of Label/text input components. */
int gh_resp_modal(struct gh_buf *out, const char *custom_id, const char *title, json_object *components);
/* choices: borrowed array of {name, value}, at most 25 used. */
int gh_resp_autocomplete(struct gh_buf *out, json_object *choices);

/* Escapes Discord markdown (\ * _ ~ ` | anywhere; > # - at the start of a
 * line, where they make quotes, headings and lists) and neutralises mentions
 * (@everyone, @here, <@id>, <@&id>, <#id>) by inserting a zero-width space;
 * result truncated to fit size (never mid UTF-8 sequence). Returns out. */
char *gh_escape_markdown(const char *in, char *out, size_t size);

#endif
