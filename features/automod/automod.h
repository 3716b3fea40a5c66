/* automod.h - the automod feature (issue 7). Placeholder: the feature struct is
 * filled in by its implementation. */
#ifndef GH_FEATURES_AUTOMOD_H
#define GH_FEATURES_AUTOMOD_H

#include "features/registry.h"

extern const struct gh_feature gh_feature_automod;

#endif
