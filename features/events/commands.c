/* commands.c - the events feature struct (placeholder until implemented). */
#include "features/events/events.h"

const struct gh_feature gh_feature_events = {
    .name = "events",
    .title = "Events",
    .description = "Gateway events: caches, event jobs and legacy prefix commands",
    .default_enabled = 0,
    .can_disable = 1,
};
