/* levels.h - the levels feature (issue 7). Placeholder: the feature struct is
 * filled in by its implementation. */
#ifndef GH_FEATURES_LEVELS_H
#define GH_FEATURES_LEVELS_H

#include "features/registry.h"

extern const struct gh_feature gh_feature_levels;

#endif
