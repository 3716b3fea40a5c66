-- 0008 mod_case_create: a moderation case is created in one round trip. The function runs the
-- steps features/moderation/store.c ran one statement at a time (eight round trips): make sure
-- the guild row exists, take the guild's next case number (locking its counter row until commit,
-- which keeps numbers gapless and serialises case creation per guild only), return the existing
-- case of a duplicate delivery (giving the number back), insert the case, and for a WARN count
-- the target's active warnings inside the same transaction (the escalation's count).

CREATE FUNCTION mod_case_create(
    p_guild bigint, p_type mod_case_type, p_status mod_case_status, p_target bigint,
    p_moderator bigint, p_reason text, p_duration bigint, p_expires_ms double precision,
    p_refs bigint, p_interaction bigint, p_roles jsonb, p_error text)
RETURNS TABLE (dup boolean, warn_count integer, case_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_number bigint;
    v_id bigint;
    v_count integer := 0;
BEGIN
    INSERT INTO guilds (id) VALUES (p_guild) ON CONFLICT (id) DO NOTHING;
    INSERT INTO mod_case_counters AS k (guild_id, last_number) VALUES (p_guild, 1)
        ON CONFLICT (guild_id) DO UPDATE SET last_number = k.last_number + 1
        RETURNING k.last_number INTO v_number;
    IF p_interaction IS NOT NULL THEN
        SELECT c.id INTO v_id FROM mod_cases c WHERE c.guild_id = p_guild AND c.interaction_id = p_interaction;
        IF FOUND THEN
            -- A duplicate delivery: the number goes back (the counter row is still ours).
            UPDATE mod_case_counters SET last_number = last_number - 1 WHERE guild_id = p_guild;
            RETURN QUERY SELECT true, 0, v_id;
            RETURN;
        END IF;
    END IF;
    INSERT INTO mod_cases (guild_id, number, type, status, target_id, moderator_id, reason, duration_s,
                           expires_at, refs_case, interaction_id, target_roles, error, created_by, updated_by)
    VALUES (p_guild, v_number, p_type, p_status, p_target, p_moderator, p_reason, p_duration,
            to_timestamp(p_expires_ms / 1000), p_refs, p_interaction, p_roles, p_error, p_moderator, p_moderator)
    RETURNING id INTO v_id;
    IF p_type = 'WARN' THEN
        SELECT count(*) INTO v_count FROM mod_cases c
         WHERE c.guild_id = p_guild AND c.target_id = p_target AND c.type = 'WARN' AND c.status = 'active'
           AND (c.expires_at IS NULL OR c.expires_at > now());
    END IF;
    RETURN QUERY SELECT false, v_count, v_id;
END;
$$;

COMMENT ON FUNCTION mod_case_create(bigint, mod_case_type, mod_case_status, bigint, bigint, text, bigint, double precision, bigint, bigint, jsonb, text)
    IS 'Creates a moderation case in one statement: gapless per-guild number, duplicate delivery returns the existing case (dup), WARN returns the active-warning count';
