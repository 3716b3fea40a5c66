/* guildhall-interactions - the FastCGI server behind POST /interactions.
 *
 * Wiring only: gh_app_fcgi_main (lib/app) loads the configuration (a bad
 * value stops it with the variable's name), opens the log, binds
 * FCGI_SOCKET and keeps the children alive; each child serves requests with
 * gh_interactions_handle (lib/web/interactions.c). A blocking Discord call
 * made here never waits out a rate limit: the interaction has a 3 s budget. */
#include <stddef.h>

#include "app/app.h"
#include "web/interactions.h"

int main(void)
{
    static const struct gh_app_fcgi spec = {
        .service = GH_SVC_INTERACTIONS,
        .name = "interactions",
        .progname = "guildhall-interactions",
        .handler = gh_interactions_handle,
        .rest_max_wait_ms = 0,
        .max_resp = (size_t)512 << 10,
    };

    return gh_app_fcgi_main(&spec);
}
