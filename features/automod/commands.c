/* commands.c - the automod feature struct (placeholder until implemented). */
#include "features/automod/automod.h"

const struct gh_feature gh_feature_automod = {
    .name = "automod",
    .title = "AutoMod",
    .description = "Filters spam, caps, invites, links, words and mass mentions as messages arrive",
    .default_enabled = 0,
    .can_disable = 1,
};
