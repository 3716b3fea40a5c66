/* guildhall-config - prints the configuration table or checks the environment.
 *
 *   guildhall-config --markdown          the README's table of every variable
 *   guildhall-config --check <service>   loads the environment as <service>
 *                                        would: prints "ok" (exit 0) or the
 *                                        error (exit 2)
 * Bad usage exits 64. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"

static const struct {
    const char *name;
    unsigned bit;
} services[] = {
    {"interactions", GH_SVC_INTERACTIONS}, {"api", GH_SVC_API},   {"worker", GH_SVC_WORKER},
    {"gateway", GH_SVC_GATEWAY},           {"tool", GH_SVC_TOOL},
};

static int usage(FILE *f)
{
    fputs("usage: guildhall-config --markdown\n"
          "       guildhall-config --check <interactions|api|worker|gateway|tool>\n",
          f);
    return f == stdout ? 0 : 64;
}

int main(int argc, char **argv)
{
    struct gh_config cfg;
    char err[512];
    size_t i;

    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        gh_config_print_markdown();
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout);
    if (argc != 3 || strcmp(argv[1], "--check") != 0)
        return usage(stderr);
    for (i = 0; i < sizeof services / sizeof services[0]; i++) {
        if (strcmp(argv[2], services[i].name) != 0)
            continue;
        if (gh_config_load(&cfg, services[i].bit, NULL, NULL, err, sizeof err) != GH_OK) {
            fprintf(stderr, "guildhall-config: configuration error: %s\n", err);
            return 2;
        }
        puts("ok");
        return 0;
    }
    fprintf(stderr, "guildhall-config: unknown service '%s'\n", argv[2]);
    return usage(stderr);
}
