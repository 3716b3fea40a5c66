// feature_toggle.test.mjs - /feature disable|enable and the router's
// "disabled in this server" answer, with the Manage Server check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput, PERMS } from '../lib/fixtures.mjs';
import { EPHEMERAL, messageText } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';
import { query, redis } from '../lib/store.mjs';

const h = harness();

const feature = (g, sub, name, opts = {}) => chatInput('feature', {
  guild: g, user: 'admin', ...opts, options: [{ name: sub, type: 1, options: [{ name: 'name', type: 3, value: name }] }],
});

async function serverinfo(g, user = 'member') {
  const r = await h.send(chatInput('serverinfo', { guild: g, user }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 4);
  return { r, text: messageText(r.body.data) };
}

function settingsRow(guildId) {
  return query(h.stack.DATABASE_URL,
    "SELECT document FROM guild_settings WHERE guild_id = :'g' AND feature = 'utility'", { g: guildId })[0];
}

test('a disabled feature answers "disabled in this server" until enabled again', async (t) => {
  const g = await h.newGuild(t);

  const before = await serverinfo(g);
  assert.doesNotMatch(before.text, /disabled in this server/i, 'baseline: /serverinfo works');

  await t.test('a member without Manage Server is refused and nothing changes', async () => {
    const r = await h.send(feature(g, 'disable', 'utility', { user: 'member', perms: PERMS.MEMBER }));
    assert.equal(r.status, 200);
    assert.equal(r.body.data.flags & EPHEMERAL, EPHEMERAL);
    assert.match(messageText(r.body.data), /Manage Server|permission/i);
    assert.equal(settingsRow(g.guild.id), undefined, 'no settings row was written');
    assert.doesNotMatch((await serverinfo(g)).text, /disabled in this server/i);
  });

  await t.test('an admin disables utility', async () => {
    const r = await h.send(feature(g, 'disable', 'utility'));
    assert.equal(r.status, 200);
    assert.match(messageText(r.body.data), /disabled/i);
    const row = settingsRow(g.guild.id);
    assert.ok(row, 'guild_settings row for utility');
    assert.equal(row.document.enabled, false);
  });

  await t.test('/serverinfo now answers ephemeral "disabled in this server"', async () => {
    const { r, text } = await serverinfo(g);
    assert.equal(r.body.data.flags & EPHEMERAL, EPHEMERAL);
    assert.match(text, /disabled in this server/i);
    const key = `bot:{${g.guild.id}}:settings:utility`;
    const cached = redis(h.stack.REDIS_URL, 'GET', key);
    if (cached) {
      assert.match(cached, /"enabled"\s*:\s*false/, `cached settings ${key}`);
      assert.ok(Number(redis(h.stack.REDIS_URL, 'TTL', key)) > 0, `${key} has a TTL`);
    }
  });

  await t.test('an admin enables it again and /serverinfo works', async () => {
    const r = await h.send(feature(g, 'enable', 'utility'));
    assert.equal(r.status, 200);
    assert.match(messageText(r.body.data), /enabled/i);
    assert.equal(settingsRow(g.guild.id).document.enabled, true);
    const after = await serverinfo(g);
    assert.doesNotMatch(after.text, /disabled in this server/i);
  });
});

test('disabling a feature in one guild does not touch another', async (t) => {
  const g1 = await h.newGuild(t);
  const g2 = await h.newGuild(t);
  const r = await h.send(feature(g1, 'disable', 'utility'));
  assert.equal(r.status, 200);
  assert.match((await serverinfo(g1)).text, /disabled in this server/i);
  assert.doesNotMatch((await serverinfo(g2)).text, /disabled in this server/i);
});
