// store.mjs - reading and cleaning PostgreSQL and Redis from tests, through
// the psql and redis-cli clients (no npm driver: the tests' deps stay minimal).
import { execFileSync } from 'node:child_process';

/**
 * JSON.parse that keeps integers beyond 2^53 (BIGINT snowflakes) exact by
 * turning integer literals of 16+ digits outside strings into strings.
 */
export function parseJsonBig(text) {
  let out = '';
  let i = 0;
  let inStr = false;
  while (i < text.length) {
    const c = text[i];
    if (inStr) {
      out += c;
      if (c === '\\') { out += text[i + 1] ?? ''; i += 2; continue; }
      if (c === '"') inStr = false;
      i += 1;
      continue;
    }
    if (c === '"') { inStr = true; out += c; i += 1; continue; }
    const m = /^-?[0-9]+(?:[.eE][-+0-9.eE]*)?/.exec(text.slice(i, i + 40));
    if (m && (c === '-' || (c >= '0' && c <= '9'))) {
      const lit = m[0];
      out += /^-?[0-9]{16,}$/.test(lit) ? `"${lit}"` : lit;
      i += lit.length;
      continue;
    }
    out += c;
    i += 1;
  }
  return JSON.parse(out);
}

/**
 * Runs one SQL query with psql and returns its rows as objects. Parameters
 * are psql variables: query('SELECT * FROM t WHERE id = :\'id\'', {id: '1'})
 * (psql quotes :'name' safely). Throws on any error (connection refused too).
 */
export function query(databaseUrl, sql, params = {}) {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', databaseUrl];
  for (const [k, v] of Object.entries(params)) args.push('-v', `${k}=${v}`);
  args.push('-f', '-');
  const wrapped = `SELECT coalesce(json_agg(t), '[]'::json) FROM (${sql.replace(/;\s*$/, '')}) t;\n`;
  const out = execFileSync('psql', args, { input: wrapped, encoding: 'utf8', timeout: 15000, stdio: ['pipe', 'pipe', 'pipe'] });
  return parseJsonBig(out.trim() || '[]');
}

/** Runs SQL statements (no result). */
export function exec(databaseUrl, sql, params = {}) {
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', databaseUrl];
  for (const [k, v] of Object.entries(params)) args.push('-v', `${k}=${v}`);
  args.push('-f', '-');
  execFileSync('psql', args, { input: sql, encoding: 'utf8', timeout: 15000, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs redis-cli with args; returns stdout (trimmed). */
export function redis(redisUrl, ...args) {
  return execFileSync('redis-cli', ['-u', redisUrl, '--no-auth-warning', ...args], {
    encoding: 'utf8', timeout: 10000, stdio: ['pipe', 'pipe', 'pipe'],
  }).trim();
}

/** Keys matching a pattern (SCAN, not KEYS). */
export function redisKeys(redisUrl, pattern) {
  const out = redis(redisUrl, '--scan', '--pattern', pattern);
  return out ? out.split('\n').filter(Boolean) : [];
}

/** Rows of command_log for one interaction id. */
export function commandLogRows(databaseUrl, interactionId) {
  return query(databaseUrl, "SELECT * FROM command_log WHERE interaction_id = :'iid'", { iid: interactionId });
}

/**
 * Deletes every row a test guild owns: each public table with a guild_id
 * column, then the guild itself (two passes so foreign keys between child
 * tables cannot block), and its Redis keys bot:{<guild_id>}:*.
 */
export function cleanupGuild(stack, guildId) {
  if (!/^[0-9]+$/.test(guildId)) throw new Error(`cleanupGuild: bad guild id ${guildId}`);
  const sql = `
\\set ON_ERROR_STOP 0
SELECT format('DELETE FROM %I.%I WHERE guild_id = %L', table_schema, table_name, :'gid')
  FROM information_schema.columns
 WHERE column_name = 'guild_id' AND table_schema = 'public'
   AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema = 'public')
\\gexec
SELECT format('DELETE FROM %I.%I WHERE guild_id = %L', table_schema, table_name, :'gid')
  FROM information_schema.columns
 WHERE column_name = 'guild_id' AND table_schema = 'public'
   AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema = 'public')
\\gexec
DELETE FROM guilds WHERE id = :'gid';
`;
  const errors = [];
  try {
    exec(stack.DATABASE_URL, sql, { gid: guildId });
  } catch (e) {
    errors.push(`postgres: ${String(e.stderr ?? e.message).trim().split('\n')[0]}`);
  }
  try {
    const keys = redisKeys(stack.REDIS_URL, `bot:{${guildId}}:*`);
    for (let i = 0; i < keys.length; i += 100) redis(stack.REDIS_URL, 'DEL', ...keys.slice(i, i + 100));
  } catch (e) {
    errors.push(`redis: ${String(e.stderr ?? e.message).trim().split('\n')[0]}`);
  }
  return errors;
}
