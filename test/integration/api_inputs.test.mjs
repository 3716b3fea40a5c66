// api_inputs.test.mjs - every refusal of bad input the API has, each answered 400 (or 404) with the
// field named and nothing changed: the moderation case filters, case numbers and reasons, settings
// documents (shape, version, the toggle, unknown channels and roles), member search and paging.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { users } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { exec, query } from '../lib/store.mjs';

const h = harness();
const OWNER = users.owner.id;
const DEV = '444455556666777788';

async function setup(t) {
  const g = await h.newGuild(t);
  await installGuild(h.fake, g.guild.id, OWNER);
  const owner = await sessionFor(h.stack, OWNER);
  await refreshGuilds(owner, g.guild.id);
  return { g, gid: g.guild.id, owner };
}

function field(r) {
  return r.body?.error?.fields?.[0]?.path;
}

test('moderation case filters: each bad value is a 400 naming it; good ones list', async (t) => {
  const { gid, owner } = await setup(t);
  exec(h.stack.DATABASE_URL, `
    INSERT INTO mod_case_counters (guild_id, last_number) VALUES (:'g', 2);
    INSERT INTO mod_cases (guild_id, number, type, status, target_id, moderator_id, reason)
      VALUES (:'g', 1, 'WARN', 'active', 987654321098765432, 111122223333444455, 'first'),
             (:'g', 2, 'NOTE', 'active', 987654321098765432, 111122223333444455, 'second');`, { g: gid });
  const base = `/guilds/${gid}/moderation/cases`;
  const bad = [
    ['user=abc', '/user'], ['moderator=0', '/moderator'], ['type=NOPE', '/type'], ['status=gone', '/status'],
    ['from=yesterday', '/from'], ['to=2026-13-45', '/to'], ['from=2026-05-02&to=2026-05-01', '/to'],
    [`q=${'x'.repeat(101)}`, '/q'], ['before=-1', '/before'], ['before=abc', '/before'], ['limit=0', '/limit'],
    ['limit=101', '/limit'], ['limit=ten', '/limit'],
  ];
  for (const [qs, path] of bad) {
    const r = await owner.get(`${base}?${qs}`);
    assert.equal(r.status, 400, `${qs}: ${r.text}`);
    assert.equal(field(r), path, `${qs} names ${path}: ${r.text}`);
  }
  const good = ['type=warn', 'status=active', 'from=2016-01-01', `to=${Date.now() + 86400000}`,
    'to=2099-12-31', 'q=firs', 'before=2', 'limit=1', `user=${users.member.id}`, `moderator=${OWNER}`];
  for (const qs of good) {
    const r = await owner.get(`${base}?${qs}`);
    assert.equal(r.status, 200, `${qs}: ${r.text}`);
  }
  const one = await owner.get(`${base}?limit=1`);
  assert.equal(one.body.cases.length, 1);
  assert.equal(one.body.total, 2);
  assert.equal(one.body.next_before, 2);

  for (const n of ['abc', '0', '-3', '99999999999999999999']) {
    const r = await owner.get(`${base}/${n}`);
    assert.equal(r.status, 400, `${n}: ${r.text}`);
  }
  assert.equal((await owner.get(`${base}/7`)).status, 404);

  for (const [body, why] of [[{}, 'missing'], [{ reason: '' }, 'empty'], [{ reason: 42 }, 'not text'],
    [{ reason: 'a\u0001b' }, 'control character'], [{ reason: 'x'.repeat(513) }, 'too long']]) {
    const r = await owner.put(`${base}/1/reason`, body);
    assert.equal(r.status, 400, `reason ${why}: ${r.text}`);
    assert.equal(field(r), '/reason');
    const v = await owner.post(`${base}/1/void`, body);
    assert.equal(v.status, 400, `void ${why}: ${v.text}`);
  }
  assert.equal((await owner.put(`${base}/9/reason`, { reason: 'x' })).status, 404);
  assert.equal((await owner.post(`${base}/9/void`, { reason: 'x' })).status, 404);
  const rows = query(h.stack.DATABASE_URL, "SELECT reason FROM mod_cases WHERE guild_id = :'g' ORDER BY number", { g: gid });
  assert.deepEqual(rows.map((r) => r.reason), ['first', 'second'], 'nothing changed');
});

test('settings documents: shape, version, toggle, unknown channels and roles, schema-less features', async (t) => {
  const { g, gid, owner } = await setup(t);
  const put = (feature, body) => owner.put(`/guilds/${gid}/settings/${feature}`, body);
  const cases = [
    ['core', { version: 0 }, '/document'],
    ['core', { document: [], version: 0 }, '/document'],
    ['core', { document: {} }, '/version'],
    ['core', { document: {}, version: -1 }, '/version'],
    ['utility', { document: { enabled: 'no' }, version: 0 }, '/document/enabled'],
    ['core', { document: { enabled: false }, version: 0 }, '/document/enabled'],
  ];
  for (const [feature, body, path] of cases) {
    const r = await put(feature, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(field(r), path, r.text);
  }
  const chan = await put('core', { document: { alert_channel_id: '1999999999999999999' }, version: 0 });
  assert.equal(chan.status, 400, chan.text);
  assert.match(chan.body.error.fields[0].message, /not a channel of this server/);
  for (const [role, why] of [[g.roles.bot.id, /managed/], [gid, /@everyone/], ['1999999999999999999', /not a role/]]) {
    const r = await put('core', { document: { manager_role_id: role }, version: 0 });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.error.fields[0].message, why);
  }
  const nested = await put('moderation', { document: { thresholds: [{ warnings: 0, action: 'explode' }] }, version: 0 });
  assert.equal(nested.status, 400, nested.text);
  const paths = nested.body.error.fields.map((f) => f.path).sort();
  assert.deepEqual(paths, ['/thresholds/0/action', '/thresholds/0/warnings']);
  assert.equal((await owner.get(`/guilds/${gid}/settings/premium`)).status, 404, 'premium has no settings');
  assert.equal((await put('premium', { document: {}, version: 0 })).status, 404);
  assert.equal((await owner.get(`/guilds/${gid}/settings/nope`)).status, 404);
  const ok = await put('core', { document: { alert_channel_id: g.channels.modLog.id }, version: 0 });
  assert.equal(ok.status, 200, ok.text);
  const rows = query(h.stack.DATABASE_URL, "SELECT feature FROM guild_settings WHERE guild_id = :'g'", { g: gid });
  assert.deepEqual(rows.map((r) => r.feature), ['core'], 'only the valid save was written');
});

test('member search and paging limits; a query too long; dead letters limit', async (t) => {
  const { gid, owner } = await setup(t);
  for (const qs of ['limit=0', 'limit=101', 'limit=x']) {
    const r = await owner.get(`/guilds/${gid}/members?${qs}`);
    assert.equal(r.status, 400, `${qs}: ${r.text}`);
    assert.equal(field(r), '/limit');
  }
  const all = await owner.get(`/guilds/${gid}/members?limit=5`);
  assert.equal(all.status, 200, all.text);
  assert.ok(all.body.members.length >= 1 && all.body.members.length <= 5);
  const long = await owner.get(`/guilds/${gid}/members?query=${'b'.repeat(101)}`);
  assert.equal(long.status, 400, long.text);
  assert.equal(field(long), '/query');
  const grant = await owner.post(`/guilds/${gid}/authorized-users`, { user_id: 'abc' });
  assert.equal(grant.status, 400);
  assert.equal(field(grant), '/user_id');
  assert.equal((await owner.del(`/guilds/${gid}/authorized-users/abc`)).status, 400);
  assert.equal((await owner.del(`/guilds/${gid}/authorized-users/${users.muted.id}`)).status, 404);
  const dev = await sessionFor(h.stack, DEV);
  assert.equal((await dev.get('/jobs/dead?limit=x')).status, 400);
  assert.equal((await dev.get('/jobs/dead?limit=501')).status, 400);
  const body = await owner.api('POST', `/guilds/${gid}/authorized-users`, { body: '[1,2]' });
  assert.equal(body.status, 400);
  assert.equal(body.body.error.code, 'invalid_json');
});
