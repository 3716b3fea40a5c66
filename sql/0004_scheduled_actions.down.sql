-- Reverts 0004_scheduled_actions.up.sql: drops exactly what it created (indexes and the trigger
-- go with the table).
DROP TABLE scheduled_actions;
DROP TYPE scheduled_action_state;
