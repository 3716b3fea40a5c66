/* commands.c - the levels feature struct (placeholder until implemented). */
#include "features/levels/levels.h"

const struct gh_feature gh_feature_levels = {
    .name = "levels",
    .title = "Levels",
    .description = "XP for activity, levels, role rewards and a leaderboard",
    .default_enabled = 0,
    .can_disable = 1,
};
