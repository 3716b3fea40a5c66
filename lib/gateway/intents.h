/* intents.h - Discord gateway intents (shared/reference/discord-protocol.md,
 * "Intents"). Features declare what they need (struct gh_feature.intents);
 * gateway-lite identifies with the union, privileged bits only when
 * GATEWAY_PRIVILEGED_INTENTS allows them. */
#ifndef GH_GATEWAY_INTENTS_H
#define GH_GATEWAY_INTENTS_H

#define GH_INTENT_GUILDS (1ull << 0)
#define GH_INTENT_GUILD_MEMBERS (1ull << 1) /* privileged */
#define GH_INTENT_GUILD_MODERATION (1ull << 2)
#define GH_INTENT_GUILD_EXPRESSIONS (1ull << 3)
#define GH_INTENT_GUILD_INTEGRATIONS (1ull << 4)
#define GH_INTENT_GUILD_WEBHOOKS (1ull << 5)
#define GH_INTENT_GUILD_INVITES (1ull << 6)
#define GH_INTENT_GUILD_VOICE_STATES (1ull << 7)
#define GH_INTENT_GUILD_PRESENCES (1ull << 8) /* privileged */
#define GH_INTENT_GUILD_MESSAGES (1ull << 9)
#define GH_INTENT_GUILD_MESSAGE_REACTIONS (1ull << 10)
#define GH_INTENT_GUILD_MESSAGE_TYPING (1ull << 11)
#define GH_INTENT_DIRECT_MESSAGES (1ull << 12)
#define GH_INTENT_DIRECT_MESSAGE_REACTIONS (1ull << 13)
#define GH_INTENT_DIRECT_MESSAGE_TYPING (1ull << 14)
#define GH_INTENT_MESSAGE_CONTENT (1ull << 15) /* privileged */
#define GH_INTENT_GUILD_SCHEDULED_EVENTS (1ull << 16)
#define GH_INTENT_AUTO_MODERATION_CONFIGURATION (1ull << 20)
#define GH_INTENT_AUTO_MODERATION_EXECUTION (1ull << 21)
#define GH_INTENT_GUILD_MESSAGE_POLLS (1ull << 24)
#define GH_INTENT_DIRECT_MESSAGE_POLLS (1ull << 25)

#define GH_INTENTS_PRIVILEGED (GH_INTENT_GUILD_MEMBERS | GH_INTENT_GUILD_PRESENCES | GH_INTENT_MESSAGE_CONTENT)

#endif
