/* curve.c - the level curve (MEE6's): going from level L to L + 1 takes
 * 5L^2 + 50L + 100 XP; reaching level L takes the sum of those steps below L.
 * Closed form: 5(L-1)L(2L-1)/6 + 25L(L-1) + 100L. Level 1 = 100 XP, 2 = 255,
 * 3 = 475, 5 = 1 150, 10 = 4 675, 100 = 1 899 250 (docs/features/levels.md). */
#include "features/levels/levels.h"

int64_t gh_lv_xp_to_next(int level)
{
    int64_t l = level < 0 ? 0 : level;

    return 5 * l * l + 50 * l + 100;
}

int64_t gh_lv_xp_for_level(int level)
{
    int64_t l;

    if (level <= 0)
        return 0;
    if (level > GH_LV_MAX_LEVEL)
        level = GH_LV_MAX_LEVEL;
    l = level;
    return 5 * (l - 1) * l * (2 * l - 1) / 6 + 25 * l * (l - 1) + 100 * l;
}

int gh_lv_level_for_xp(int64_t xp)
{
    int lo = 0, hi = GH_LV_MAX_LEVEL;

    if (xp <= 0)
        return 0;
    /* largest L in [0, MAX] with xp_for_level(L) <= xp */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (gh_lv_xp_for_level(mid) <= xp)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}
