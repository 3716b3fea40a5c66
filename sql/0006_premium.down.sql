-- Reverts 0006_premium.up.sql: drops exactly what it created (indexes and triggers go with their
-- tables). Destructive: the runner dumps these tables before it runs.
DROP TABLE premium_denials;
DROP TABLE premium_entitlements;
DROP TABLE premium_trials;
DROP TABLE premium_codes;
DROP TABLE premium_history;
DROP TABLE premium_subscriptions;
DROP TYPE premium_source;
DROP TYPE premium_tier;
