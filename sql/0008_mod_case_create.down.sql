-- Reverts 0008_mod_case_create.up.sql.
DROP FUNCTION mod_case_create(bigint, mod_case_type, mod_case_status, bigint, bigint, text, bigint, double precision, bigint, bigint, jsonb, text);
