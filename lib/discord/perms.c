/* perms.c - Discord permission bits.
 *
 * Permissions travel as decimal strings of a 64-bit field. Human names are
 * derived from the X-macro in perms.h ("BAN_MEMBERS" -> "Ban Members"), so a
 * new bit needs one line in the header and nothing here. */
#include "discord/perms.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define NAME_MAX_LEN 48

static char perm_names[64][NAME_MAX_LEN];
static pthread_once_t perm_names_once = PTHREAD_ONCE_INIT;

/* "MANAGE_GUILD_EXPRESSIONS" -> "Manage Guild Expressions" */
static void title_case(const char *macro, char *out, size_t size)
{
    size_t o = 0;
    int word_start = 1;

    for (const char *p = macro; *p != '\0' && o + 1 < size; p++) {
        char c = *p;
        if (c == '_') {
            out[o++] = ' ';
            word_start = 1;
            continue;
        }
        if (!word_start && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[o++] = c;
        word_start = 0;
    }
    out[o] = '\0';
}

static void build_names(void)
{
#define GH_PERM_NAME(name, bit) title_case(#name, perm_names[bit], sizeof(perm_names[bit]));
    GH_PERMS(GH_PERM_NAME)
#undef GH_PERM_NAME
}

int gh_perms_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || out == NULL || *s == '\0')
        return GH_EINVAL;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned d;
        if (*p < '0' || *p > '9')
            return GH_EINVAL;
        d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return GH_EINVAL; /* above 2^64-1 */
        v = v * 10 + d;
    }
    *out = v;
    return GH_OK;
}

int gh_perms_has(uint64_t perms, uint64_t need)
{
    if (perms & GH_PERM(ADMINISTRATOR))
        return 1;
    return (perms & need) == need;
}

const char *gh_perm_name(int bit)
{
    if (bit < 0 || bit > 63)
        return NULL;
    pthread_once(&perm_names_once, build_names);
    return perm_names[bit][0] != '\0' ? perm_names[bit] : NULL;
}

void gh_perms_missing(uint64_t perms, uint64_t need, char *out, size_t size)
{
    size_t len = 0;

    if (out == NULL || size == 0)
        return;
    out[0] = '\0';
    if (gh_perms_has(perms, need))
        return;
    for (int bit = 0; bit < 64; bit++) {
        uint64_t m = UINT64_C(1) << bit;
        const char *name;
        char unknown[24];
        int n;

        if (!(need & m) || (perms & m))
            continue;
        name = gh_perm_name(bit);
        if (name == NULL) {
            (void)snprintf(unknown, sizeof(unknown), "bit %d", bit);
            name = unknown;
        }
        n = snprintf(out + len, size - len, "%s%s", len > 0 ? ", " : "", name);
        if (n < 0 || (size_t)n >= size - len) {
            out[len] = '\0'; /* keep whole names only */
            return;
        }
        len += (size_t)n;
    }
}
