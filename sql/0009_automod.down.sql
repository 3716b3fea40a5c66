-- Reverts 0009_automod.up.sql: drops exactly what it created (indexes and the trigger go with
-- the table). Destructive: the runner dumps the table before it runs.
DROP TABLE automod_offences;
DROP TYPE automod_rule;
