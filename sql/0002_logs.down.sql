-- Reverts 0002_logs.up.sql: drops exactly what it created (indexes and triggers go with their tables).
DROP TABLE error_log;
DROP TABLE audit_log;
DROP TABLE command_log;
