/* automod.h - the AutoMod feature (issue 7, item 4): rules checked on every
 * guild message in gateway-lite's hot path, the urgent REST calls (delete,
 * timeout) issued from the loop, everything else (the offence row, warn /
 * kick / ban through moderation) as one job per (message, rule).
 *
 *   rules.c       pure: text normalisation, each rule's matcher, the
 *                 settings document parsed into struct gh_am_settings
 *                 (regexes compiled once), exemptions, the decision for
 *                 one message                         gh_am_settings_*, gh_am_check*, gh_am_norm*
 *   events.c      the inline MESSAGE_CREATE / MESSAGE_UPDATE handler: the
 *                 settings cache, the Redis pipeline of the rate and repeat
 *                 rules, gh_rest_submit, the offence job  gh_am_inline
 *   store.c       offences in PostgreSQL                   gh_am_offence_*
 *   jobs.c        "automod:offence"                         gh_am_jobs[]
 *   api.c         offences list, test endpoint              gh_am_routes[]
 *   commands.c    the feature struct and the settings schema (schema.json)
 *
 * Redis keys (all with TTLs): bot:{<g>}:automod:rate:<user> (INCR, EXPIRE
 * window), bot:{<g>}:automod:recent:<user> (LIST of the last K similarity
 * hashes, EXPIRE window). Table: sql/0009_automod.up.sql (automod_offences).
 * docs/features/automod.md documents the rules and what each one catches. */
#ifndef GH_FEATURES_AUTOMOD_H
#define GH_FEATURES_AUTOMOD_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "api/api.h"
#include "features/registry.h"

struct gh_ctx;

extern const struct gh_feature gh_feature_automod;

/* ---- rules (X-macro: id, name in settings / offences / API, title) */
#define GH_AM_RULES(X)                                                                                       \
    X(GH_AM_RATE, "rate", "Message rate")                                                                    \
    X(GH_AM_REPEAT, "repeat", "Repeated messages")                                                           \
    X(GH_AM_CAPS, "caps", "Excessive capitals")                                                              \
    X(GH_AM_INVITES, "invites", "Discord invites")                                                           \
    X(GH_AM_LINKS, "links", "Links")                                                                         \
    X(GH_AM_WORDS, "words", "Blocked words")                                                                 \
    X(GH_AM_REGEX, "regex", "Patterns")                                                                      \
    X(GH_AM_MENTIONS, "mentions", "Mass mentions")

enum gh_am_rule {
#define GH_AM_RULE_ENUM(id, name, title) id,
    GH_AM_RULES(GH_AM_RULE_ENUM)
#undef GH_AM_RULE_ENUM
        GH_AM_RULE_COUNT
};
const char *gh_am_rule_name(enum gh_am_rule r);  /* "rate" */
const char *gh_am_rule_title(enum gh_am_rule r); /* "Message rate" */
int gh_am_rule_parse(const char *name);          /* -1 when unknown */

/* ---- actions (bits; several combine) */
#define GH_AM_ACTIONS(X)                                                                                     \
    X(GH_AM_ACT_DELETE, 1u << 0, "delete")                                                                   \
    X(GH_AM_ACT_WARN, 1u << 1, "warn")                                                                       \
    X(GH_AM_ACT_TIMEOUT, 1u << 2, "timeout")                                                                 \
    X(GH_AM_ACT_KICK, 1u << 3, "kick")                                                                       \
    X(GH_AM_ACT_BAN, 1u << 4, "ban")                                                                         \
    X(GH_AM_ACT_LOG, 1u << 5, "log")
enum {
#define GH_AM_ACT_ENUM(id, bit, name) id = bit,
    GH_AM_ACTIONS(GH_AM_ACT_ENUM)
#undef GH_AM_ACT_ENUM
};
#define GH_AM_ACT_ALL 0x3fu
/* Bit of an action name, 0 when unknown. */
unsigned gh_am_action_bit(const char *name);
/* "delete,warn" (comma-separated, in the order above) into out; "" for 0. */
void gh_am_actions_text(unsigned actions, char *out, size_t n);

/* ---- settings (schema.json; parsed once per cache load) */

#define GH_AM_MAX_EXEMPT 25
#define GH_AM_MAX_DOMAINS 100
#define GH_AM_MAX_WORDS 500   /* hard cap at load (premium) */
#define GH_AM_MAX_REGEX 25    /* hard cap at load (premium) */
#define GH_AM_FREE_WORDS 20   /* free tier: "words" only; "premium_words" needs premium */
#define GH_AM_FREE_REGEX 3    /* free tier: "patterns" only; "premium_patterns" needs premium */
#define GH_AM_REGEX_MATCH_LIMIT 10000
#define GH_AM_REGEX_DEPTH_LIMIT 200
#define GH_AM_REPEAT_HISTORY_MAX 20
#define GH_AM_EXCERPT_MAX 300 /* bytes of content kept in an offence */
#define GH_AM_MATCHED_MAX 100 /* bytes of matched text kept */

struct gh_am_rule_cfg {
    int enabled;
    int log_only;       /* detect and record, act on nothing */
    unsigned actions;   /* GH_AM_ACT_* */
    int64_t timeout_s;  /* for GH_AM_ACT_TIMEOUT (1 s .. 28 d) */
    uint64_t exempt_roles[GH_AM_MAX_EXEMPT];
    int n_exempt_roles;
    uint64_t exempt_channels[GH_AM_MAX_EXEMPT];
    int n_exempt_channels;
};

struct gh_am_regex; /* compiled pattern (rules.c) */

struct gh_am_settings {
    uint64_t guild_id;
    int enabled;         /* the feature toggle ("enabled", default off) */
    int exempt_managers; /* members holding a role with Administrator or Manage Server skip AutoMod */
    uint64_t exempt_roles[GH_AM_MAX_EXEMPT];
    int n_exempt_roles;
    uint64_t exempt_channels[GH_AM_MAX_EXEMPT];
    int n_exempt_channels;
    struct gh_am_rule_cfg rule[GH_AM_RULE_COUNT];
    /* rule parameters */
    int rate_max;       /* more than this many messages ... */
    int rate_window_s;  /* ... within this window (TTL of the counter) */
    int repeat_max;     /* this many similar messages (the current one included) ... */
    int repeat_history; /* ... among the last K kept ... */
    int repeat_window_s;
    int caps_percent;     /* upper-case letters / letters >= this */
    int caps_min_letters; /* and at least this many letters */
    int invites_allow_own; /* reserved: invites to this guild's vanity (not checked yet) */
    int links_allow_mode;  /* 1: only listed domains allowed; 0: listed domains denied */
    char *domains[GH_AM_MAX_DOMAINS]; /* lower case, no leading dot (owned) */
    int n_domains;
    char *words[GH_AM_MAX_WORDS]; /* normalised (see gh_am_norm_word) (owned) */
    int n_words;
    int n_words_free; /* of n_words, how many came from "words" (the rest: premium_words) */
    /* index over words (rebuilt after every change of the list): single-token
     * entries in an open-addressing table (index + 1, 0 = empty), phrases listed */
    int16_t word_tab[1024];
    int16_t phrases[GH_AM_MAX_WORDS];
    int n_phrases;
    struct gh_am_regex *regex[GH_AM_MAX_REGEX];
    int n_regex;
    int n_regex_free;
    int n_regex_invalid; /* patterns that did not compile (skipped) */
    int mention_everyone; /* @everyone / @here counts */
    int mention_max;      /* more than this many user + role mentions; 0 = no limit */
    /* filled by events.c after a load (not by the parser) */
    int post_loaded;
    int premium_rank;
    uint64_t manager_roles[64]; /* roles with Administrator / Manage Server (from the role cache) */
    int n_manager_roles;
    uint64_t owner_id; /* the guild owner (from the guild cache), never checked; 0 = unknown */
};

/* Parses a settings document (borrowed; an empty object = defaults) into a
 * new struct (caller frees with gh_am_settings_free). Entries beyond the
 * hard caps and patterns that do not compile are ignored and logged to lg
 * (may be NULL). NULL only when out of memory. */
struct gh_logger;
struct gh_am_settings *gh_am_settings_parse(json_object *doc, uint64_t guild_id, const struct gh_logger *lg);
void gh_am_settings_free(struct gh_am_settings *s);
/* Drops the premium lists (premium_words / premium_patterns) when the
 * guild's tier is below premium (the load-time gate). */
void gh_am_settings_apply_tier(struct gh_am_settings *s, int premium_rank, const struct gh_logger *lg);

/* ---- one message, as the rules see it */
struct gh_am_msg {
    uint64_t guild_id, channel_id, message_id, author_id;
    const char *content; /* borrowed, len bytes (not necessarily NUL-terminated) */
    size_t len;
    const uint64_t *roles; /* the author's role ids (borrowed) */
    int n_roles;
    int mention_everyone; /* Discord's flag: @everyone or @here that pinged */
    int n_mentions;       /* user mentions + role mentions */
    int is_edit;          /* MESSAGE_UPDATE: only the content rules run */
};

/* A hit of one rule. */
struct gh_am_hit {
    enum gh_am_rule rule;
    unsigned actions; /* what will be done (0 when log_only) */
    int log_only;
    char matched[GH_AM_MATCHED_MAX + 1];
};

/* Counters the caller found in Redis for the message (rate and repeat
 * rules); -1 when unknown (Redis down: those rules are skipped). */
struct gh_am_counters {
    long long rate_count;   /* messages of this user in the window, this one included */
    int repeat_count;       /* similar messages in the history, this one included */
};

/* 1 when the message is exempt from AutoMod altogether (global exempt
 * channel or role, manager role, the guild owner). */
int gh_am_exempt_all(const struct gh_am_settings *s, const struct gh_am_msg *m);
/* 1 when rule r is off for the message (disabled, or its own exemptions). */
int gh_am_rule_skipped(const struct gh_am_settings *s, enum gh_am_rule r, const struct gh_am_msg *m);

/* Runs every enabled rule on m: the content rules on the text, the rate and
 * repeat rules on c (NULL or -1 fields = skipped). Writes up to max hits,
 * returns how many. Pure: no I/O; a regex hitting its limits counts as no
 * match and *regex_overflow (may be NULL) is incremented. */
int gh_am_check(const struct gh_am_settings *s, const struct gh_am_msg *m, const struct gh_am_counters *c,
                struct gh_am_hit *hits, int max, int *regex_overflow);

/* Single matchers (pure; matched gets the matched text, may be NULL). */
int gh_am_match_invite(const char *text, size_t len, char *matched, size_t mlen);
/* mode 1 allow list, 0 deny list. */
int gh_am_match_links(const char *text, size_t len, char *const *domains, int n, int allow_mode, char *matched,
                      size_t mlen);
int gh_am_match_words(const char *text, size_t len, char *const *words, int n, char *matched, size_t mlen);
int gh_am_match_caps(const char *text, size_t len, int percent, int min_letters);
/* 1 match, 0 none, -1 limit hit (counts as no match). */
int gh_am_match_regex(const struct gh_am_regex *re, const char *text, size_t len, char *matched, size_t mlen);
/* Compiles one pattern (case-insensitive, UTF); NULL with err filled. */
struct gh_am_regex *gh_am_regex_new(const char *pattern, char *err, size_t errsz);
void gh_am_regex_free(struct gh_am_regex *re);

/* Normalises a word for the word list: lower case ASCII, leet digits and
 * symbols mapped to letters (0->o 1->i 3->e 4->a 5->s 7->t @->a $->s),
 * accents and non-letters removed; returns the length written (out holds
 * n bytes with the NUL). */
size_t gh_am_norm_word(const char *in, size_t len, char *out, size_t n);
/* The similarity hash of a message for the repeat rule: 64-bit FNV-1a over
 * the text lower-cased, digits dropped, punctuation and whitespace
 * collapsed, so "Buy now!!" and "buy   now 123" collide. 0 for a message
 * with no letters (never counted). */
uint64_t gh_am_simhash(const char *text, size_t len);

/* ---- events.c */
/* The inline handler (MESSAGE_CREATE and MESSAGE_UPDATE). */
int gh_am_inline(struct gh_ctx *ctx, struct gh_event *const *evs, int n);
/* Drops the process's parsed settings of a guild (0 = all): tests. */
void gh_am_forget(uint64_t guild_id);

/* ---- store.c */
struct gh_am_offence {
    uint64_t guild_id, user_id, channel_id, message_id;
    enum gh_am_rule rule;
    unsigned actions;
    int log_only;
    int is_edit;
    const char *excerpt; /* borrowed */
    const char *matched; /* borrowed */
    int64_t message_ms;  /* when AutoMod saw it (wall clock) */
};
/* Inserts the offence (the guild row created if missing); *created = 0 when
 * the (guild, message, rule) row existed (a repeated job) and *done tells
 * whether its actions already ran. GH_OK, GH_EPG, GH_EINVAL. */
int gh_am_offence_record(struct gh_ctx *ctx, const struct gh_am_offence *o, int *created, int *done);
/* Marks the offence's actions run, with the outcome text. */
int gh_am_offence_done(struct gh_ctx *ctx, uint64_t guild_id, uint64_t message_id, enum gh_am_rule rule,
                       const char *outcome);
/* Newest first: user (0 = any), rule (-1 = any), before_id (0 = newest),
 * limit 1..100. *out: array (caller puts), *total. */
int gh_am_offence_list(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int rule, int64_t before_id,
                       int limit, json_object **out, int64_t *total);

/* ---- jobs.c / api.c */
#define GH_AM_JOB_OFFENCE "automod:offence"
#define GH_AM_N_JOBS 1
extern const struct gh_job_kind gh_am_jobs[GH_AM_N_JOBS];
#define GH_AM_N_ROUTES 2
extern const struct gh_api_route gh_am_routes[GH_AM_N_ROUTES];
#define GH_AM_N_EVENTS 2
extern const struct gh_event_handler gh_am_events[GH_AM_N_EVENTS];

/* The settings schema text (commands.c; identical to schema.json). */
extern const char gh_am_schema[];

#endif
