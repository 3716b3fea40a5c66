/* commands.c - the events feature struct: its settings schema, the gateway
 * events it handles inline (caches, prefix detection) and as jobs, its job
 * kinds and the intents it needs. It has no slash commands of its own: its
 * prefix commands run the other features' commands (prefix.c, jobs.c). */
#include "features/events/events.h"

#include "gateway/intents.h"

/* The documented source is features/events/schema.json; a unit test checks
 * that this text is identical to it. */
static const char events_schema[] =
    "{\n"
    "  \"type\": \"object\",\n"
    "  \"title\": \"Events\",\n"
    "  \"properties\": {\n"
    "    \"prefix_enabled\": {\n"
    "      \"type\": \"boolean\",\n"
    "      \"title\": \"Prefix commands\",\n"
    "      \"description\": \"Lets members run the bot's slash commands as messages, e.g. !ping (legacy prefix commands).\",\n"
    "      \"default\": false\n"
    "    },\n"
    "    \"prefix\": {\n"
    "      \"type\": \"string\",\n"
    "      \"title\": \"Prefix\",\n"
    "      \"description\": \"What a prefix command starts with (1 to 5 characters, no spaces).\",\n"
    "      \"minLength\": 1,\n"
    "      \"maxLength\": 5,\n"
    "      \"pattern\": \"^[^\\\\s]{1,5}$\",\n"
    "      \"default\": \"!\"\n"
    "    },\n"
    "    \"commands\": {\n"
    "      \"type\": \"array\",\n"
    "      \"title\": \"Allowed commands\",\n"
    "      \"description\": \"Only these commands run as prefix commands; empty means every command.\",\n"
    "      \"items\": {\n"
    "        \"type\": \"string\",\n"
    "        \"pattern\": \"^[a-z0-9_-]{1,32}$\"\n"
    "      },\n"
    "      \"maxItems\": 100,\n"
    "      \"default\": []\n"
    "    }\n"
    "  },\n"
    "  \"additionalProperties\": false\n"
    "}\n";

/* Inline handlers keep the Redis caches (cache.c); job_fns (jobs.c) make
 * every event below a "gateway:event" job for the features of later issues. */
static const struct gh_event_handler events_handlers[] = {
    {"GUILD_CREATE", gh_events_guild_create, gh_events_job_guild_create, 0},
    {"GUILD_UPDATE", gh_events_guild_update, NULL, 0},
    {"GUILD_DELETE", gh_events_guild_delete, gh_events_job_guild_delete, 0},
    {"GUILD_ROLE_CREATE", gh_events_role_event, NULL, 0},
    {"GUILD_ROLE_UPDATE", gh_events_role_event, NULL, 0},
    {"GUILD_ROLE_DELETE", gh_events_role_event, NULL, 0},
    {"CHANNEL_CREATE", gh_events_channel_event, gh_events_job_generic, 0},
    {"CHANNEL_UPDATE", gh_events_channel_event, gh_events_job_generic, 0},
    {"CHANNEL_DELETE", gh_events_channel_event, gh_events_job_generic, 0},
    {"GUILD_MEMBER_ADD", gh_events_member_add, gh_events_job_generic, 0},
    {"GUILD_MEMBER_REMOVE", gh_events_member_remove, gh_events_job_generic, 0},
    {"GUILD_MEMBER_UPDATE", gh_events_member_update, gh_events_job_generic, 0},
    {"MESSAGE_CREATE", gh_events_message_create, gh_events_job_generic, 1},
    {"MESSAGE_UPDATE", gh_events_message_update, gh_events_job_generic, 0},
    {"MESSAGE_DELETE", gh_events_message_delete, gh_events_job_generic, 0},
    {"MESSAGE_DELETE_BULK", gh_events_message_delete, gh_events_job_generic, 0},
    {"MESSAGE_REACTION_ADD", NULL, gh_events_job_generic, 0},
    {"MESSAGE_REACTION_REMOVE", NULL, gh_events_job_generic, 0},
    {"MESSAGE_REACTION_REMOVE_ALL", NULL, gh_events_job_generic, 0},
    {"MESSAGE_REACTION_REMOVE_EMOJI", NULL, gh_events_job_generic, 0},
    {"INVITE_CREATE", NULL, gh_events_job_generic, 0},
    {"INVITE_DELETE", NULL, gh_events_job_generic, 0},
    {"VOICE_STATE_UPDATE", NULL, gh_events_job_generic, 0},
    {"GUILD_BAN_ADD", NULL, gh_events_job_generic, 0},
    {"GUILD_BAN_REMOVE", NULL, gh_events_job_generic, 0},
};

const struct gh_feature gh_feature_events = {
    .name = "events",
    .title = "Events",
    .description = "Gateway events: caches, event jobs and legacy prefix commands",
    .default_enabled = 1,
    .can_disable = 0,
    .jobs = gh_events_jobs,
    .n_jobs = 2,
    .settings_schema = events_schema,
    .events = events_handlers,
    .n_events = GH_COUNT(events_handlers),
    .intents = GH_INTENT_GUILDS | GH_INTENT_GUILD_MEMBERS | GH_INTENT_GUILD_MESSAGES |
               GH_INTENT_GUILD_MESSAGE_REACTIONS | GH_INTENT_GUILD_VOICE_STATES | GH_INTENT_GUILD_INVITES |
               GH_INTENT_GUILD_MODERATION | GH_INTENT_DIRECT_MESSAGES | GH_INTENT_MESSAGE_CONTENT,
};
