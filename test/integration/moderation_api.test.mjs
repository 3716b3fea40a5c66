// moderation_api.test.mjs - the moderation routes of the dashboard API
// (features/moderation/api.c, docs/features/moderation.md): the case list with
// each filter and paging, one case, editing the reason (with its audit_log
// row), voiding (twice: 409), and isolation: a case of guild A is never listed
// or found from guild B's URLs, and a user who manages another guild gets 403.
// Cases are written straight into PostgreSQL (mod_cases), so these tests need
// only the API and the store, not the commands.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  apiRoutes, effectiveNeeds, installGuild, lastSecurityEventId, refreshGuilds, securityEvents, sessionFor,
} from '../lib/api.mjs';
import { makeGuild, users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';
import { cleanupGuild, exec, query } from '../lib/store.mjs';

const h = harness();
const db = h.stack.DATABASE_URL;
const q = (sql, params) => query(db, sql, params);
const OWNER = users.owner.id;
const base = (gid) => `/guilds/${gid}/moderation/cases`;

/**
 * Writes cases of a guild into mod_cases (and its counter): each
 * {number, type, status, target, moderator (null = Guildhall), reason, at
 * (ISO), error, lift, lift_error, refs}.
 */
function insertCases(gid, cases) {
  const values = cases.map((c) => ({
    guild_id: gid, number: c.number, type: c.type, status: c.status ?? 'active', target_id: c.target,
    moderator_id: c.moderator ?? null, reason: c.reason ?? null, created_at: c.at,
    error: c.error ?? (c.status === 'failed' ? 'Missing Permissions' : null),
    lift: c.lift ?? 'none', lift_error: c.lift_error ?? null, refs_case: c.refs ?? null,
    duration_s: c.duration ?? null,
    voided_at: c.status === 'void' ? c.at : null, voided_by: c.status === 'void' ? OWNER : null,
    void_reason: c.status === 'void' ? 'entered twice' : null,
  }));
  exec(db, `
INSERT INTO guilds (id, name) VALUES (:'g', 'moderation api test') ON CONFLICT (id) DO NOTHING;
INSERT INTO mod_cases (guild_id, number, type, status, target_id, moderator_id, reason, created_at, error, lift,
                       lift_error, refs_case, duration_s, voided_at, voided_by, void_reason)
SELECT guild_id, number, type, status, target_id, moderator_id, reason, created_at, error, lift, lift_error,
       refs_case, duration_s, voided_at, voided_by, void_reason
  FROM jsonb_to_recordset((:'v')::jsonb) AS x(guild_id bigint, number bigint, type mod_case_type,
       status mod_case_status, target_id bigint, moderator_id bigint, reason text, created_at timestamptz,
       error text, lift mod_lift_state, lift_error text, refs_case bigint, duration_s bigint,
       voided_at timestamptz, voided_by bigint, void_reason text)
 ORDER BY number;
INSERT INTO mod_case_counters (guild_id, last_number) VALUES (:'g', :'n')
  ON CONFLICT (guild_id) DO UPDATE SET last_number = greatest(mod_case_counters.last_number, EXCLUDED.last_number);
`, { g: gid, v: JSON.stringify(values), n: String(Math.max(...cases.map((c) => c.number))) });
}

const T1 = snowflake();
const T2 = snowflake();
const T3 = snowflake();
const MOD = users.moderator.id;
const ADMIN = users.admin.id;

/** Six cases of every kind the page must show. */
const SIX = [
  { number: 1, type: 'WARN', target: T1, moderator: MOD, reason: 'spam in general', at: '2026-01-10T12:00:00Z' },
  { number: 2, type: 'TIMEOUT', target: T2, moderator: ADMIN, reason: 'raid', at: '2026-01-15T12:00:00Z', duration: 3600 },
  { number: 3, type: 'WARN', status: 'void', target: T1, moderator: ADMIN, reason: 'more spam', at: '2026-02-01T08:00:00Z' },
  { number: 4, type: 'BAN', status: 'failed', target: T3, moderator: MOD, reason: 'scam links', at: '2026-02-10T23:30:00Z' },
  {
    number: 5, type: 'TEMPBAN', target: T2, moderator: null, reason: 'escalation', at: '2026-03-01T00:00:00Z',
    lift: 'failed', lift_error: 'Discord answered 503 three times', refs: 2, duration: 86400,
  },
  { number: 6, type: 'NOTE', target: T3, moderator: MOD, reason: 'keeps asking for admin', at: '2026-03-05T00:00:00Z' },
];

async function setup(t, cases = SIX) {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await sessionFor(h.stack, OWNER);
  await refreshGuilds(owner, g.guild.id);
  if (cases.length) insertCases(g.guild.id, cases);
  return { g, gid: g.guild.id, owner };
}

const numbers = (r) => r.body.cases.map((c) => Number(c.number));

function expectField(r, path) {
  assert.equal(r.status, 400, `expected 400 naming ${path}, got ${r.status}: ${r.text}`);
  assert.equal(r.body?.error?.code, 'invalid_input', r.text);
  assert.equal(r.body.error.fields?.[0]?.path, path, r.text);
  assert.ok(r.body.error.message.length > 0);
}

const row = (gid, n) => q(`SELECT status::text, reason, void_reason, voided_by::text, updated_by::text
                              FROM mod_cases WHERE guild_id = :'g' AND number = :'n'`, { g: gid, n: String(n) })[0];

test('the list: every case newest first, with the case fields and the total', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get(base(gid));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(numbers(r), [6, 5, 4, 3, 2, 1]);
  assert.equal(Number(r.body.total), 6);
  assert.equal(r.body.next_before, null);
  const byN = Object.fromEntries(r.body.cases.map((c) => [Number(c.number), c]));
  assert.equal(byN[1].type, 'WARN');
  assert.equal(byN[1].status, 'active');
  assert.equal(byN[1].target_id, T1, 'snowflakes are strings');
  assert.equal(byN[1].moderator_id, MOD);
  assert.equal(byN[1].reason, 'spam in general');
  assert.equal(Date.parse(byN[1].created_at), Date.parse('2026-01-10T12:00:00Z'));
  assert.equal(byN[4].status, 'failed');
  assert.equal(byN[4].error, 'Missing Permissions', 'a failed case carries Discord\'s error');
  assert.equal(byN[5].lift, 'failed', 'a failed lift is visible');
  assert.equal(byN[5].lift_error, 'Discord answered 503 three times');
  assert.equal(Number(byN[5].refs_case), 2);
  assert.equal(byN[3].status, 'void');
});

test('the filters: member, moderator, type, status, dates, text, and together', async (t) => {
  const { gid, owner } = await setup(t);
  const list = async (qs) => {
    const r = await owner.get(`${base(gid)}?${qs}`);
    assert.equal(r.status, 200, `${qs}: ${r.text}`);
    return r;
  };
  const cases = [
    [`user=${T1}`, [3, 1]],
    [`user=${T2}`, [5, 2]],
    [`moderator=${MOD}`, [6, 4, 1]],
    ['type=WARN', [3, 1]],
    ['type=warn', [3, 1]],
    ['type=TEMPBAN', [5]],
    ['status=failed', [4]],
    ['status=void', [3]],
    ['status=active', [6, 5, 2, 1]],
    ['from=2026-02-01&to=2026-02-10', [4, 3]], // "to" as a date includes the whole day
    ['from=2026-02-01T09:00:00Z', [6, 5, 4]],
    ['to=2026-01-15T11:59:59Z', [1]],
    ['q=spam', [3, 1]],
    ['q=scam%20links', [4]],
    [`user=${T1}&type=WARN&status=active`, [1]],
    [`user=${T3}&moderator=${ADMIN}`, []],
  ];
  for (const [qs, want] of cases) {
    const r = await list(qs);
    assert.deepEqual(numbers(r), want, qs);
    assert.equal(Number(r.body.total), want.length, `${qs}: total`);
  }
});

test('paging: limit, before and next_before walk every case once', async (t) => {
  const { gid, owner } = await setup(t);
  const seen = [];
  let before = 0;
  const pages = [];
  for (let i = 0; i < 5; i++) {
    const r = await owner.get(`${base(gid)}?limit=2${before ? `&before=${before}` : ''}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(Number(r.body.total), 6, 'total ignores paging');
    seen.push(...numbers(r));
    pages.push(r.body.next_before);
    if (r.body.next_before === null) break;
    before = Number(r.body.next_before);
  }
  assert.deepEqual(seen, [6, 5, 4, 3, 2, 1]);
  assert.deepEqual(pages.map((p) => (p === null ? null : Number(p))), [5, 3, null], 'no empty last page');
  // a page that ends exactly at the oldest case says there is nothing older
  const exact = await owner.get(`${base(gid)}?limit=3&before=4`);
  assert.deepEqual(numbers(exact), [3, 2, 1]);
  assert.equal(exact.body.next_before, null);
  // paging keeps the filters
  const warns = await owner.get(`${base(gid)}?type=WARN&limit=1`);
  assert.deepEqual(numbers(warns), [3]);
  assert.equal(Number(warns.body.next_before), 3);
  const older = await owner.get(`${base(gid)}?type=WARN&limit=1&before=3`);
  assert.deepEqual(numbers(older), [1]);
  assert.equal(older.body.next_before, null);
});

test('invalid filters answer 400 naming the field', async (t) => {
  const { gid, owner } = await setup(t, []);
  const bad = [
    ['user=abc', '/user'], ['user=0', '/user'], ['moderator=12x', '/moderator'],
    ['type=SMITE', '/type'], ['status=gone', '/status'],
    ['from=2026-13-01', '/from'], ['from=2026-02-30', '/from'], ['to=yesterday', '/to'],
    ['from=2026-03-01&to=2026-02-01', '/to'],
    [`q=${'x'.repeat(101)}`, '/q'],
    ['before=0', '/before'], ['before=-3', '/before'],
    ['limit=0', '/limit'], ['limit=101', '/limit'], ['limit=ten', '/limit'],
  ];
  for (const [qs, path] of bad) expectField(await owner.get(`${base(gid)}?${qs}`), path);
  const ok = await owner.get(`${base(gid)}?q=${'x'.repeat(100)}&limit=100`);
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.body.cases, []);
  assert.equal(Number(ok.body.total), 0);
});

test('one case: its detail, 404 for a number the server does not have, 400 for a non-number', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.get(`${base(gid)}/5`);
  assert.equal(r.status, 200, r.text);
  assert.equal(Number(r.body.number), 5);
  assert.equal(r.body.type, 'TEMPBAN');
  assert.equal(r.body.lift, 'failed');
  assert.equal(Number(r.body.duration_s), 86400);
  const missing = await owner.get(`${base(gid)}/7`);
  assert.equal(missing.status, 404, missing.text);
  assert.equal(missing.body.error.code, 'not_found');
  assert.match(missing.body.error.message, /#7/);
  expectField(await owner.get(`${base(gid)}/abc`), '/number');
  expectField(await owner.get(`${base(gid)}/0`), '/number');
});

test('edit a reason: saved, audited with before and after, validated', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.put(`${base(gid)}/1/reason`, { reason: 'spam in #general, three links' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.reason, 'spam in #general, three links');
  assert.equal(row(gid, 1).reason, 'spam in #general, three links');
  const audit = q(`SELECT actor_id::text, target, before::text, after::text FROM audit_log
                    WHERE guild_id = :'g' AND action = 'moderation.case.reason' ORDER BY id`, { g: gid });
  assert.equal(audit.length, 1, JSON.stringify(audit));
  assert.equal(audit[0].actor_id, OWNER);
  assert.match(audit[0].before ?? '', /spam in general/);
  assert.match(audit[0].after ?? '', /three links/);

  expectField(await owner.put(`${base(gid)}/1/reason`, {}), '/reason');
  expectField(await owner.put(`${base(gid)}/1/reason`, { reason: '   ' }), '/reason');
  expectField(await owner.put(`${base(gid)}/1/reason`, { reason: 42 }), '/reason');
  expectField(await owner.put(`${base(gid)}/1/reason`, { reason: 'é'.repeat(513) }), '/reason');
  const long = await owner.put(`${base(gid)}/1/reason`, { reason: 'é'.repeat(512) });
  assert.equal(long.status, 200, `512 characters (1024 bytes) fit: ${long.text}`);
  const missing = await owner.put(`${base(gid)}/9/reason`, { reason: 'nothing there' });
  assert.equal(missing.status, 404, missing.text);
  const noCsrf = await owner.put(`${base(gid)}/1/reason`, { reason: 'forged' }, { csrf: false });
  assert.equal(noCsrf.status, 403, noCsrf.text);
  assert.equal(row(gid, 1).reason, 'é'.repeat(512), 'the refused edits changed nothing');
  assert.equal(q(`SELECT count(*)::int AS n FROM audit_log WHERE guild_id = :'g' AND action = 'moderation.case.reason'`,
    { g: gid })[0].n, 2, 'one audit row per edit that happened');
});

test('void a case: who and why kept; a second void answers 409 and changes nothing', async (t) => {
  const { gid, owner } = await setup(t);
  const r = await owner.post(`${base(gid)}/2/void`, { reason: 'wrong member' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'void');
  assert.equal(r.body.void_reason, 'wrong member');
  assert.equal(r.body.voided_by, OWNER);
  const voidRow = row(gid, 2);
  assert.deepEqual([voidRow.status, voidRow.reason, voidRow.void_reason, voidRow.voided_by], ['void', 'raid', 'wrong member', OWNER]);

  const again = await owner.post(`${base(gid)}/2/void`, { reason: 'once more' });
  assert.equal(again.status, 409, again.text);
  assert.equal(again.body.error.code, 'conflict');
  assert.match(again.body.error.message, /already void/);
  assert.equal(row(gid, 2).void_reason, 'wrong member', 'the second void changed nothing');
  // a case voided before (case 3) is a conflict too
  assert.equal((await owner.post(`${base(gid)}/3/void`, { reason: 'x' })).status, 409);

  expectField(await owner.post(`${base(gid)}/1/void`, {}), '/reason');
  expectField(await owner.post(`${base(gid)}/1/void`, { reason: 'x'.repeat(513) }), '/reason');
  assert.equal(row(gid, 1).status, 'active', 'the refused voids changed nothing');
  assert.equal((await owner.post(`${base(gid)}/8/void`, { reason: 'nothing there' })).status, 404);

  const voided = await owner.get(`${base(gid)}?status=void`);
  assert.deepEqual(numbers(voided), [3, 2]);
});

test('cross-guild: a case of guild A is never listed, found, edited or voided from guild B', async (t) => {
  const a = await setup(t, [
    { number: 1, type: 'BAN', target: T1, moderator: MOD, reason: 'secret of guild A', at: '2026-01-01T00:00:00Z' },
    { number: 2, type: 'WARN', target: T2, moderator: MOD, reason: 'another of A', at: '2026-01-02T00:00:00Z' },
  ]);
  const b = await setup(t, [
    { number: 1, type: 'WARN', target: T3, moderator: ADMIN, reason: 'B case one', at: '2026-01-05T00:00:00Z' },
  ]);
  const { owner } = a;
  const listB = await owner.get(base(b.gid));
  assert.equal(listB.status, 200, listB.text);
  assert.deepEqual(numbers(listB), [1]);
  assert.equal(Number(listB.body.total), 1);
  for (const qs of ['', `?user=${T1}`, '?q=secret', '?type=BAN', `?moderator=${MOD}`]) {
    const r = await owner.get(`${base(b.gid)}${qs}`);
    assert.equal(r.status, 200, r.text);
    for (const leak of ['secret of guild A', 'another of A', T1, T2]) assert.ok(!r.text.includes(leak), `B${qs} mentions ${leak}`);
  }
  const oneB = await owner.get(`${base(b.gid)}/1`);
  assert.equal(oneB.body.reason, 'B case one', 'B\'s case #1 is B\'s own');
  const twoB = await owner.get(`${base(b.gid)}/2`);
  assert.equal(twoB.status, 404, `A's case #2 through B's URL: ${twoB.text}`);
  assert.ok(!twoB.text.includes('another of A'));
  assert.equal((await owner.put(`${base(b.gid)}/2/reason`, { reason: 'hijack' })).status, 404);
  assert.equal((await owner.post(`${base(b.gid)}/2/void`, { reason: 'hijack' })).status, 404);
  assert.deepEqual(row(a.gid, 2), { status: 'active', reason: 'another of A', void_reason: null, voided_by: null, updated_by: null });
  assert.equal(q(`SELECT count(*)::int AS n FROM audit_log WHERE guild_id IN (:'a', :'b') AND action LIKE 'moderation.%'`,
    { a: a.gid, b: b.gid })[0].n, 0, 'nothing audited');
});

test('a user who manages another guild gets 403 on every moderation route of this one', async (t) => {
  const { gid } = await setup(t);
  // the fixture moderator owns guild C and is only a member (no Manage Server) of this one
  const c = makeGuild({ ids: { guild: snowflake() }, ownerKey: 'moderator', botUserId: h.stack.DISCORD_APPLICATION_ID });
  await h.fake.addGuild(c);
  t.after(() => { cleanupGuild(h.stack, c.guild.id); });
  await installGuild(h.fake, c.guild.id, MOD);
  insertCases(c.guild.id, [{ number: 1, type: 'NOTE', target: T1, moderator: MOD, reason: 'C note', at: '2026-01-01T00:00:00Z' }]);
  const mod = await sessionFor(h.stack, MOD);
  await refreshGuilds(mod, c.guild.id);
  const own = await mod.get(base(c.guild.id));
  assert.equal(own.status, 200, `the moderator reads his own guild's cases: ${own.text}`);
  assert.deepEqual(numbers(own), [1]);

  const since = lastSecurityEventId(h.stack);
  const tries = [
    ['GET', base(gid)], ['GET', `${base(gid)}/1`],
    ['PUT', `${base(gid)}/1/reason`, { reason: 'mine now' }], ['POST', `${base(gid)}/1/void`, { reason: 'gone' }],
  ];
  for (const [method, path, body] of tries) {
    const r = await mod.api(method, path, body ? { body } : {});
    assert.equal(r.status, 403, `${method} ${path}: ${r.status} ${r.text}`);
    assert.equal(r.body?.error?.code, 'forbidden');
    assert.ok(!r.text.includes('spam in general'));
  }
  assert.equal(securityEvents(h.stack, since, { kind: 'guild.forbidden', guildId: gid, userId: MOD }).length, tries.length);
  assert.deepEqual(row(gid, 1), { status: 'active', reason: 'spam in general', void_reason: null, voided_by: null, updated_by: null });
});

test('the route table lists the four moderation routes (so api_isolation walks them)', () => {
  const mine = apiRoutes(h.stack).filter((r) => r.path.includes('/moderation/'));
  assert.deepEqual(mine.map((r) => `${r.method} ${r.path}`).sort(), [
    'GET /api/v1/guilds/{id}/moderation/cases',
    'GET /api/v1/guilds/{id}/moderation/cases/{number}',
    'POST /api/v1/guilds/{id}/moderation/cases/{number}/void',
    'PUT /api/v1/guilds/{id}/moderation/cases/{number}/reason',
  ]);
  for (const r of mine) {
    assert.ok(effectiveNeeds(r).has('guild'), `${r.path} needs guild access`);
    assert.equal(r.rate_limit, r.method === 'GET' ? 'read' : 'write', `${r.method} ${r.path}`);
  }
});

test('a /warn made in Discord shows in the list and the detail, and its void stops the count', async (t) => {
  const { modHelpers } = await import('../lib/moderation.mjs');
  const m = modHelpers(h);
  const g = await m.guild(t);
  m.quiet(g);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await sessionFor(h.stack, OWNER);
  await refreshGuilds(owner, g.guild.id);
  const a = await m.cmd('warn', g, { target: 't1', options: { reason: 'posted a scam link' } });
  assert.match(a.text, /Case #1/, a.text);
  const t1 = g.extra.t1.id;

  const list = await owner.get(`${base(g.guild.id)}?user=${t1}`);
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(numbers(list), [1]);
  const c = list.body.cases[0];
  assert.deepEqual([c.type, c.status, c.target_id, c.moderator_id, c.reason],
    ['WARN', 'active', t1, users.moderator.id, 'posted a scam link']);
  assert.ok(c.expires_at, 'a warning decays (default 30 days)');

  const v = await owner.post(`${base(g.guild.id)}/1/void`, { reason: 'warned the wrong member' });
  assert.equal(v.status, 200, v.text);
  assert.equal(m.cases(g)[0].status, 'void');
  const count = m.warnCount(g, 't1');
  assert.ok(count === null || count === 0, `the Redis count no longer counts the void warning: ${count}`);
});
