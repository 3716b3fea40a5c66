// moderation_commands.test.mjs - the moderation commands end to end (issue 6): each command's
// case row, the Discord call the fake received (with X-Audit-Log-Reason), the answer and its
// allowed_mentions, the worker's mod-log embed; refusals (permission, tier, hierarchy, self,
// owner, bot) answered ephemerally with no case and no Discord call and a security event;
// invalid input; /case, /cases, /note; cross-guild isolation through commands and the API;
// duplicate delivery; premium-gated settings with premium expired.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { interactionToken, PERMS, users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { assertNoPings, modHelpers, secondsFromNow } from '../lib/moderation.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { REPO_ROOT } from '../lib/stack.mjs';
import { redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);

// Option names of the commands (features/moderation/commands.c).
const O = { reason: 'reason', duration: 'duration', del: 'delete_messages', number: 'number', text: 'text' };

/** The security event written for a refusal: a security_events row, or a log line naming it. */
async function assertSecurityEvent(g, since, invokerId) {
  await waitFor(() => {
    if (m.security(g, since, invokerId).length) return true;
    const log = path.join(h.stack.GH_RUN_DIR ?? path.join(REPO_ROOT, '.run', 'test'), 'logs', 'interactions.log');
    if (!fs.existsSync(log)) return false;
    const text = fs.readFileSync(log, 'utf8').slice(-200000);
    return text.split('\n').some((l) => /security/i.test(l) && l.includes(g.guild.id) && l.includes(invokerId));
  }, { timeout: 10000, message: `a security event (security_events row or log line) for ${invokerId} in ${g.guild.id}` });
}

/** X-Audit-Log-Reason carries the reason (Guildhall adds who and the case number). */
function assertAudit(req, reason) {
  const v = m.auditReason(req);
  assert.ok(typeof v === 'string' && v.includes(reason), `X-Audit-Log-Reason ${JSON.stringify(v)} has the reason`);
}

/** One case; asserts the common fields. */
function oneCase(g, { type, status = 'active', target, moderator = 'moderator', reason }) {
  const cs = m.cases(g);
  assert.equal(cs.length, 1, `exactly one case: ${JSON.stringify(cs)}`);
  const c = cs[0];
  assert.equal(c.number, 1);
  assert.equal(c.type, type);
  assert.equal(c.status, status, `case status (error: ${c.error})`);
  assert.equal(c.target_id, m.id(g, target));
  assert.equal(c.moderator_id, m.id(g, moderator));
  if (reason !== undefined) assert.equal(c.reason, reason);
  return c;
}

/** The answer of a successful action: not a refusal, no pings, names the case. */
function assertDone(a, number = 1) {
  assertNoPings(a.data, 'the answer');
  assert.match(a.text, new RegExp(`#\\s*${number}\\b|case\\s*${number}\\b`, 'i'), `the answer names case ${number}: ${a.text}`);
}

/** Checks the mod-log embed of case n: type, target, moderator, reason; mentions parse nothing. */
async function assertModLog(g, n, { type, target, moderator = 'moderator', reason }) {
  const post = await m.modLog(g, n);
  assert.equal(post.valid, true, JSON.stringify(post.errors));
  assertNoPings(post.body, 'the mod-log post');
  const text = JSON.stringify(post.body.embeds ?? []);
  assert.ok((post.body.embeds ?? []).length >= 1, 'the mod-log post is an embed');
  assert.match(text, new RegExp(type, 'i'), `the embed names the action ${type}`);
  assert.ok(text.includes(m.id(g, target)), 'the embed names the target (id or mention)');
  if (moderator) assert.ok(text.includes(m.id(g, moderator)), 'the embed names the moderator');
  if (reason) assert.ok(text.includes(reason), 'the embed has the reason');
  return post;
}

// ================================================================== happy paths

test('/warn: WARN case active with expires_at from the decay, count in Redis, no Discord action, mod-log embed', async (t) => {
  const g = await m.guild(t);
  m.quiet(g, { warn_decay: '7d' });
  const since = await h.fake.seq();
  const a = await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'spamming links' } });
  assertDone(a);
  const c = oneCase(g, { type: 'WARN', target: 't1', reason: 'spamming links' });
  assert.ok(c.expires_at, 'a warning expires (decay 7d)');
  const left = secondsFromNow(c.expires_at);
  assert.ok(left > 6.9 * 86400 && left <= 7 * 86400 + 5, `expires in ~7 days (${left} s)`);
  assert.equal(String(c.interaction_id), a.id, 'the case keeps the interaction id');
  assert.deepEqual(await m.actions(g, since), [], 'a warning calls no Discord moderation route');
  assert.equal(m.warnCount(g, 't1'), 1, 'active-warning count in Redis');
  const ttl = Number(redis(h.stack.REDIS_URL, 'TTL', m.warnKey(g, 't1')));
  assert.ok(ttl > 0 && ttl <= 86400, `count key has a TTL of at most 24 h (${ttl})`);
  await assertModLog(g, 1, { type: 'warn', target: 't1', reason: 'spamming links' });
});

test('/timeout: PATCH communication_disabled_until now+duration with the audit reason; /untimeout clears it', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  let since = await h.fake.seq();
  const a = await m.cmd('timeout', g, { target: 't1', options: { [O.duration]: '10m', [O.reason]: 'cool down' } });
  assertDone(a);
  const c = oneCase(g, { type: 'TIMEOUT', target: 't1', reason: 'cool down' });
  assert.equal(Number(c.duration_s), 600);
  let acts = await m.actions(g, since);
  assert.equal(acts.length, 1, JSON.stringify(acts.map((r) => `${r.method} ${r.path}`)));
  assert.equal(acts[0].method, 'PATCH');
  assert.equal(acts[0].path, `/api/v10/guilds/${g.guild.id}/members/${g.extra.t1.id}`);
  assert.equal(acts[0].status, 200, JSON.stringify(acts[0].response));
  const until = secondsFromNow(acts[0].body.communication_disabled_until);
  assert.ok(until > 590 && until <= 605, `timed out for ~600 s (${until})`);
  assertAudit(acts[0], 'cool down');
  await assertModLog(g, 1, { type: 'timeout', target: 't1', reason: 'cool down' });

  since = await h.fake.seq();
  const u = await m.cmd('untimeout', g, { target: 't1', options: { [O.reason]: 'calm now' } });
  assertDone(u, 2);
  const c2 = m.cases(g)[1];
  assert.equal(c2.type, 'UNTIMEOUT');
  assert.equal(c2.status, 'active');
  acts = await m.actions(g, since);
  assert.equal(acts.length, 1);
  assert.equal(acts[0].method, 'PATCH');
  assert.equal(acts[0].body.communication_disabled_until, null);
  assert.equal((await m.fakeMember(g, 't1')).communication_disabled_until, null);
});

test('/kick: DELETE member with the audit reason, KICK case, member gone in the fake', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const a = await m.cmd('kick', g, { target: 't2', options: { [O.reason]: 'rule 3' } });
  assertDone(a);
  oneCase(g, { type: 'KICK', target: 't2', reason: 'rule 3' });
  const acts = await m.actions(g, since);
  assert.deepEqual(acts.map((r) => `${r.method} ${r.path} ${r.status}`),
    [`DELETE /api/v10/guilds/${g.guild.id}/members/${g.extra.t2.id} 204`]);
  assertAudit(acts[0], 'rule 3');
  assert.equal(await m.fakeMember(g, 't2'), undefined, 'the member is gone');
  await assertModLog(g, 1, { type: 'kick', target: 't2', reason: 'rule 3' });
});

test('/ban with delete_messages: PUT ban with delete_message_seconds, BAN case with the target roles', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const a = await m.cmd('ban', g, { target: 't3', options: { [O.reason]: 'raid', [O.del]: 86400 } });
  assertDone(a);
  const c = oneCase(g, { type: 'BAN', target: 't3', reason: 'raid' });
  const acts = await m.actions(g, since);
  assert.equal(acts.length, 1, JSON.stringify(acts.map((r) => `${r.method} ${r.path}`)));
  assert.equal(acts[0].method, 'PUT');
  assert.equal(acts[0].path, `/api/v10/guilds/${g.guild.id}/bans/${g.extra.t3.id}`);
  assert.equal(acts[0].status, 204, JSON.stringify(acts[0].response));
  assert.equal(acts[0].body.delete_message_seconds, 86400);
  assertAudit(acts[0], 'raid');
  assert.equal(await m.fakeBanned(g, 't3'), true, 'banned in the fake');
  await assertModLog(g, 1, { type: 'ban', target: 't3', reason: 'raid' });
  // issue 6, Cases: "the target's roles at the time"
  assert.deepEqual(c.target_roles, [g.roles.member.id], 'the case keeps the roles the target had');
});

test('/ban of a user id not in the guild is a HACKBAN', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const a = await m.cmd('ban', g, { target: users.dm.id, options: { [O.reason]: 'known raider' } });
  assertDone(a);
  const c = oneCase(g, { type: 'HACKBAN', target: users.dm.id, reason: 'known raider' });
  assert.ok(c.target_roles === null || (Array.isArray(c.target_roles) && c.target_roles.length === 0));
  const acts = await m.actions(g, since);
  assert.deepEqual(acts.map((r) => `${r.method} ${r.path} ${r.status}`),
    [`PUT /api/v10/guilds/${g.guild.id}/bans/${users.dm.id} 204`]);
  await assertModLog(g, 1, { type: 'hackban|ban', target: users.dm.id });
});

test('/unban lifts a ban (UNBAN case, DELETE ban); /softban bans with deletion then unbans', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  await m.cmd('ban', g, { target: 't4', options: { [O.reason]: 'x' } });
  let since = await h.fake.seq();
  const u = await m.cmd('unban', g, { target: m.id(g, 't4'), options: { [O.reason]: 'appeal accepted' } });
  assertDone(u, 2);
  const c = m.cases(g);
  assert.equal(c.length, 2);
  assert.equal(c[1].type, 'UNBAN');
  assert.equal(c[1].status, 'active');
  let acts = await m.actions(g, since);
  assert.deepEqual(acts.map((r) => `${r.method} ${r.path} ${r.status}`),
    [`DELETE /api/v10/guilds/${g.guild.id}/bans/${g.extra.t4.id} 204`]);
  assertAudit(acts[0], 'appeal accepted');
  assert.equal(c[0].type, 'BAN', 'the ban keeps its history');

  since = await h.fake.seq();
  const s = await m.cmd('softban', g, { target: 't5', options: { [O.reason]: 'spam bot' } });
  assertDone(s, 3);
  assert.equal(m.cases(g)[2].type, 'SOFTBAN');
  acts = await m.actions(g, since);
  assert.deepEqual(acts.map((r) => `${r.method} ${r.status}`), ['PUT 204', 'DELETE 204'], 'ban then unban');
  assert.ok(acts[0].path.endsWith(`/bans/${g.extra.t5.id}`) && acts[1].path.endsWith(`/bans/${g.extra.t5.id}`));
  assert.ok(acts[0].body.delete_message_seconds > 0, 'a softban deletes messages');
  assert.equal(await m.fakeBanned(g, 't5'), false, 'not banned afterwards');
});

test('/tempban: TEMPBAN case with duration and expires_at, lift pending, ban made', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const a = await m.cmd('tempban', g, { target: 't1', options: { [O.duration]: '2d', [O.reason]: 'cool off' } });
  assertDone(a);
  const c = oneCase(g, { type: 'TEMPBAN', target: 't1', reason: 'cool off' });
  assert.equal(Number(c.duration_s), 172800);
  const left = secondsFromNow(c.expires_at);
  assert.ok(left > 172700 && left <= 172805, `expires in 2 days (${left})`);
  assert.equal(c.lift, 'pending');
  const acts = await m.actions(g, since);
  assert.deepEqual(acts.map((r) => `${r.method} ${r.status}`), ['PUT 204']);
  const timers = m.q("SELECT count(*)::int AS n FROM scheduled_actions WHERE idempotency_key = :'k'",
    { k: `lift:${g.guild.id}:1` });
  assert.equal(timers[0].n, 1, 'a durable timer for the lift');
});

test('/mute gives the configured role; /jail keeps only the jail role and saves the others', async (t) => {
  const g = await m.guild(t);
  m.quiet(g, { mute_role_id: g.roles.muted.id, jail_role_id: g.roles.jail.id });
  let since = await h.fake.seq();
  const a = await m.cmd('mute', g, { target: 't1', options: { [O.duration]: '1h', [O.reason]: 'flood' } });
  assertDone(a);
  assert.equal(m.cases(g)[0].type, 'MUTE');
  assert.equal(m.cases(g)[0].status, 'active');
  assert.ok((await m.fakeMember(g, 't1')).roles.includes(g.roles.muted.id), 'the mute role given');
  assert.ok((await m.actions(g, since)).length >= 1);

  since = await h.fake.seq();
  const j = await m.cmd('jail', g, { target: 't2', options: { [O.duration]: '1h', [O.reason]: 'evasion' } });
  assertDone(j, 2);
  const c = m.cases(g)[1];
  assert.equal(c.type, 'JAIL');
  assert.equal(c.status, 'active');
  assert.deepEqual(c.target_roles, [g.roles.member.id], 'the roles to restore are saved');
  assert.deepEqual((await m.fakeMember(g, 't2')).roles, [g.roles.jail.id], 'only the jail role left');
  assert.ok((await m.actions(g, since)).length >= 1);
});

test('/mute without a configured mute role is refused with a hint, no case', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const a = await m.cmd('mute', g, { target: 't1', options: { [O.duration]: '1h' } });
  await m.refused(a, g, since, /role|configur|setting/i);
});

test('/purge deletes recent messages by bulk delete', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const ch = g.channels.general.id;
  const api = h.stack.DISCORD_API_BASE ?? `${h.fake.base}/api/v10`;
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${api}/channels/${ch}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bot ${h.stack.DISCORD_TOKEN}`, 'User-Agent': 'DiscordBot (test, 1)', 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: `message ${i}` }),
    });
    assert.equal(res.status, 200, await res.text());
  }
  const since = await h.fake.seq();
  const a = await m.cmd('purge', g, { user: 'moderator', options: { amount: 3 } });
  assert.ok('allowed_mentions' in a.data);
  const bulk = await h.fake.waitForRequests({ method: 'POST', path: `/api/v10/channels/${ch}/messages/bulk-delete`, since },
    { message: 'the bulk delete' });
  assert.equal(bulk[0].status, 204, JSON.stringify(bulk[0].response));
  assert.equal(bulk[0].body.messages.length, 3);
  const st = await h.fake.state();
  assert.equal(Object.keys(st.messages[ch] ?? {}).length, 0, 'the messages are gone');
});

test('/slowmode sets rate_limit_per_user; /lockdown denies Send Messages to @everyone and lifts it', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const ch = g.channels.general.id;
  let since = await h.fake.seq();
  const s = await m.cmd('slowmode', g, { user: 'admin', options: { seconds: 30 } });
  assert.ok('allowed_mentions' in s.data);
  const patch = await h.fake.waitForRequests({ method: 'PATCH', path: `/api/v10/channels/${ch}`, since }, { message: 'PATCH channel' });
  assert.equal(patch[0].body.rate_limit_per_user, 30);
  assert.ok(patch[0].status < 300, JSON.stringify(patch[0].response));

  since = await h.fake.seq();
  await m.cmd('lockdown', g, { user: 'admin', options: { state: 'on' } });
  const put = await h.fake.waitForRequests({ method: 'PUT', path: `/api/v10/channels/${ch}/permissions/${g.guild.id}`, since },
    { message: 'the @everyone overwrite' });
  assert.ok((BigInt(put[0].body.deny ?? '0') & (1n << 11n)) !== 0n, 'Send Messages denied');
  assert.ok(put[0].status < 300, JSON.stringify(put[0].response));
});

// ================================================================== refusals

test('refused: missing permission (a member without Ban Members runs /ban)', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const sec = m.secSince();
  const a = await m.cmd('ban', g, { user: 'member', target: 't1', options: { [O.reason]: 'x' } });
  await m.refused(a, g, since, /permission|ban members|not allowed|can't|cannot/i);
  await assertSecurityEvent(g, sec, users.member.id);
});

test('refused: missing tier (moderator tier may warn without permissions, but not kick)', async (t) => {
  const g = await m.guild(t);
  m.quiet(g, { moderator_roles: [g.roles.staff.id] });
  const warn = await m.cmd('warn', g, { user: 'staff', target: 't1', options: { [O.reason]: 'tier ok' } });
  assert.equal(m.cases(g).length, 1, `the moderator tier may warn: ${warn.text}`);
  const since = await h.fake.seq();
  const sec = m.secSince();
  const a = await m.cmd('kick', g, { user: 'staff', target: 't2', options: { [O.reason]: 'x' } });
  await m.refused(a, g, since, /permission|tier|admin|not allowed/i, { cases: 1 });
  await assertSecurityEvent(g, sec, g.extra.staff.id);
  // a member with neither the permission nor a tier role cannot warn
  const b = await m.cmd('warn', g, { user: 'member', target: 't2', options: { [O.reason]: 'x' } });
  await m.refused(b, g, since, null, { cases: 1 });
});

test('refused: lower or equal role (moderator on a peer moderator), target above the bot (owner on admin)', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  let since = await h.fake.seq();
  let sec = m.secSince();
  const a = await m.cmd('timeout', g, { target: 'peer', options: { [O.duration]: '1h', [O.reason]: 'x' } });
  await m.refused(a, g, since, /role|higher|above|hierarch/i);
  await assertSecurityEvent(g, sec, users.moderator.id);

  since = await h.fake.seq();
  sec = m.secSince();
  const b = await m.cmd('kick', g, { user: 'owner', target: 'admin', options: { [O.reason]: 'x' } });
  await m.refused(b, g, since, /role|higher|above|Guildhall|bot|hierarch/i);
  await assertSecurityEvent(g, sec, users.owner.id);
});

test('refused: self, the owner, the bot', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  for (const [target, re] of [['moderator', /yourself|self/i], ['owner', /owner/i], ['bot', /Guildhall|bot|myself/i]]) {
    const since = await h.fake.seq();
    const sec = m.secSince();
    const a = await m.cmd('ban', g, { target, options: { [O.reason]: 'x' } });
    await m.refused(a, g, since, re);
    await assertSecurityEvent(g, sec, users.moderator.id);
  }
});

test("refused: the bot lacks the permission (app_permissions without Ban Members)", async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  const noBan = (BigInt(PERMS.BOT) & ~(1n << 2n)).toString();
  const a = await m.cmd('ban', g, { target: 't1', app_permissions: noBan, options: { [O.reason]: 'x' } });
  await m.refused(a, g, since, /Guildhall|bot|permission|I need|I don't/i);
});

// ================================================================== invalid input

test('invalid input: bad duration, reason too long, unknown case', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const since = await h.fake.seq();
  for (const d of ['banana', '0s', '-5m', '29d']) {
    const a = await m.cmd('timeout', g, { target: 't1', options: { [O.duration]: d, [O.reason]: 'x' } });
    await m.refused(a, g, since, /duration|time|28|invalid|between/i);
  }
  const long = 'é'.repeat(513);
  const b = await m.cmd('warn', g, { target: 't1', options: { [O.reason]: long } });
  await m.refused(b, g, since, /512|too long|reason/i);
  const ok = await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'é'.repeat(512) } });
  assert.equal(m.cases(g).length, 1, `512 characters are accepted: ${ok.text}`);
  assert.equal(m.cases(g)[0].reason, 'é'.repeat(512));
  const c = await m.cmd('case', g, { sub: 'show', options: { [O.number]: 999 } });
  assert.equal(c.ephemeral, true);
  assert.match(c.text, /no case|not found|unknown|doesn't exist|does not exist/i);
});

// ================================================================== /case, /cases, /note

test('/case show|reason|void, /cases <user>, /note add|list', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'first <@&123> **bold**' } });
  await m.cmd('warn', g, { target: 't1', options: { [O.reason]: 'second' } });
  assert.equal(m.warnCount(g, 't1'), 2);

  const show = await m.cmd('case', g, { sub: 'show', options: { [O.number]: 1 } });
  assertNoPings(show.data, '/case show');
  assert.match(show.text, /warn/i);
  assert.ok(show.text.includes(g.extra.t1.id) || show.text.includes(g.extra.t1.username), 'names the target');
  assert.ok(!show.text.includes('**bold**') || show.text.includes('\\*\\*bold'), 'user text is escaped');

  const r = await m.cmd('case', g, { sub: 'reason', options: { [O.number]: 2, [O.text]: 'second, clarified' } });
  assertNoPings(r.data, '/case reason');
  assert.equal(m.cases(g)[1].reason, 'second, clarified');
  const audit = m.q("SELECT action, before, after FROM audit_log WHERE guild_id = :'g' AND action = 'moderation.case.reason'", { g: g.guild.id });
  assert.equal(audit.length, 1, 'the reason edit is audited');

  const v = await m.cmd('case', g, { sub: 'void', options: { [O.number]: 1, [O.reason]: 'mistake' } });
  assertNoPings(v.data, '/case void');
  const c1 = m.cases(g)[0];
  assert.equal(c1.status, 'void');
  assert.equal(String(c1.voided_by), users.moderator.id);
  assert.equal(c1.void_reason, 'mistake');
  assert.ok(m.warnCount(g, 't1') === null || m.warnCount(g, 't1') === 1, 'a voided warning stops counting');
  const again = await m.cmd('case', g, { sub: 'void', options: { [O.number]: 1, [O.reason]: 'twice' } });
  assert.equal(again.ephemeral, true);
  assert.match(again.text, /already/i);

  const list = await m.cmd('cases', g, { target: 't1' });
  assertNoPings(list.data, '/cases');
  assert.match(list.text, /#?\s*1\b/);
  assert.match(list.text, /#?\s*2\b/);

  const n = await m.cmd('note', g, { sub: 'add', target: 't2', options: { [O.text]: 'watch this one' } });
  assert.equal(n.ephemeral, true, 'notes are private');
  const note = m.cases(g)[2];
  assert.equal(note.type, 'NOTE');
  assert.equal(note.target_id, g.extra.t2.id);
  assert.equal(note.reason, 'watch this one');
  const nl = await m.cmd('note', g, { sub: 'list', target: 't2' });
  assert.equal(nl.ephemeral, true);
  assert.match(nl.text, /watch this one/);
  // a member cannot read notes
  const since = await h.fake.seq();
  const denied = await m.cmd('note', g, { sub: 'list', user: 'member', target: 't2' });
  await m.refused(denied, g, since, null, { cases: 3 });
  assert.ok(!denied.text.includes('watch this one'));
});

// ================================================================== duplicates

test('duplicate delivery: the same signed interaction twice makes one case and one Discord call', async (t) => {
  const g = await m.guild(t);
  m.quiet(g);
  const id = snowflake();
  const body = m.build('timeout', g, {
    target: 't1', id, token: interactionToken(id), options: { [O.duration]: '5m', [O.reason]: 'dup' },
  });
  const since = await h.fake.seq();
  const r1 = await h.send(structuredClone(body));
  assert.equal(r1.status, 200);
  const r2 = await h.send(structuredClone(body));
  assert.ok(r2.status < 500, `the second delivery is answered: ${r2.status}`);
  await m.waitCases(g, 1);
  const acts = await m.actions(g, since);
  assert.equal(m.cases(g).length, 1, 'one case');
  assert.equal(acts.filter((r) => r.method === 'PATCH').length, 1, 'one Discord call');
});

// ================================================================== cross-guild

test('cross-guild: cases and counts of guild A are invisible in guild B (commands and API)', async (t) => {
  const a = await m.guild(t);
  const b = await m.guild(t);
  m.quiet(a);
  m.quiet(b);
  // the same user is in both guilds (the fixture users are global)
  await m.cmd('warn', a, { target: 'member', options: { [O.reason]: 'secret of guild A' } });
  await m.cmd('warn', a, { target: 'member', options: { [O.reason]: 'second A' } });
  assert.equal(m.cases(a).length, 2);

  const show = await m.cmd('case', b, { sub: 'show', options: { [O.number]: 1 } });
  assert.ok(!show.text.includes('secret of guild A'));
  assert.match(show.text, /no case|not found|unknown|does not exist|doesn't exist/i);
  const list = await m.cmd('cases', b, { target: 'member' });
  assert.ok(!list.text.includes('secret of guild A'));
  assert.equal(redis(h.stack.REDIS_URL, 'EXISTS', m.warnKey(b, 'member')) === '1' ? m.warnCount(b, 'member') : 0, 0);

  // a warning in B starts at 1 and counts 1
  await m.cmd('warn', b, { target: 'member', options: { [O.reason]: 'b' } });
  assert.equal(m.cases(b)[0].number, 1);
  assert.equal(m.warnCount(b, 'member'), 1);
  assert.equal(m.warnCount(a, 'member'), 2);

  await installGuild(h.fake, a.guild.id, users.owner.id);
  await installGuild(h.fake, b.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [a.guild.id, b.guild.id]);
  const lb = await owner.get(`/guilds/${b.guild.id}/moderation/cases`);
  assert.equal(lb.status, 200, lb.text);
  assert.equal(lb.body.total, 1);
  assert.ok(!lb.text.includes('secret of guild A'));
  const la = await owner.get(`/guilds/${a.guild.id}/moderation/cases?user=${users.member.id}`);
  assert.equal(la.body.total, 2);
  const d = await owner.get(`/guilds/${b.guild.id}/moderation/cases/2`);
  assert.equal(d.status, 404, 'case 2 exists only in A');
  // a user without access to A sees none of it
  const mod = await sessionFor(h.stack, users.member.id);
  const no = await mod.get(`/guilds/${a.guild.id}/moderation/cases`);
  assert.ok(no.status === 403 || no.status === 404, `${no.status} ${no.text}`);
  assert.ok(!no.text.includes('secret of guild A'));
});

// ================================================================== premium

test('premium-gated settings with premium expired: moderation has no x-premium field, every setting saves', async (t) => {
  const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'features', 'moderation', 'schema.json'), 'utf8'));
  const gated = [];
  const walk = (s, p) => {
    if (!s || typeof s !== 'object') return;
    if (s['x-premium']) gated.push(p);
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${p}/${k}`);
    if (s.items) walk(s.items, `${p}/items`);
  };
  walk(schema, '');
  const g = await m.guild(t);
  await installGuild(h.fake, g.guild.id, users.owner.id);
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [g.guild.id]);
  // a premium subscription that expired (and its grace) long ago
  m.x(`INSERT INTO premium_subscriptions (guild_id, tier, source, starts_at, expires_at, grace_until)
       VALUES (:'g', 'premium', 'code', now() - interval '90 days', now() - interval '30 days', now() - interval '23 days')`,
  { g: g.guild.id });
  redis(h.stack.REDIS_URL, 'DEL', `bot:{${g.guild.id}}:premium:status`);
  const st = await owner.get(`/guilds/${g.guild.id}/premium`);
  assert.equal(st.body?.status, 'expired', st.text);
  const doc = {
    mod_log_channel_id: g.channels.modLog.id, mute_role_id: g.roles.muted.id, jail_role_id: g.roles.jail.id,
    moderator_roles: [g.roles.staff.id], admin_roles: [g.roles.moderator.id], dm_on_action: false,
    dm_template: 'You got a {action} in {guild}: {reason}', warn_decay: '14d', escalation_enabled: true,
    thresholds: [{ warnings: 2, action: 'timeout', duration: '1h' }, { warnings: 4, action: 'kick' }],
  };
  const r = await owner.put(`/guilds/${g.guild.id}/settings/moderation`, { document: doc, version: 0 });
  if (gated.length === 0) {
    assert.equal(r.status, 200, `no moderation setting is premium-gated, so an expired guild saves them all: ${r.text}`);
    const row = m.q("SELECT document FROM guild_settings WHERE guild_id = :'g' AND feature = 'moderation'", { g: g.guild.id });
    assert.deepEqual(row[0].document.thresholds, doc.thresholds);
  } else {
    assert.equal(r.status, 403, `gated fields ${gated.join(', ')} are refused on an expired guild: ${r.text}`);
    assert.equal(r.body?.error?.code, 'premium_required');
  }
});
