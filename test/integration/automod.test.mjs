// automod.test.mjs - AutoMod through the stack (docs/features/automod.md): settings saved
// through the generic settings API and checked against the schema (the premium lists refused on
// the free tier), the test endpoint, the offences list with its filters and guild isolation,
// admin-only routes, and the "automod:offence" job run by the worker: the offence row written
// once, a warn action made a moderation case by Guildhall with reason "AutoMod: <rule>" that
// feeds the escalation, log-only recorded without any case, and PostgreSQL down (the job waits
// and lands once PostgreSQL is back).
//
// The jobs are queued here exactly as gateway-lite queues them (id automod:<g>:<m>:<rule>, the
// payload of features/automod/events.c); the gateway end to end lives in automod_gateway.test.mjs
// once the gateway and its fake are merged.
// Stops PostgreSQL in one test: scripts/test.sh runs files one at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);

async function setup(t) {
  const g = await m.guild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

function expectError(r, status, code) {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, r.text);
}

/** The queue partition of a queue name (lib/store/queue.c: FNV-1a 32 bits, mod 4). */
function partition(queue) {
  let hsh = 2166136261;
  for (const c of Buffer.from(queue)) {
    hsh ^= c;
    hsh = Math.imul(hsh, 16777619) >>> 0;
  }
  return hsh % 4;
}

/** Queues an automod:offence job the way gateway-lite does (gh_queue_enqueue). */
function enqueueOffence(gid, { user, channel, message, rule, actions, logOnly = false, content = 'x', matched = 'x' }) {
  const bits = { delete: 1, warn: 2, timeout: 4, kick: 8, ban: 16, log: 32 };
  const id = `automod:${gid}:${message}:${rule}`;
  const job = {
    attempt: 1, id, kind: 'automod:offence', guild: gid,
    payload: {
      guild_id: gid, user_id: user, channel_id: channel, message_id: message, rule,
      actions: logOnly ? 0 : actions.reduce((a, k) => a | bits[k], 0), log_only: logOnly, edited: false,
      deleted: actions.includes('delete') && !logOnly, timed_out: false, timeout_s: 600,
      excerpt: content, matched, detected_ms: Date.now(),
    },
    deadline_ms: 0, enqueued_ms: Date.now(), due_ms: 0,
  };
  const p = partition('default');
  const ok = redis(h.stack.REDIS_URL, 'SET', `bot:{q${p}}:jobs:default:seen:${id}`, 'queued', 'NX', 'EX', '86400');
  if (String(ok).trim() === 'OK') redis(h.stack.REDIS_URL, 'LPUSH', `bot:{q${p}}:jobs:default:ready`, JSON.stringify(job));
  return id;
}

const offences = (gid) => m.q(
  `SELECT user_id::text AS user_id, message_id::text AS message_id, rule::text AS rule, actions, log_only,
          excerpt, matched, outcome, done_at IS NOT NULL AS done
     FROM automod_offences WHERE guild_id = :'g' ORDER BY id`, { g: gid });

// ------------------------------------------------------------------ settings and routes

test('settings saved through the API (schema-checked), the test endpoint answers which rules match', async (t) => {
  const { gid, owner } = await setup(t);
  const doc = {
    enabled: true,
    invites: { enabled: true, actions: ['delete', 'warn'] },
    words: { enabled: true, log_only: true, words: ['heck'] },
    links: { enabled: true, mode: 'deny', domains: ['evil.com'], actions: ['delete'] },
    caps: { enabled: false },
  };
  const r = await owner.put(`/guilds/${gid}/settings/automod`, { document: doc, version: 0 });
  assert.equal(r.status, 200, r.text);
  const saved = m.q("SELECT document FROM guild_settings WHERE guild_id = :'g' AND feature = 'automod'", { g: gid });
  assert.equal(saved.length, 1);
  assert.deepEqual(saved[0].document.invites.actions, ['delete', 'warn']);

  // a bad action and an out-of-range number are refused, nothing saved
  const bad = await owner.put(`/guilds/${gid}/settings/automod`,
    { document: { ...doc, caps: { enabled: true, actions: ['explode'], percent: 500 } }, version: 1 });
  expectError(bad, 400, 'invalid_settings');
  assert.ok(bad.body.error.fields.some((f) => /caps\/actions/.test(f.path)), bad.text);
  assert.ok(bad.body.error.fields.some((f) => /caps\/percent/.test(f.path)), bad.text);
  // the premium lists need premium
  const prem = await owner.put(`/guilds/${gid}/settings/automod`,
    { document: { ...doc, words: { enabled: true, premium_words: ['more'] } }, version: 1 });
  expectError(prem, 403, 'premium_required');
  // more than 20 free words is a schema error
  const many = await owner.put(`/guilds/${gid}/settings/automod`,
    { document: { ...doc, words: { enabled: true, words: Array.from({ length: 21 }, (_, i) => `w${i}`) } }, version: 1 });
  expectError(many, 400, 'invalid_settings');

  const test1 = await owner.post(`/guilds/${gid}/automod/test`, { content: 'join discord (dot) gg/abcdef, what the h3ck' });
  assert.equal(test1.status, 200, test1.text);
  assert.deepEqual(test1.body.matches.map((x) => x.rule).sort(), ['invites', 'words']);
  const inv = test1.body.matches.find((x) => x.rule === 'invites');
  assert.deepEqual(inv.actions, ['delete', 'warn']);
  assert.equal(test1.body.matches.find((x) => x.rule === 'words').log_only, true);
  const test2 = await owner.post(`/guilds/${gid}/automod/test`, { content: 'see https://docs.evil.com/x' });
  assert.deepEqual(test2.body.matches.map((x) => x.rule), ['links']);
  const test3 = await owner.post(`/guilds/${gid}/automod/test`, { content: 'a perfectly fine message' });
  assert.deepEqual(test3.body.matches, []);
  // unsaved settings from the form
  const test4 = await owner.post(`/guilds/${gid}/automod/test`,
    { content: 'THIS IS VERY LOUD TEXT', settings: { caps: { enabled: true, percent: 80, min_letters: 5 } } });
  assert.deepEqual(test4.body.matches.map((x) => x.rule), ['caps']);
  // a pattern that does not compile is reported; one that backtracks forever counts as no match
  const test5 = await owner.post(`/guilds/${gid}/automod/test`,
    { content: `${'a'.repeat(60)}b`, settings: { regex: { enabled: true, patterns: ['(unclosed', '^(a|a)*$'] } } });
  assert.equal(test5.status, 200, test5.text);
  assert.deepEqual(test5.body.matches, []);
  assert.equal(test5.body.regex_limit_hits, 1);
  assert.deepEqual(test5.body.invalid_patterns.map((x) => x.pattern), ['(unclosed']);
  expectError(await owner.post(`/guilds/${gid}/automod/test`, {}), 400, 'invalid_input');
});

test('the routes need guild admin: a member without Manage Server is refused', async (t) => {
  const { gid } = await setup(t);
  const mod = await sessionFor(h.stack, users.moderator.id);
  await refreshGuilds(mod, gid);
  expectError(await mod.get(`/guilds/${gid}/automod/offences`), 403, 'forbidden');
  expectError(await mod.post(`/guilds/${gid}/automod/test`, { content: 'x' }), 403, 'forbidden');
  const anon = await fetch(`${h.stack.GH_HTTP_URL}/api/v1/guilds/${gid}/automod/offences`);
  assert.equal(anon.status, 401);
});

// ------------------------------------------------------------------ the offence job

test('offence job: the row once, a warn case by Guildhall, escalation at its threshold; list and filters', async (t) => {
  const { g, gid, owner } = await setup(t);
  m.quiet(g, { escalation_enabled: true, thresholds: [{ warnings: 2, action: 'timeout', duration: '1h' }] });
  const user = g.extra.t1.id;
  const channel = g.channels?.general?.id ?? snowflake();
  const m1 = snowflake();
  const m2 = snowflake();
  const since = await h.fake.seq();
  enqueueOffence(gid, { user, channel, message: m1, rule: 'invites', actions: ['delete', 'warn'], content: 'discord.gg/abc', matched: 'discord.gg/abc' });
  enqueueOffence(gid, { user, channel, message: m1, rule: 'invites', actions: ['delete', 'warn'] }); // duplicate: ignored
  const rows = await waitFor(() => { const r = offences(gid); return r.length && r[0].done ? r : null; },
    { timeout: 30000, message: 'the worker recorded the offence' });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].rule, 'invites');
  assert.equal(rows[0].user_id, user);
  assert.deepEqual(rows[0].actions, ['delete', 'warn']);
  assert.equal(rows[0].excerpt, 'discord.gg/abc');
  assert.match(rows[0].outcome, /deleted; warn: case #1/);
  let cs = m.cases(g);
  assert.equal(cs.length, 1);
  assert.equal(cs[0].type, 'WARN');
  assert.equal(cs[0].moderator_id, null, 'made by Guildhall');
  assert.equal(cs[0].reason, 'AutoMod: Discord invites');

  // the second warning reaches the threshold: a TIMEOUT case referencing it
  enqueueOffence(gid, { user, channel, message: m2, rule: 'words', actions: ['warn'] });
  cs = await m.waitCases(g, 3, { timeout: 30000, message: 'the escalation after the second AutoMod warning' });
  assert.deepEqual(cs.map((c) => c.type), ['WARN', 'WARN', 'TIMEOUT']);
  assert.equal(cs[2].refs_case, cs[1].number);
  await waitFor(() => m.cases(g)[2].status !== 'pending', { message: 'the timeout settled' });
  const acts = await m.actions(g, since);
  assert.equal(acts.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/members/${user}`)).length, 1);
  await waitFor(() => offences(gid).length === 2 && offences(gid)[1].done, { message: 'the second offence done' });

  // the list, its filters, and paging
  const all = await owner.get(`/guilds/${gid}/automod/offences`);
  assert.equal(all.status, 200, all.text);
  assert.equal(all.body.total, 2);
  assert.deepEqual(all.body.offences.map((o) => o.rule), ['words', 'invites'], 'newest first');
  const byRule = await owner.get(`/guilds/${gid}/automod/offences?rule=invites`);
  assert.equal(byRule.body.total, 1);
  assert.equal(byRule.body.offences[0].message_id, m1);
  const byOther = await owner.get(`/guilds/${gid}/automod/offences?user=${g.extra.t2.id}`);
  assert.equal(byOther.body.total, 0);
  const page = await owner.get(`/guilds/${gid}/automod/offences?limit=1`);
  assert.equal(page.body.offences.length, 1);
  const page2 = await owner.get(`/guilds/${gid}/automod/offences?limit=1&before=${page.body.next_before}`);
  assert.equal(page2.body.offences[0].rule, 'invites');
  expectError(await owner.get(`/guilds/${gid}/automod/offences?rule=nope`), 400, 'invalid_input');
  expectError(await owner.get(`/guilds/${gid}/automod/offences?limit=500`), 400, 'invalid_input');

  // another guild sees none of them
  const other = await setup(t);
  const iso = await other.owner.get(`/guilds/${other.gid}/automod/offences`);
  assert.equal(iso.status, 200);
  assert.equal(iso.body.total, 0);
  assert.equal(offences(other.gid).length, 0);
});

test('log-only offence: recorded with no actions, no case, nothing on Discord', async (t) => {
  const { g, gid } = await setup(t);
  m.quiet(g);
  const since = await h.fake.seq();
  enqueueOffence(gid, { user: g.extra.t3.id, channel: snowflake(), message: snowflake(), rule: 'caps', actions: ['delete', 'ban'], logOnly: true });
  const rows = await waitFor(() => { const r = offences(gid); return r.length && r[0].done ? r : null; },
    { timeout: 30000, message: 'the log-only offence recorded' });
  assert.equal(rows[0].log_only, true);
  assert.deepEqual(rows[0].actions, []);
  assert.equal(rows[0].outcome, 'log only');
  assert.equal(m.cases(g).length, 0);
  assert.deepEqual(await m.actions(g, since), []);
});

test('never on the owner or a member above the bot: the offence is recorded, no case, no Discord call', async (t) => {
  const { g, gid } = await setup(t);
  m.quiet(g);
  const since = await h.fake.seq();
  enqueueOffence(gid, { user: users.owner.id, channel: snowflake(), message: snowflake(), rule: 'words', actions: ['warn', 'kick'] });
  enqueueOffence(gid, { user: users.admin.id, channel: snowflake(), message: snowflake(), rule: 'words', actions: ['ban'] });
  const rows = await waitFor(() => { const r = offences(gid); return r.length === 2 && r.every((x) => x.done) ? r : null; },
    { timeout: 30000, message: 'both offences recorded' });
  const byUser = Object.fromEntries(rows.map((r) => [r.user_id, r]));
  assert.match(byUser[users.owner.id].outcome, /not acted on: the server owner/);
  assert.match(byUser[users.admin.id].outcome, /not acted on: a member whose highest role is not below/);
  assert.equal(m.cases(g).length, 0);
  const acts = (await m.actions(g, since)).filter((r) => r.method !== 'GET');
  assert.deepEqual(acts, []);
});

test('PostgreSQL down: the offence job waits and lands once PostgreSQL is back', async (t) => {
  const { g, gid } = await setup(t);
  m.quiet(g);
  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('pg-start'); });
  h.stackScript('pg-stop');
  stopped = true;
  const message = snowflake();
  const id = enqueueOffence(gid, { user: g.extra.t4.id, channel: snowflake(), message, rule: 'invites', actions: ['warn'] });
  const p = partition('default');
  // the worker takes it, fails on PostgreSQL, and puts it back for a retry
  await waitFor(() => {
    const raw = redis(h.stack.REDIS_URL, 'ZRANGE', `bot:{q${p}}:jobs:default:delayed`, '0', '-1');
    return String(raw).includes(id);
  }, { timeout: 30000, message: 'the job is waiting for a retry' });
  h.stackScript('pg-start');
  stopped = false;
  const rows = await waitFor(() => { try { const r = offences(gid); return r.length && r[0].done ? r : null; } catch { return null; } },
    { timeout: 60000, message: 'the offence landed after PostgreSQL came back' });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].message_id, message);
  const cs = m.cases(g);
  assert.equal(cs.length, 1, 'one warning, not one per attempt');
  assert.equal(cs[0].type, 'WARN');
});
