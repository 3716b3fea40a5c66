-- Reverts 0001_guilds_and_settings.up.sql: drops exactly what it created.
DROP TABLE authorized_users;
DROP TABLE guild_settings;
DROP TABLE guilds;
DROP FUNCTION set_updated_at();
