/* utility.h - the utility feature: /serverinfo and /userinfo.
 *
 * A real, disableable feature (on by default). Its settings document has
 * only "enabled" (schema.json). */
#ifndef GH_FEATURES_UTILITY_H
#define GH_FEATURES_UTILITY_H

#include "features/registry.h"

extern const struct gh_feature gh_feature_utility;

#endif
