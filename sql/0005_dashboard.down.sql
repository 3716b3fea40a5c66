-- Reverts 0005_dashboard.up.sql: drops exactly what it created (indexes and triggers go with
-- their tables).
DROP TABLE security_events;
DROP TABLE dashboard_sessions;
DROP TABLE dashboard_users;
