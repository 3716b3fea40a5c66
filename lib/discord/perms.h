/* perms.h - Discord permission bits (64-bit, decimal strings on the wire). */
#ifndef GH_DISCORD_PERMS_H
#define GH_DISCORD_PERMS_H

#include <stddef.h>
#include <stdint.h>

#define GH_PERMS(X)                                                                                          \
    X(CREATE_INSTANT_INVITE, 0)                                                                              \
    X(KICK_MEMBERS, 1)                                                                                       \
    X(BAN_MEMBERS, 2)                                                                                        \
    X(ADMINISTRATOR, 3)                                                                                      \
    X(MANAGE_CHANNELS, 4)                                                                                    \
    X(MANAGE_GUILD, 5)                                                                                       \
    X(ADD_REACTIONS, 6)                                                                                      \
    X(VIEW_AUDIT_LOG, 7)                                                                                     \
    X(VIEW_CHANNEL, 10)                                                                                      \
    X(SEND_MESSAGES, 11)                                                                                     \
    X(MANAGE_MESSAGES, 13)                                                                                   \
    X(EMBED_LINKS, 14)                                                                                       \
    X(ATTACH_FILES, 15)                                                                                      \
    X(READ_MESSAGE_HISTORY, 16)                                                                              \
    X(MENTION_EVERYONE, 17)                                                                                  \
    X(USE_EXTERNAL_EMOJIS, 18)                                                                               \
    X(CONNECT, 20)                                                                                           \
    X(MUTE_MEMBERS, 22)                                                                                      \
    X(DEAFEN_MEMBERS, 23)                                                                                    \
    X(MOVE_MEMBERS, 24)                                                                                      \
    X(CHANGE_NICKNAME, 26)                                                                                   \
    X(MANAGE_NICKNAMES, 27)                                                                                  \
    X(MANAGE_ROLES, 28)                                                                                      \
    X(MANAGE_WEBHOOKS, 29)                                                                                   \
    X(MANAGE_GUILD_EXPRESSIONS, 30)                                                                          \
    X(USE_APPLICATION_COMMANDS, 31)                                                                          \
    X(MANAGE_EVENTS, 33)                                                                                     \
    X(MANAGE_THREADS, 34)                                                                                    \
    X(CREATE_PUBLIC_THREADS, 35)                                                                             \
    X(CREATE_PRIVATE_THREADS, 36)                                                                            \
    X(SEND_MESSAGES_IN_THREADS, 38)                                                                          \
    X(MODERATE_MEMBERS, 40)                                                                                  \
    X(PIN_MESSAGES, 51)                                                                                      \
    X(BYPASS_SLOWMODE, 52)

enum gh_perm_bit {
#define GH_PERM_ENUM(name, bit) GH_PERM_##name = (bit),
    GH_PERMS(GH_PERM_ENUM)
#undef GH_PERM_ENUM
};

#define GH_PERM(name) (UINT64_C(1) << GH_PERM_##name)

/* Decimal string -> bits. GH_OK or GH_EINVAL. */
int gh_perms_parse(const char *s, uint64_t *out);
/* 1 when perms include all of need (ADMINISTRATOR implies everything). */
int gh_perms_has(uint64_t perms, uint64_t need);
/* Comma-separated names of the bits of need missing from perms, e.g.
 * "Ban Members, Manage Roles", into out. */
void gh_perms_missing(uint64_t perms, uint64_t need, char *out, size_t size);
/* Human name of one bit ("Ban Members"); NULL for undefined bits. */
const char *gh_perm_name(int bit);

#endif
