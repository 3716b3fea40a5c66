/* rules.c - AutoMod's rules, pure: text normalisation, the matchers, the
 * settings document parsed into struct gh_am_settings, exemptions and the
 * decision for one message. No I/O: the rate and repeat rules get their
 * counters from the caller (events.c reads them from Redis).
 *
 * Everything on the per-message path works in fixed stack buffers (a
 * Discord message is at most 4000 characters, so 16 KiB holds any
 * normalised form); nothing is allocated per message. Regexes are compiled
 * once per settings load, with their match data, JIT when PCRE2 has it, and
 * a match and depth limit: a pattern that hits a limit counts as no match
 * (the caller logs it). */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pcre2.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "features/automod/automod.h"
#include "web/jschema.h"

#define NORM_MAX 16384
#define TIMEOUT_MAX_S ((int64_t)28 * 86400)

/* ------------------------------------------------------------ names */

static const char *const rule_names[GH_AM_RULE_COUNT] = {
#define GH_AM_RULE_NAME(id, name, title) name,
    GH_AM_RULES(GH_AM_RULE_NAME)
#undef GH_AM_RULE_NAME
};
static const char *const rule_titles[GH_AM_RULE_COUNT] = {
#define GH_AM_RULE_TITLE(id, name, title) title,
    GH_AM_RULES(GH_AM_RULE_TITLE)
#undef GH_AM_RULE_TITLE
};

const char *gh_am_rule_name(enum gh_am_rule r)
{
    return (int)r >= 0 && r < GH_AM_RULE_COUNT ? rule_names[r] : "unknown";
}

const char *gh_am_rule_title(enum gh_am_rule r)
{
    return (int)r >= 0 && r < GH_AM_RULE_COUNT ? rule_titles[r] : "Unknown";
}

int gh_am_rule_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < GH_AM_RULE_COUNT; i++)
        if (strcmp(rule_names[i], name) == 0)
            return i;
    return -1;
}

static const struct {
    unsigned bit;
    const char *name;
} action_names[] = {
#define GH_AM_ACT_NAME(id, bit, name) {bit, name},
    GH_AM_ACTIONS(GH_AM_ACT_NAME)
#undef GH_AM_ACT_NAME
};

unsigned gh_am_action_bit(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
        if (strcmp(action_names[i].name, name) == 0)
            return action_names[i].bit;
    return 0;
}

void gh_am_actions_text(unsigned actions, char *out, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
        if (!(actions & action_names[i].bit))
            continue;
        int w = snprintf(out + used, n - used, "%s%s", used ? "," : "", action_names[i].name);
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
}

/* ------------------------------------------------------------ text helpers */

/* Length of an invisible code point at p (zero-width space/joiners, word
 * joiner, BOM, soft hyphen), 0 when p is something else. */
static size_t invisible_len(const unsigned char *p, size_t left)
{
    if (left >= 2 && p[0] == 0xc2 && p[1] == 0xad)
        return 2; /* U+00AD soft hyphen */
    if (left >= 3 && p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0x8b && p[2] <= 0x8f)
        return 3; /* U+200B..U+200F */
    if (left >= 3 && p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa0 && p[2] <= 0xa4)
        return 3; /* U+2060..U+2064 */
    if (left >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        return 3; /* U+FEFF */
    return 0;
}

/* Punctuation look-alikes: fullwidth and ideographic dots and slashes, one
 * ASCII byte or 0 (consumed *used bytes). */
static char lookalike(const unsigned char *p, size_t left, size_t *used)
{
    if (left >= 3 && p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x82) {
        *used = 3;
        return '.'; /* U+3002 ideographic full stop */
    }
    if (left >= 3 && p[0] == 0xef && p[1] == 0xbc && (p[2] == 0x8e || p[2] == 0x8f)) {
        *used = 3;
        return p[2] == 0x8e ? '.' : '/'; /* U+FF0E, U+FF0F */
    }
    if (left >= 3 && p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0xa4) {
        *used = 3;
        return '.'; /* U+2024 one dot leader */
    }
    if (left >= 2 && p[0] == 0xc2 && p[1] == 0xb7) {
        *used = 2;
        return '.'; /* U+00B7 middle dot */
    }
    return 0;
}

/* Latin-1 letters with accents (U+00C0..U+00FF as C3 80..BF) to ASCII. */
static char unaccent(unsigned char b)
{
    static const char map[64] = "aaaaaaaceeeeiiiidnooooo/ouuuuyts"
                                "aaaaaaaceeeeiiiidnooooo/ouuuuyty";
    if (b < 0x80 || b > 0xbf)
        return 0;
    char c = map[b - 0x80];
    return c == '/' ? 0 : c;
}

/* The "compact" form used to find invites and links: lower case, every
 * whitespace and invisible character dropped, look-alike punctuation made
 * ASCII, "(dot)", "[dot]", "[.]", "(.)", "{.}" made ".", "hxxp" made "http",
 * backslashes made slashes. offs[i] (may be NULL) gets the offset in the
 * original text of out[i], gap[i] (may be NULL) is 1 when whitespace (or the
 * start) came before it. Returns the length. */
static size_t compact(const char *text, size_t len, char *out, size_t n, size_t *offs, unsigned char *gap)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, o = 0;
    int spaced = 1;
    while (i < len && o + 1 < n) {
        size_t skip = invisible_len(p + i, len - i), used = 0;
        char c;
        if (skip) {
            i += skip;
            continue;
        }
        if (isspace(p[i])) {
            i++;
            spaced = 1;
            continue;
        }
        if (gap)
            gap[o] = (unsigned char)spaced;
        spaced = 0;
        if ((c = lookalike(p + i, len - i, &used)) != 0) {
            if (offs)
                offs[o] = i;
            out[o++] = c;
            i += used;
            continue;
        }
        /* bracketed dots: (dot) [dot] {dot} (.) [.] {.} */
        if (p[i] == '(' || p[i] == '[' || p[i] == '{') {
            char close = p[i] == '(' ? ')' : p[i] == '[' ? ']' : '}';
            size_t j = i + 1;
            while (j < len && p[j] == ' ')
                j++;
            size_t k = j;
            if (k + 3 <= len && strncasecmp((const char *)p + k, "dot", 3) == 0)
                k += 3;
            else if (k < len && p[k] == '.')
                k++;
            if (k > j) {
                while (k < len && p[k] == ' ')
                    k++;
                if (k < len && p[k] == close) {
                    if (offs)
                        offs[o] = i;
                    out[o++] = '.';
                    i = k + 1;
                    continue;
                }
            }
        }
        if (offs)
            offs[o] = i;
        out[o++] = p[i] == '\\' ? '/' : (char)tolower(p[i]);
        i++;
    }
    out[o] = '\0';
    /* hxxp / hxxps -> http / https (in place: same length) */
    for (char *h = out; (h = strstr(h, "hxxp")) != NULL; h += 4)
        h[1] = h[2] = 't';
    return o;
}

static void copy_matched(const char *text, size_t len, size_t from, size_t to, char *matched, size_t mlen)
{
    if (!matched || mlen == 0)
        return;
    if (to > len)
        to = len;
    size_t k = to > from ? to - from : 0;
    if (k >= mlen)
        k = mlen - 1;
    /* do not cut a UTF-8 sequence in half */
    while (k > 0 && k < to - from && ((unsigned char)text[from + k] & 0xc0) == 0x80)
        k--;
    memcpy(matched, text + from, k);
    matched[k] = '\0';
}

/* Offset in the original text just past compact()'s character e - 1. */
static size_t end_of(const size_t *offs, size_t e, const char *text, size_t len)
{
    size_t x;
    if (e == 0)
        return 0;
    x = offs[e - 1] + 1;
    while (x < len && ((unsigned char)text[x] & 0xc0) == 0x80)
        x++;
    return x;
}

/* ------------------------------------------------------------ invites */

/* What counts as an invite (docs/features/automod.md): after compact(), a
 * host below followed by "/" and at least two code characters. Catches
 * "discord.gg/x", "https://discord.com/invite/x", "discordapp.com/invite/x",
 * "dsc.gg/x", "discord.me/x", "discord.io/x", "invite.gg/x", with spaces,
 * zero-width characters, "(dot)"/"[.]", fullwidth dots, "hxxp", and the dot
 * left out ("discord gg/x", "discordgg/x"). */
static const char *const invite_hosts[] = {
    "discord.gg/",
    "discordgg/",
    "discord.com/invite/",
    "discordcom/invite/",
    "discordapp.com/invite/",
    "discordappcom/invite/",
    "dsc.gg/",
    "discord.me/",
    "discord.io/",
    "invite.gg/",
    "discord.li/",
};

int gh_am_match_invite(const char *text, size_t len, char *matched, size_t mlen)
{
    char buf[NORM_MAX];
    size_t offs[NORM_MAX];
    unsigned char gap[NORM_MAX];
    size_t n;

    if (!text || len == 0)
        return 0;
    n = compact(text, len, buf, sizeof(buf), offs, gap);
    for (size_t h = 0; h < sizeof(invite_hosts) / sizeof(invite_hosts[0]); h++) {
        size_t hl = strlen(invite_hosts[h]);
        for (const char *s = buf; (s = strstr(s, invite_hosts[h])) != NULL; s++) {
            size_t at = (size_t)(s - buf), e = at + hl, codes = 0;
            /* not part of a longer host name: "notdiscord.gg" is someone else's */
            if (at > 0 && !gap[at] && (isalnum((unsigned char)buf[at - 1]) || buf[at - 1] == '-'))
                continue;
            while (e < n && (isalnum((unsigned char)buf[e]) || buf[e] == '-')) {
                if (codes >= 2 && gap[e])
                    break; /* the next word */
                e++;
                codes++;
            }
            if (codes >= 2) {
                copy_matched(text, len, offs[at], end_of(offs, e, text, len), matched, mlen);
                return 1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------ links */

static int host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* 1 when host is d or a subdomain of d. */
static int domain_matches(const char *host, size_t hl, const char *d)
{
    size_t dl = strlen(d);
    if (dl == 0 || hl < dl)
        return 0;
    if (memcmp(host + hl - dl, d, dl) != 0)
        return 0;
    return hl == dl || host[hl - dl - 1] == '.';
}

/* Links are URLs with a scheme (http, https, hxxp, hxxps, after compact():
 * so "h t t p s : / / evil . com" counts too) and bare hosts starting with
 * "www."; the host ends at the first character that cannot be in a host
 * name (port, path, query). A host without a dot is not a link. */
int gh_am_match_links(const char *text, size_t len, char *const *domains, int n_domains, int allow_mode,
                      char *matched, size_t mlen)
{
    char buf[NORM_MAX];
    size_t offs[NORM_MAX];
    unsigned char gap[NORM_MAX];
    size_t n;

    if (!text || len == 0 || (!allow_mode && n_domains == 0))
        return 0;
    n = compact(text, len, buf, sizeof(buf), offs, gap);
    for (size_t i = 0; i < n; i++) {
        size_t hs;
        if (strncmp(buf + i, "http://", 7) == 0)
            hs = i + 7;
        else if (strncmp(buf + i, "https://", 8) == 0)
            hs = i + 8;
        else if (strncmp(buf + i, "www.", 4) == 0 && (gap[i] || !host_char(buf[i - 1])))
            hs = i;
        else
            continue;
        /* skip user info: "user@host" */
        size_t e = hs;
        while (e < n && (host_char(buf[e]) || buf[e] == '@')) {
            /* whitespace ends the host unless it sits next to a dot ("evil . com") */
            if (e > hs && gap[e] && buf[e] != '.' && buf[e - 1] != '.')
                break;
            if (buf[e] == '@')
                hs = e + 1;
            e++;
        }
        size_t hl = e - hs;
        while (hl > 0 && buf[hs + hl - 1] == '.')
            hl--;
        if (hl == 0 || memchr(buf + hs, '.', hl) == NULL) {
            i = e > i ? e - 1 : i;
            continue;
        }
        int listed = 0;
        for (int d = 0; d < n_domains && !listed; d++)
            listed = domains[d] && domain_matches(buf + hs, hl, domains[d]);
        if (allow_mode ? !listed : listed) {
            copy_matched(text, len, offs[i], end_of(offs, e, text, len), matched, mlen);
            return 1;
        }
        i = e > i ? e - 1 : i;
    }
    return 0;
}

/* ------------------------------------------------------------ words */

static char leet(unsigned char c)
{
    switch (c) {
    case '0':
        return 'o';
    case '1':
    case '!':
    case '|':
        return 'i';
    case '3':
        return 'e';
    case '4':
    case '@':
        return 'a';
    case '5':
    case '$':
        return 's';
    case '7':
    case '+':
        return 't';
    case '8':
        return 'b';
    case '9':
        return 'g';
    default:
        return 0;
    }
}

/* Token form shared by the text and the list entries: tokens of letters
 * (ASCII lower case, accents removed, leet mapped, other non-ASCII bytes
 * kept), separated by single spaces, with a space at both ends; runs of
 * one-letter tokens joined ("b a d" -> "bad", "b.a.d" -> "bad"). Invisible
 * characters vanish without splitting a token. offs (may be NULL) maps back. */
static size_t tokens(const char *text, size_t len, char *out, size_t n, size_t *offs)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, o = 0;
    size_t tok_start = 0; /* out index where the current token starts */
    int in_tok = 0;
    int prev_single = 0; /* the previous finished token was one letter */

    if (n < 3)
        return 0;
    out[o] = ' ';
    if (offs)
        offs[o] = 0;
    o++;
    while (i < len && o + 2 < n) {
        size_t skip = invisible_len(p + i, len - i);
        char c = 0;
        size_t used = 1;
        if (skip) {
            i += skip;
            continue;
        }
        if (p[i] < 0x80) {
            int next_alnum = i + 1 < len && isalnum(p[i + 1]);
            if (isalpha(p[i]))
                c = (char)tolower(p[i]);
            else if (isdigit(p[i]))
                c = leet(p[i]) ? leet(p[i]) : (char)p[i];
            else if (p[i] == '!' || p[i] == '|' || p[i] == '+')
                c = in_tok && next_alnum ? leet(p[i]) : 0; /* "sh!t", never "bad!" */
            else if (p[i] == '$' || p[i] == '@')
                c = in_tok || next_alnum ? leet(p[i]) : 0; /* "a$$", "@ss" */
        } else if (p[i] == 0xc3 && i + 1 < len && (c = unaccent(p[i + 1])) != 0) {
            used = 2;
        } else if (p[i] >= 0xc0) {
            /* another letter outside ASCII: keep its bytes as they are */
            size_t k = 1;
            while (i + k < len && (p[i + k] & 0xc0) == 0x80)
                k++;
            if (lookalike(p + i, len - i, &used) == 0) {
                if (!in_tok) {
                    tok_start = o;
                    in_tok = 1;
                }
                for (size_t j = 0; j < k && o + 2 < n; j++) {
                    if (offs)
                        offs[o] = i;
                    out[o++] = (char)p[i + j];
                }
                i += k;
                continue;
            }
            c = 0;
        }
        if (c) {
            if (!in_tok) {
                tok_start = o;
                in_tok = 1;
            }
            if (offs)
                offs[o] = i;
            out[o++] = c;
        } else if (in_tok) {
            size_t tl = o - tok_start;
            in_tok = 0;
            if (tl == 1 && prev_single && o >= 3 && out[tok_start - 1] == ' ') {
                /* join to the previous one-letter run: drop the separating space */
                out[tok_start - 1] = out[tok_start];
                if (offs)
                    offs[tok_start - 1] = offs[tok_start];
                o--;
            }
            prev_single = tl == 1; /* a run of one-letter tokens goes on */
            if (offs)
                offs[o] = i;
            out[o++] = ' ';
        }
        i += used;
    }
    if (in_tok) {
        size_t tl = o - tok_start;
        if (tl == 1 && prev_single && o >= 3 && out[tok_start - 1] == ' ') {
            out[tok_start - 1] = out[tok_start];
            if (offs)
                offs[tok_start - 1] = offs[tok_start];
            o--;
        }
        if (offs)
            offs[o] = len;
        out[o++] = ' ';
    }
    if (o == 1) {
        out[o++] = ' ';
    }
    out[o] = '\0';
    return o;
}

size_t gh_am_norm_word(const char *in, size_t len, char *out, size_t n)
{
    char buf[1024];
    size_t k, o = 0;

    if (!in || n == 0)
        return 0;
    k = tokens(in, len, buf, sizeof(buf), NULL);
    /* trim the outer spaces */
    for (size_t i = 1; i + 1 < k && o + 1 < n; i++)
        out[o++] = buf[i];
    out[o] = '\0';
    return o;
}

int gh_am_match_words(const char *text, size_t len, char *const *words, int n_words, char *matched,
                      size_t mlen)
{
    char buf[NORM_MAX];
    size_t offs[NORM_MAX];
    char needle[1100];
    size_t n;

    if (!text || len == 0 || n_words <= 0)
        return 0;
    n = tokens(text, len, buf, sizeof(buf), offs);
    if (n < 3)
        return 0;
    for (int w = 0; w < n_words; w++) {
        size_t wl;
        const char *hit;
        if (!words[w] || !words[w][0])
            continue;
        wl = strlen(words[w]);
        if (wl + 3 > sizeof(needle))
            continue;
        needle[0] = ' ';
        memcpy(needle + 1, words[w], wl);
        needle[wl + 1] = ' ';
        needle[wl + 2] = '\0';
        if ((hit = strstr(buf, needle)) != NULL) {
            size_t at = (size_t)(hit - buf) + 1, end = at + wl;
            copy_matched(text, len, offs[at], end < n ? offs[end] : len, matched, mlen);
            return 1;
        }
    }
    return 0;
}

#define WORD_TAB_MASK 1023u

static uint32_t tok_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

/* Rebuilds the word index of s from s->words. */
static void build_word_index(struct gh_am_settings *s)
{
    memset(s->word_tab, 0, sizeof(s->word_tab));
    s->n_phrases = 0;
    for (int i = 0; i < s->n_words; i++) {
        const char *w = s->words[i];
        if (!w)
            continue;
        if (strchr(w, ' ')) {
            s->phrases[s->n_phrases++] = (int16_t)i;
            continue;
        }
        uint32_t k = tok_hash(w, strlen(w)) & WORD_TAB_MASK;
        while (s->word_tab[k])
            k = (k + 1) & WORD_TAB_MASK;
        s->word_tab[k] = (int16_t)(i + 1);
    }
}

/* gh_am_match_words over the index: each token of the text looked up once,
 * then the phrases searched. Same answers. */
static int match_words_indexed(const struct gh_am_settings *s, const char *text, size_t len, char *matched,
                               size_t mlen)
{
    char buf[NORM_MAX];
    size_t offs[NORM_MAX];
    size_t n, i = 1;

    if (!text || len == 0 || s->n_words <= 0)
        return 0;
    n = tokens(text, len, buf, sizeof(buf), offs);
    while (i < n) {
        size_t e = i;
        while (e < n && buf[e] != ' ')
            e++;
        if (e > i) {
            uint32_t k = tok_hash(buf + i, e - i) & WORD_TAB_MASK;
            while (s->word_tab[k]) {
                const char *w = s->words[s->word_tab[k] - 1];
                if (w && strlen(w) == e - i && memcmp(w, buf + i, e - i) == 0) {
                    copy_matched(text, len, offs[i], e < n ? offs[e] : len, matched, mlen);
                    return 1;
                }
                k = (k + 1) & WORD_TAB_MASK;
            }
        }
        i = e + 1;
    }
    for (int p = 0; p < s->n_phrases; p++) {
        char needle[1100];
        const char *w = s->words[s->phrases[p]], *hit;
        size_t wl = w ? strlen(w) : 0;
        if (wl == 0 || wl + 3 > sizeof(needle))
            continue;
        needle[0] = ' ';
        memcpy(needle + 1, w, wl);
        needle[wl + 1] = ' ';
        needle[wl + 2] = '\0';
        if ((hit = strstr(buf, needle)) != NULL) {
            size_t at = (size_t)(hit - buf) + 1, end = at + wl;
            copy_matched(text, len, offs[at], end < n ? offs[end] : len, matched, mlen);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ caps */

/* ASCII letters outside <...> (mentions, custom emoji, channel links) and
 * outside URLs count; 1 when letters >= min_letters and upper * 100 >=
 * percent * letters. */
int gh_am_match_caps(const char *text, size_t len, int percent, int min_letters)
{
    long letters = 0, upper = 0;
    int in_angle = 0, in_url = 0;

    if (!text || percent <= 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '<')
            in_angle = 1;
        else if (c == '>')
            in_angle = 0;
        if (!in_url && (c | 0x20) == 'h' && i + 4 <= len && strncasecmp(text + i, "http", 4) == 0)
            in_url = 1;
        if (isspace(c))
            in_url = 0;
        if (in_angle || in_url || !isalpha(c))
            continue;
        letters++;
        if (isupper(c))
            upper++;
    }
    return letters > 0 && letters >= min_letters && upper * 100 >= (long)percent * letters;
}

/* ------------------------------------------------------------ regex */

struct gh_am_regex {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char *pattern;
};

struct gh_am_regex *gh_am_regex_new(const char *pattern, char *err, size_t errsz)
{
    struct gh_am_regex *re = NULL;
    int ecode = 0;
    PCRE2_SIZE eoff = 0;

    if (err && errsz)
        err[0] = '\0';
    if (!pattern || !pattern[0]) {
        if (err)
            snprintf(err, errsz, "empty pattern");
        return NULL;
    }
    re = calloc(1, sizeof(*re));
    if (!re)
        return NULL;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_UTF, &ecode,
                             &eoff, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        if (err)
            snprintf(err, errsz, "at offset %zu: %s", (size_t)eoff, (const char *)msg);
        gh_am_regex_free(re);
        return NULL;
    }
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* optional: the interpreter otherwise */
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    re->pattern = strdup(pattern);
    if (!re->md || !re->mctx || !re->pattern) {
        gh_am_regex_free(re);
        return NULL;
    }
    pcre2_set_match_limit(re->mctx, GH_AM_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, GH_AM_REGEX_DEPTH_LIMIT);
    return re;
}

void gh_am_regex_free(struct gh_am_regex *re)
{
    if (!re)
        return;
    pcre2_match_context_free(re->mctx);
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

int gh_am_match_regex(const struct gh_am_regex *re, const char *text, size_t len, char *matched, size_t mlen)
{
    int rc;
    if (!re || !text)
        return 0;
    rc = pcre2_match(re->code, (PCRE2_SPTR)text, len, 0, 0, re->md, re->mctx);
    if (rc >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
        copy_matched(text, len, ov[0], ov[1], matched, mlen);
        return 1;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT)
        return -1;
    return 0; /* no match, or invalid UTF-8 in the text: no match */
}

/* ------------------------------------------------------------ simhash */

uint64_t gh_am_simhash(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    uint64_t h = 1469598103934665603ULL;
    int letters = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (!isalpha(c))
                continue; /* digits, punctuation, whitespace: collapsed away */
            c = (unsigned char)tolower(c);
        } else if (invisible_len(p + i, len - i)) {
            i += invisible_len(p + i, len - i) - 1;
            continue;
        }
        h ^= c;
        h *= 1099511628211ULL;
        letters++;
    }
    return letters ? (h ? h : 1) : 0;
}

/* ------------------------------------------------------------ settings */

static int get_bool(json_object *o, const char *k, int def)
{
    int v = 0;
    return gh_json_get_bool(o, k, &v) == GH_OK ? v : def;
}

static int get_int(json_object *o, const char *k, int def, int lo, int hi)
{
    int64_t v = 0;
    if (gh_json_get_int(o, k, &v) != GH_OK)
        return def;
    return v < lo ? lo : v > hi ? hi : (int)v;
}

static int snowflakes(json_object *o, const char *k, uint64_t *out, int max)
{
    json_object *a = gh_json_get_arr(o, k);
    int n = 0;
    size_t len = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < len && n < max; i++) {
        json_object *e = json_object_array_get_idx(a, i);
        uint64_t v = 0;
        if (json_object_is_type(e, json_type_string) &&
            gh_cstr_to_u64(json_object_get_string(e), &v) == GH_OK && v > 0)
            out[n++] = v;
    }
    return n;
}

static void parse_rule(json_object *doc, enum gh_am_rule r, struct gh_am_rule_cfg *rc)
{
    json_object *o = gh_json_get_obj(doc, gh_am_rule_name(r));
    json_object *acts;
    const char *t;
    uint64_t secs = 0;

    rc->enabled = get_bool(o, "enabled", 0);
    rc->log_only = get_bool(o, "log_only", 0);
    rc->actions = GH_AM_ACT_DELETE;
    if ((acts = gh_json_get_arr(o, "actions")) != NULL) {
        rc->actions = 0;
        for (size_t i = 0; i < json_object_array_length(acts); i++)
            rc->actions |= gh_am_action_bit(json_object_get_string(json_object_array_get_idx(acts, i)));
    }
    rc->timeout_s = 600;
    if ((t = gh_json_get_str(o, "timeout")) != NULL && gh_jschema_duration(t, strlen(t), &secs) == GH_OK)
        rc->timeout_s = (int64_t)secs > TIMEOUT_MAX_S ? TIMEOUT_MAX_S : (int64_t)secs;
    rc->n_exempt_roles = snowflakes(o, "exempt_roles", rc->exempt_roles, GH_AM_MAX_EXEMPT);
    rc->n_exempt_channels = snowflakes(o, "exempt_channels", rc->exempt_channels, GH_AM_MAX_EXEMPT);
}

/* Appends the normalised entries of array k to s->words; returns how many. */
static int add_words(struct gh_am_settings *s, json_object *a, const struct gh_logger *lg)
{
    int added = 0;
    size_t len = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < len; i++) {
        const char *w = json_object_get_string(json_object_array_get_idx(a, i));
        char norm[1024];
        if (!w || gh_am_norm_word(w, strlen(w), norm, sizeof(norm)) == 0)
            continue;
        if (s->n_words >= GH_AM_MAX_WORDS) {
            if (lg)
                GH_WARN(lg, "automod: guild %" PRIu64 " has more than %d words, the rest ignored",
                        s->guild_id, GH_AM_MAX_WORDS);
            break;
        }
        if ((s->words[s->n_words] = strdup(norm)) == NULL)
            break;
        s->n_words++;
        added++;
    }
    return added;
}

static int add_regexes(struct gh_am_settings *s, json_object *a, const struct gh_logger *lg)
{
    int added = 0;
    size_t len = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(a, i));
        char err[200];
        struct gh_am_regex *re;
        if (!p)
            continue;
        if (s->n_regex >= GH_AM_MAX_REGEX) {
            if (lg)
                GH_WARN(lg, "automod: guild %" PRIu64 " has more than %d patterns, the rest ignored",
                        s->guild_id, GH_AM_MAX_REGEX);
            break;
        }
        if ((re = gh_am_regex_new(p, err, sizeof(err))) == NULL) {
            s->n_regex_invalid++;
            if (lg)
                GH_WARN(lg, "automod: guild %" PRIu64 " pattern %zu ignored: %s", s->guild_id, i,
                        err[0] ? err : "out of memory");
            continue;
        }
        s->regex[s->n_regex++] = re;
        added++;
    }
    return added;
}

struct gh_am_settings *gh_am_settings_parse(json_object *doc, uint64_t guild_id, const struct gh_logger *lg)
{
    struct gh_am_settings *s = calloc(1, sizeof(*s));
    json_object *o, *a;

    if (!s)
        return NULL;
    s->guild_id = guild_id;
    s->enabled = get_bool(doc, "enabled", 0);
    s->exempt_managers = get_bool(doc, "exempt_managers", 1);
    s->n_exempt_roles = snowflakes(doc, "exempt_roles", s->exempt_roles, GH_AM_MAX_EXEMPT);
    s->n_exempt_channels = snowflakes(doc, "exempt_channels", s->exempt_channels, GH_AM_MAX_EXEMPT);
    for (int r = 0; r < GH_AM_RULE_COUNT; r++)
        parse_rule(doc, (enum gh_am_rule)r, &s->rule[r]);

    o = gh_json_get_obj(doc, "rate");
    s->rate_max = get_int(o, "max_messages", 15, 2, 1000);
    s->rate_window_s = get_int(o, "window_s", 60, 2, 600);
    o = gh_json_get_obj(doc, "repeat");
    s->repeat_max = get_int(o, "max_repeats", 3, 2, GH_AM_REPEAT_HISTORY_MAX);
    s->repeat_history = get_int(o, "history", 10, 2, GH_AM_REPEAT_HISTORY_MAX);
    s->repeat_window_s = get_int(o, "window_s", 120, 10, 3600);
    o = gh_json_get_obj(doc, "caps");
    s->caps_percent = get_int(o, "percent", 70, 1, 100);
    s->caps_min_letters = get_int(o, "min_letters", 10, 1, 4000);
    o = gh_json_get_obj(doc, "links");
    s->links_allow_mode = (gh_json_get_str(o, "mode") && strcmp(gh_json_get_str(o, "mode"), "allow") == 0);
    a = gh_json_get_arr(o, "domains");
    for (size_t i = 0; a && i < json_object_array_length(a) && s->n_domains < GH_AM_MAX_DOMAINS; i++) {
        const char *d = json_object_get_string(json_object_array_get_idx(a, i));
        char buf[256];
        size_t k = 0;
        if (!d)
            continue;
        while (*d == '.' || *d == '*')
            d++;
        for (; *d && k + 1 < sizeof(buf); d++)
            buf[k++] = (char)tolower((unsigned char)*d);
        buf[k] = '\0';
        if (k == 0)
            continue;
        if ((s->domains[s->n_domains] = strdup(buf)) == NULL)
            break;
        s->n_domains++;
    }
    o = gh_json_get_obj(doc, "words");
    s->n_words_free = add_words(s, gh_json_get_arr(o, "words"), lg);
    (void)add_words(s, gh_json_get_arr(o, "premium_words"), lg);
    o = gh_json_get_obj(doc, "regex");
    s->n_regex_free = add_regexes(s, gh_json_get_arr(o, "patterns"), lg);
    (void)add_regexes(s, gh_json_get_arr(o, "premium_patterns"), lg);
    build_word_index(s);
    o = gh_json_get_obj(doc, "mentions");
    s->mention_everyone = get_bool(o, "everyone", 1);
    s->mention_max = get_int(o, "max_mentions", 5, 0, 100);
    return s;
}

void gh_am_settings_apply_tier(struct gh_am_settings *s, int premium_rank, const struct gh_logger *lg)
{
    if (!s)
        return;
    s->premium_rank = premium_rank;
    if (premium_rank >= 1)
        return;
    if (s->n_words > s->n_words_free || s->n_regex > s->n_regex_free) {
        if (lg)
            GH_WARN(lg,
                    "automod: guild %" PRIu64
                    " is on the free tier: %d premium words and %d premium patterns "
                    "ignored",
                    s->guild_id, s->n_words - s->n_words_free, s->n_regex - s->n_regex_free);
        for (int i = s->n_words_free; i < s->n_words; i++) {
            free(s->words[i]);
            s->words[i] = NULL;
        }
        s->n_words = s->n_words_free;
        for (int i = s->n_regex_free; i < s->n_regex; i++) {
            gh_am_regex_free(s->regex[i]);
            s->regex[i] = NULL;
        }
        s->n_regex = s->n_regex_free;
    }
    /* the free lists themselves are capped too (a document saved while premium) */
    while (s->n_words > GH_AM_FREE_WORDS) {
        free(s->words[--s->n_words]);
        s->words[s->n_words] = NULL;
    }
    while (s->n_regex > GH_AM_FREE_REGEX) {
        gh_am_regex_free(s->regex[--s->n_regex]);
        s->regex[s->n_regex] = NULL;
    }
    s->n_words_free = s->n_words;
    s->n_regex_free = s->n_regex;
    build_word_index(s);
}

void gh_am_settings_free(struct gh_am_settings *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_domains; i++)
        free(s->domains[i]);
    for (int i = 0; i < s->n_words; i++)
        free(s->words[i]);
    for (int i = 0; i < s->n_regex; i++)
        gh_am_regex_free(s->regex[i]);
    free(s);
}

/* ------------------------------------------------------------ decision */

static int has_id(const uint64_t *ids, int n, uint64_t v)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == v)
            return 1;
    return 0;
}

static int any_role(const uint64_t *ids, int n, const struct gh_am_msg *m)
{
    for (int i = 0; i < m->n_roles; i++)
        if (has_id(ids, n, m->roles[i]))
            return 1;
    return 0;
}

int gh_am_exempt_all(const struct gh_am_settings *s, const struct gh_am_msg *m)
{
    if (!s || !m)
        return 1;
    if (s->owner_id && m->author_id == s->owner_id)
        return 1;
    if (has_id(s->exempt_channels, s->n_exempt_channels, m->channel_id))
        return 1;
    if (any_role(s->exempt_roles, s->n_exempt_roles, m))
        return 1;
    if (s->exempt_managers && any_role(s->manager_roles, s->n_manager_roles, m))
        return 1;
    return 0;
}

int gh_am_rule_skipped(const struct gh_am_settings *s, enum gh_am_rule r, const struct gh_am_msg *m)
{
    const struct gh_am_rule_cfg *rc = &s->rule[r];
    if (!rc->enabled)
        return 1;
    if (m->is_edit && (r == GH_AM_RATE || r == GH_AM_REPEAT || r == GH_AM_MENTIONS))
        return 1; /* an edit neither adds a message nor pings anyone again */
    if (has_id(rc->exempt_channels, rc->n_exempt_channels, m->channel_id))
        return 1;
    return any_role(rc->exempt_roles, rc->n_exempt_roles, m);
}

static int everyone_text(const char *t, size_t len)
{
    static const char *const needles[] = {"@everyone", "@here"};
    for (size_t k = 0; k < 2; k++) {
        size_t nl = strlen(needles[k]);
        for (size_t i = 0; i + nl <= len; i++)
            if (t[i] == '@' && memcmp(t + i, needles[k], nl) == 0)
                return 1;
    }
    return 0;
}

int gh_am_check(const struct gh_am_settings *s, const struct gh_am_msg *m, const struct gh_am_counters *c,
                struct gh_am_hit *hits, int max, int *regex_overflow)
{
    int n = 0;
    if (!s || !m || !hits || max <= 0 || !s->enabled || gh_am_exempt_all(s, m))
        return 0;
    for (int r = 0; r < GH_AM_RULE_COUNT && n < max; r++) {
        struct gh_am_hit *h = &hits[n];
        int hit = 0;
        if (gh_am_rule_skipped(s, (enum gh_am_rule)r, m))
            continue;
        h->matched[0] = '\0';
        switch ((enum gh_am_rule)r) {
        case GH_AM_RATE:
            hit = c && c->rate_count >= 0 && c->rate_count > s->rate_max;
            if (hit)
                snprintf(h->matched, sizeof(h->matched), "%lld messages in %d s", c->rate_count,
                         s->rate_window_s);
            break;
        case GH_AM_REPEAT:
            hit = c && c->repeat_count >= 0 && c->repeat_count >= s->repeat_max;
            if (hit)
                snprintf(h->matched, sizeof(h->matched), "%d similar messages", c->repeat_count);
            break;
        case GH_AM_CAPS:
            hit = gh_am_match_caps(m->content, m->len, s->caps_percent, s->caps_min_letters);
            if (hit)
                copy_matched(m->content, m->len, 0, m->len, h->matched, sizeof(h->matched));
            break;
        case GH_AM_INVITES:
            hit = gh_am_match_invite(m->content, m->len, h->matched, sizeof(h->matched));
            break;
        case GH_AM_LINKS:
            hit = gh_am_match_links(m->content, m->len, s->domains, s->n_domains, s->links_allow_mode,
                                    h->matched, sizeof(h->matched));
            break;
        case GH_AM_WORDS:
            hit = match_words_indexed(s, m->content, m->len, h->matched, sizeof(h->matched));
            break;
        case GH_AM_REGEX:
            for (int i = 0; i < s->n_regex && !hit; i++) {
                int rc = gh_am_match_regex(s->regex[i], m->content, m->len, h->matched, sizeof(h->matched));
                if (rc < 0 && regex_overflow)
                    (*regex_overflow)++;
                hit = rc > 0;
            }
            break;
        case GH_AM_MENTIONS:
            if (s->mention_everyone && (m->mention_everyone || everyone_text(m->content, m->len))) {
                hit = 1;
                snprintf(h->matched, sizeof(h->matched), "@everyone/@here");
            } else if (s->mention_max > 0 && m->n_mentions > s->mention_max) {
                hit = 1;
                snprintf(h->matched, sizeof(h->matched), "%d mentions", m->n_mentions);
            }
            break;
        case GH_AM_RULE_COUNT:
            break;
        }
        if (!hit)
            continue;
        h->rule = (enum gh_am_rule)r;
        h->log_only = s->rule[r].log_only;
        h->actions = h->log_only ? 0 : s->rule[r].actions;
        n++;
    }
    return n;
}
