/* gwconfig.c - --shards, intents and identify order (see gwconfig.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "features/registry.h"
#include "gateway/gwconfig.h"
#include "gateway/intents.h"

static int parse_int(const char **p, int *out)
{
    const char *s = *p;
    long v = 0;

    if (!isdigit((unsigned char)*s))
        return 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > 1000000)
            return 0;
        s++;
    }
    *out = (int)v;
    *p = s;
    return 1;
}

int gh_gwconfig_parse_shards(const char *arg, struct gh_gw_range *out, char *err, size_t errlen)
{
    const char *p = arg;
    int first, last, count;

    if (!arg || !*arg) {
        snprintf(err, errlen, "--shards needs a value like 0-3/8 (shards 0 to 3 of 8)");
        return GH_EINVAL;
    }
    if (!parse_int(&p, &first))
        goto bad;
    last = first;
    if (*p == '-') {
        p++;
        if (!parse_int(&p, &last))
            goto bad;
    }
    if (*p != '/')
        goto bad;
    p++;
    if (!parse_int(&p, &count) || *p != '\0')
        goto bad;
    if (count < 1 || count > GH_GW_MAX_SHARDS) {
        snprintf(err, errlen, "--shards %s: the shard count must be 1 to %d", arg, GH_GW_MAX_SHARDS);
        return GH_EINVAL;
    }
    if (first > last) {
        snprintf(err, errlen, "--shards %s: the first shard is after the last", arg);
        return GH_EINVAL;
    }
    if (last >= count) {
        snprintf(err, errlen, "--shards %s: shard ids go from 0 to %d (count - 1)", arg, count - 1);
        return GH_EINVAL;
    }
    out->first = first;
    out->last = last;
    out->count = count;
    return GH_OK;
bad:
    snprintf(err, errlen, "--shards %s: expected i-j/N (shards i to j of N) or i/N, e.g. 0-3/8", arg);
    return GH_EINVAL;
}

static const struct {
    const char *name, *alt;
    uint64_t bit;
} privileged_names[] = {
    {"members", "guild_members", GH_INTENT_GUILD_MEMBERS},
    {"presences", "guild_presences", GH_INTENT_GUILD_PRESENCES},
    {"message_content", "message_content", GH_INTENT_MESSAGE_CONTENT},
};

int gh_gwconfig_parse_privileged(const char *list, uint64_t *out, char *err, size_t errlen)
{
    uint64_t bits = 0;
    const char *p = list ? list : "";

    while (*p) {
        char word[64];
        size_t n = 0;
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        while (*p && *p != ',' && !isspace((unsigned char)*p)) {
            if (n + 1 < sizeof(word))
                word[n++] = (char)tolower((unsigned char)*p);
            p++;
        }
        word[n] = '\0';
        if (n == 0)
            continue;
        size_t i;
        for (i = 0; i < GH_COUNT(privileged_names); i++)
            if (strcmp(word, privileged_names[i].name) == 0 || strcmp(word, privileged_names[i].alt) == 0)
                break;
        if (i == GH_COUNT(privileged_names)) {
            snprintf(err, errlen,
                     "GATEWAY_PRIVILEGED_INTENTS: unknown intent '%s' (allowed: members, presences, "
                     "message_content)",
                     word);
            return GH_EINVAL;
        }
        bits |= privileged_names[i].bit;
    }
    *out = bits;
    return GH_OK;
}

static const struct {
    uint64_t bit;
    const char *name;
} intent_names[] = {
    {GH_INTENT_GUILDS, "GUILDS"},
    {GH_INTENT_GUILD_MEMBERS, "GUILD_MEMBERS"},
    {GH_INTENT_GUILD_MODERATION, "GUILD_MODERATION"},
    {GH_INTENT_GUILD_EXPRESSIONS, "GUILD_EXPRESSIONS"},
    {GH_INTENT_GUILD_INTEGRATIONS, "GUILD_INTEGRATIONS"},
    {GH_INTENT_GUILD_WEBHOOKS, "GUILD_WEBHOOKS"},
    {GH_INTENT_GUILD_INVITES, "GUILD_INVITES"},
    {GH_INTENT_GUILD_VOICE_STATES, "GUILD_VOICE_STATES"},
    {GH_INTENT_GUILD_PRESENCES, "GUILD_PRESENCES"},
    {GH_INTENT_GUILD_MESSAGES, "GUILD_MESSAGES"},
    {GH_INTENT_GUILD_MESSAGE_REACTIONS, "GUILD_MESSAGE_REACTIONS"},
    {GH_INTENT_GUILD_MESSAGE_TYPING, "GUILD_MESSAGE_TYPING"},
    {GH_INTENT_DIRECT_MESSAGES, "DIRECT_MESSAGES"},
    {GH_INTENT_DIRECT_MESSAGE_REACTIONS, "DIRECT_MESSAGE_REACTIONS"},
    {GH_INTENT_DIRECT_MESSAGE_TYPING, "DIRECT_MESSAGE_TYPING"},
    {GH_INTENT_MESSAGE_CONTENT, "MESSAGE_CONTENT"},
    {GH_INTENT_GUILD_SCHEDULED_EVENTS, "GUILD_SCHEDULED_EVENTS"},
    {GH_INTENT_AUTO_MODERATION_CONFIGURATION, "AUTO_MODERATION_CONFIGURATION"},
    {GH_INTENT_AUTO_MODERATION_EXECUTION, "AUTO_MODERATION_EXECUTION"},
    {GH_INTENT_GUILD_MESSAGE_POLLS, "GUILD_MESSAGE_POLLS"},
    {GH_INTENT_DIRECT_MESSAGE_POLLS, "DIRECT_MESSAGE_POLLS"},
};

void gh_gwconfig_intents_text(uint64_t intents, char *out, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < GH_COUNT(intent_names); i++) {
        if (!(intents & intent_names[i].bit))
            continue;
        int w = snprintf(out + used, size - used, "%s%s", used ? "|" : "", intent_names[i].name);
        if (w < 0 || (size_t)w >= size - used) {
            out[used] = '\0';
            return;
        }
        used += (size_t)w;
    }
    if (used == 0)
        snprintf(out, size, "none");
}

static const char *what_is_lost(uint64_t bit)
{
    if (bit == GH_INTENT_GUILD_MEMBERS)
        return "no member join/leave/update events";
    if (bit == GH_INTENT_GUILD_PRESENCES)
        return "no presence updates";
    return "message content is empty in guild messages (AutoMod content rules, prefix commands see nothing)";
}

uint64_t gh_gwconfig_intents(int64_t override, const struct gh_feature *const *features, uint64_t allowed,
                             uint64_t *dropped, const struct gh_logger *lg)
{
    uint64_t want = 0, drop;
    char text[512];

    if (override >= 0) {
        want = (uint64_t) override;
    } else {
        want = GH_INTENT_GUILDS;
        for (size_t i = 0; features && features[i]; i++)
            want |= features[i]->intents;
    }
    drop = want & GH_INTENTS_PRIVILEGED & ~allowed;
    if (lg) {
        for (size_t b = 0; b < GH_COUNT(intent_names); b++) {
            uint64_t bit = intent_names[b].bit;
            if (!(drop & bit))
                continue;
            char who[256] = "";
            size_t used = 0;
            for (size_t i = 0; features && features[i]; i++) {
                if (!(features[i]->intents & bit))
                    continue;
                int w = snprintf(who + used, sizeof(who) - used, "%s%s", used ? ", " : "", features[i]->name);
                if (w < 0 || (size_t)w >= sizeof(who) - used)
                    break;
                used += (size_t)w;
            }
            GH_INFO(lg,
                    "gateway: privileged intent %s not enabled (GATEWAY_PRIVILEGED_INTENTS): dropped; %s%s%s",
                    intent_names[b].name, what_is_lost(bit), used ? "; features affected: " : "",
                    used ? who : (override >= 0 ? " (from GATEWAY_INTENTS)" : ""));
        }
    }
    want &= ~drop;
    if (dropped)
        *dropped = drop;
    if (lg) {
        gh_gwconfig_intents_text(want, text, sizeof(text));
        GH_INFO(lg, "gateway: identifying with intents %llu (%s)%s", (unsigned long long)want, text,
                override >= 0 ? " from GATEWAY_INTENTS" : " from the features");
    }
    return want;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

int gh_gwconfig_identify_picks(const int *candidates, int n, int max_concurrency, const int64_t *key_free_at,
                               int64_t now_ms, int *picks, int max_picks)
{
    int sorted[GH_GW_MAX_SHARDS];
    int used_key[GH_GW_MAX_SHARDS];
    int np = 0;

    if (max_concurrency < 1)
        max_concurrency = 1;
    if (max_concurrency > GH_GW_MAX_SHARDS)
        max_concurrency = GH_GW_MAX_SHARDS;
    if (n > GH_GW_MAX_SHARDS)
        n = GH_GW_MAX_SHARDS;
    memcpy(sorted, candidates, sizeof(int) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(int), cmp_int);
    memset(used_key, 0, sizeof(int) * (size_t)max_concurrency);
    for (int i = 0; i < n && np < max_picks; i++) {
        int key = sorted[i] % max_concurrency;
        /* A lower shard of this bucket is waiting (picked or blocked): later
         * ones wait behind it, so buckets start in order. */
        if (used_key[key])
            continue;
        used_key[key] = 1;
        if (key_free_at && key_free_at[key] > now_ms)
            continue;
        picks[np++] = sorted[i];
    }
    return np;
}
