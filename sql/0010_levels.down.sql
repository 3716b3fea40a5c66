-- Reverts 0010_levels.up.sql: drops exactly what it created (the index and trigger go with the
-- table). Destructive: the runner dumps the table before it runs.
DROP TABLE levels_members;
