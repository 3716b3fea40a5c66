/* jschema.h - the JSON Schema subset that every feature's settings use.
 *
 * One schema per feature (features/<name>/schema.json) is the single source
 * of a settings page: the API validates a PUT against it, and the dashboard
 * builds the form from it. The subset:
 *
 *   type         string, integer, number, boolean, object, array, null, or a
 *                non-empty array of these ("integer": a JSON integer, or a
 *                number without fraction such as 3.0)
 *   properties   object of schemas;  required: array of names;
 *   additionalProperties   boolean only (default true; our schemas say false)
 *   enum, const  JSON scalars, compared by type and value (1 == 1.0)
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum   numbers
 *   minLength, maxLength   code points of UTF-8 (invalid UTF-8 is an error)
 *   pattern      PCRE2, unanchored search, UTF mode, bounded by a match
 *                and depth limit: hitting them is a validation error
 *   items (one schema), minItems, maxItems, uniqueItems
 *   format       snowflake (15-20 digits, no leading zero, < 2^64), role,
 *                channel, user (a snowflake, then the ref hook), color
 *                (0..16777215 or "#rrggbb"), url (http(s):// with a host, no
 *                spaces, <= 2048 bytes), duration ("30s", "1h30m", "7d",
 *                "2w": units in decreasing order, total 1 s .. 365 d)
 *   snowflake    boolean: true is a synonym of "format": "snowflake"
 *   annotations  title, description, $comment (strings), default (any, must
 *                itself be valid), examples (array), x-premium ("premium" or
 *                "pro"), x-widget (string), x-order (integer), readOnly
 *                (boolean): checked for type, otherwise ignored here.
 *
 * Anything else ("$ref", "oneOf", "patternProperties", ...) is a schema
 * error. Formats apply to strings; numbers are also checked by "color"
 * (a number is accepted) and rejected by the id formats (ids are strings,
 * since JavaScript loses precision above 2^53); other types ignore format.
 *
 * Messages are written for the person filling in the form and are shown
 * next to the field that the error's path (a JSON pointer) names. Schemas
 * and documents are always *borrowed*: no function keeps a reference, and
 * only gh_jschema_apply_defaults changes its doc. */
#ifndef GH_WEB_JSCHEMA_H
#define GH_WEB_JSCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define GH_JSCHEMA_MAX_ERRORS 32
/* Deepest nesting of containers in a document ("[[1]]" is 2) and of
 * subschemas in a schema. */
#define GH_JSCHEMA_MAX_DEPTH 32
/* PCRE2 limits per match of "pattern". */
#define GH_JSCHEMA_MATCH_LIMIT 100000
#define GH_JSCHEMA_DEPTH_LIMIT 1000

struct gh_jschema_error {
    /* JSON pointer (RFC 6901) of the offending value: "" = the document,
     * "/thresholds/0/count"; for "is required", the missing member. A
     * pointer too long for the field ends in "...". */
    char path[128];
    char message[192]; /* "must be at most 100", "is required", ... */
};

struct gh_jschema_result {
    struct gh_jschema_error errors[GH_JSCHEMA_MAX_ERRORS];
    int n_errors;
    int truncated; /* 1 when more errors existed than the array holds */
};

/* Extra check for values whose schema has "format": "role", "channel" or
 * "user", called only after the value passed the snowflake check: path is
 * the value's JSON pointer, value its digits (both valid during the call).
 * Return 0 when acceptable; nonzero with msg (msgsz bytes, starts empty)
 * filled, e.g. "is not a role of this server" (empty msg: a generic one). */
typedef int (*gh_jschema_ref_fn)(void *arg, const char *format, const char *path, const char *value,
                                 char *msg, size_t msgsz);

/* Validates a schema itself: only the supported keywords, each with the
 * right type (maxLength a non-negative integer, pattern compiles, enum a
 * non-empty array of scalars, required an array of strings naming allowed
 * properties, x-premium "premium" or "pro", default valid against its
 * schema, nesting at most GH_JSCHEMA_MAX_DEPTH). schema borrowed (NULL is a
 * schema error). GH_OK; GH_EINVAL with the first problem in err as
 * "<schema pointer>: <problem>" ("(root)" for the top), e.g.
 * "/properties/name/maxLength: must be a non-negative integer"; GH_ENOMEM.
 * err may be NULL. */
int gh_jschema_check_schema(json_object *schema, char *err, size_t errsz);

/* Validates doc (borrowed, not modified; NULL is JSON null) against schema.
 * res (caller storage, may be NULL) is cleared and then filled. Returns
 *   GH_OK      doc is valid (res->n_errors == 0);
 *   GH_EINVAL  doc is invalid: every error (per object, missing required
 *              members first, then members in document order), up to
 *              GH_JSCHEMA_MAX_ERRORS (truncated set when there were more);
 *              a pattern that hit its limits counts ("could not be checked");
 *   GH_ECONFIG the schema itself is invalid (a server fault, not the
 *              user's): one error at path "" describing it;
 *   GH_ENOMEM.
 * ref may be NULL (role/channel/user then only need to be snowflakes); it
 * is called synchronously with arg. */
int gh_jschema_validate(json_object *schema, json_object *doc, gh_jschema_ref_fn ref, void *arg,
                        struct gh_jschema_result *res);

/* Premium annotation: properties (at any depth, and array items) whose
 * schema carries "x-premium": "premium" | "pro" and that doc sets to a value
 * different from that schema's "default" (no default: any value present
 * counts). Returns the highest rank required (0 none, 1 premium, 2 pro) and
 * lists those paths in res (caller storage, may be NULL; cleared first)
 * with "needs the premium tier" / "needs the pro tier". Borrowed arguments;
 * the schema is not checked here (validate it first). */
int gh_jschema_premium_needed(json_object *schema, json_object *doc, struct gh_jschema_result *res);

/* Adds the "default" of every top-level property that doc (an object) lacks,
 * as a deep copy owned by doc (for showing a feature's effective settings).
 * Members already present, even null, are kept. GH_OK; GH_EINVAL when doc
 * is not an object; GH_ENOMEM with doc unchanged. */
int gh_jschema_apply_defaults(json_object *schema, json_object *doc);

/* Parses a "duration" value (len bytes at s, e.g. "1h30m") into seconds.
 * GH_OK, or GH_EINVAL when malformed or outside 1 s .. 365 d. */
int gh_jschema_duration(const char *s, size_t len, uint64_t *seconds);

#endif
