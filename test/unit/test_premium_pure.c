/* test_premium_pure.c - premium's pure functions at their edges: tier names
 * and ranks, limits, the status arithmetic, PREMIUM_SKUS parsing and the
 * upgrade/limit texts (no store needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "features/premium/premium.h"

static void test_names_and_ranks(void **state)
{
    (void)state;
    assert_string_equal(gh_premium_tier_name(0), "free");
    assert_string_equal(gh_premium_tier_name(2), "pro");
    assert_string_equal(gh_premium_tier_name(-1), "free");
    assert_string_equal(gh_premium_tier_name(3), "free");
    assert_string_equal(gh_premium_tier_title(9), gh_premium_tier_title(0));
    assert_string_equal(gh_premium_tier_title(-3), gh_premium_tier_title(0));
    assert_int_equal(gh_premium_tier_rank("premium"), 1);
    assert_int_equal(gh_premium_tier_rank("gold"), GH_EINVAL);
    assert_int_equal(gh_premium_tier_rank(NULL), GH_EINVAL);
    assert_string_equal(gh_premium_source_name(GH_PREMIUM_SRC_CODE), "code");
    assert_null(gh_premium_source_name(GH_PREMIUM_SRC_COUNT));
}

static void test_limits(void **state)
{
    (void)state;
    assert_int_equal(gh_premium_limit(0, GH_PREMIUM_LIMIT_ROLE_PANELS), 3);
    assert_int_equal(gh_premium_limit(2, GH_PREMIUM_LIMIT_GIVEAWAYS), -1);
    assert_int_equal(gh_premium_limit(1, "nonsense"), 0);
    assert_int_equal(gh_premium_limit(1, NULL), 0);
    assert_int_equal(gh_premium_limit(-1, GH_PREMIUM_LIMIT_TRIGGERS), 0);
    assert_int_equal(gh_premium_limit(3, GH_PREMIUM_LIMIT_TRIGGERS), 0);
}

static void test_evaluate(void **state)
{
    struct gh_premium p;
    (void)state;
    memset(&p, 0, sizeof(p));
    p.tier = 5;
    gh_premium_evaluate(&p, 1000);
    assert_string_equal(p.status, "none");
    assert_int_equal(p.tier, 0);
    memset(&p, 0, sizeof(p));
    p.tier = 1;
    snprintf(p.source, sizeof(p.source), "trial");
    p.expires_at = 2000;
    gh_premium_evaluate(&p, 1000);
    assert_string_equal(p.status, "trial");
    assert_int_equal(p.effective, 1);
    snprintf(p.source, sizeof(p.source), "code");
    p.grace_until = 3000;
    gh_premium_evaluate(&p, 2000); /* exactly at expiry: grace */
    assert_string_equal(p.status, "grace");
    gh_premium_evaluate(&p, 3000);
    assert_string_equal(p.status, "expired");
    assert_int_equal(p.effective, 0);
    p.grace_until = 0;
    gh_premium_evaluate(&p, 2500);
    assert_string_equal(p.status, "expired");
    p.expires_at = 0;
    gh_premium_evaluate(&p, 99999);
    assert_string_equal(p.status, "active");
}

static void test_sku_rank(void **state)
{
    struct gh_config cfg;
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(gh_premium_sku_rank(&cfg, 5), 0);
    assert_int_equal(gh_premium_sku_rank(NULL, 5), 0);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), " 11 : premium , ,22:pro");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), 1);
    assert_int_equal(gh_premium_sku_rank(&cfg, 22), 2);
    assert_int_equal(gh_premium_sku_rank(&cfg, 33), 0);
    assert_int_equal(gh_premium_sku_rank(&cfg, 0), 0);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), "11premium");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), GH_EINVAL);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), "11:free");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), GH_EINVAL);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), "x:pro");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), GH_EINVAL);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), "0:pro");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), GH_EINVAL);
    snprintf(cfg.premium_skus, sizeof(cfg.premium_skus), "11:pro,11:premium");
    assert_int_equal(gh_premium_sku_rank(&cfg, 11), 2); /* the first listing wins */
}

static void test_texts(void **state)
{
    struct gh_config cfg;
    char out[256];
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(gh_premium_upgrade_text(&cfg, 1, "custom color", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "Custom color needs Guildhall Premium.");
    snprintf(cfg.premium_url, sizeof(cfg.premium_url), "https://x.example/p");
    assert_int_equal(gh_premium_upgrade_text(&cfg, 2, "ai", out, sizeof(out)), GH_OK);
    assert_non_null(strstr(out, "Upgrade at https://x.example/p"));
    assert_int_equal(gh_premium_upgrade_text(&cfg, 0, "ai", out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_upgrade_text(&cfg, 3, "ai", out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_upgrade_text(&cfg, 1, "", out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_upgrade_text(&cfg, 1, NULL, out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_upgrade_text(&cfg, 1, "x", NULL, 5), GH_EINVAL);
    assert_int_equal(gh_premium_upgrade_text(&cfg, 1, "a long feature name", out, 8), GH_ETOOBIG);

    assert_int_equal(gh_premium_limit_text(&cfg, 0, GH_PREMIUM_LIMIT_ROLE_PANELS, out, sizeof(out)), GH_OK);
    assert_non_null(strstr(out, "3 "));
    assert_non_null(strstr(out, "raises it to 25"));
    assert_non_null(strstr(out, "Upgrade at"));
    assert_int_equal(gh_premium_limit_text(&cfg, 1, GH_PREMIUM_LIMIT_ROLE_PANELS, out, sizeof(out)), GH_OK);
    assert_non_null(strstr(out, "removes the limit"));
    assert_int_equal(gh_premium_limit_text(&cfg, 2, GH_PREMIUM_LIMIT_ROLE_PANELS, out, sizeof(out)), GH_OK);
    assert_non_null(strstr(out, "no limit"));
    memset(cfg.premium_url, 0, sizeof(cfg.premium_url));
    assert_int_equal(gh_premium_limit_text(&cfg, 0, GH_PREMIUM_LIMIT_TRIGGERS, out, sizeof(out)), GH_OK);
    assert_null(strstr(out, "Upgrade at"));
    assert_int_equal(gh_premium_limit_text(&cfg, 0, "nonsense", out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_limit_text(&cfg, 7, GH_PREMIUM_LIMIT_TRIGGERS, out, sizeof(out)), GH_EINVAL);
    assert_int_equal(gh_premium_limit_text(&cfg, 0, GH_PREMIUM_LIMIT_TRIGGERS, out, 10), GH_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_ranks), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_evaluate),        cmocka_unit_test(test_sku_rank),
        cmocka_unit_test(test_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
