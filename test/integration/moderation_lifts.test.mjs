// moderation_lifts.test.mjs - what the other moderation files leave out: the DM a member gets
// before a kick (and that a closed DM does not stop the kick), and the worker's lifts of a mute
// (the role removed) and of a jail (the saved roles given back, the jail role taken).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);
const O = { reason: 'reason', duration: 'duration' };

test('DM before a kick: the member is told first, then kicked; a closed DM does not stop the kick', async (t) => {
  const g = await m.guild(t);
  m.quiet(g, { dm_on_action: true, dm_template: 'You received a {action} in {guild}. Reason: {reason}' });
  const since = await h.fake.seq();
  const a = await m.cmd('kick', g, { target: 't1', options: { [O.reason]: 'spam *links*' } });
  assert.ok(!a.ephemeral, a.text);
  const reqs = await h.fake.requests({ since });
  const open = reqs.findIndex((r) => r.method === 'POST' && r.path === '/api/v10/users/@me/channels');
  assert.ok(open >= 0, 'a DM channel was opened');
  assert.equal(reqs[open].body.recipient_id, g.extra.t1.id);
  const dm = reqs.findIndex((r, i) => i > open && r.method === 'POST' && /\/channels\/[0-9]+\/messages$/.test(r.path)
    && String(r.body?.content ?? '').includes('Reason:'));
  assert.ok(dm > open, 'the DM was sent');
  assert.match(reqs[dm].body.content, /kick/i);
  assert.match(reqs[dm].body.content, /spam \\\*links\\\*/, 'the reason is escaped for markdown');
  assert.deepEqual(reqs[dm].body.allowed_mentions, { parse: [] });
  const kick = reqs.findIndex((r) => r.method === 'DELETE' && r.path === `/api/v10/guilds/${g.guild.id}/members/${g.extra.t1.id}`);
  assert.ok(kick > dm, 'the kick came after the DM');

  // DMs closed: Discord answers 50007; the kick still happens and the case is active
  await h.fake.call('POST', `/_fake/users/${g.extra.t2.id}/dms`, { closed: true });
  t.after(() => h.fake.call('POST', `/_fake/users/${g.extra.t2.id}/dms`, { closed: false }));
  const b = await m.cmd('kick', g, { target: 't2', options: { [O.reason]: 'closed dms' } });
  assert.ok(!b.ephemeral, b.text);
  const c = m.cases(g).find((x) => x.number === 2);
  assert.equal(c.status, 'active', c.error);
  assert.equal(await m.fakeMember(g, 't2'), undefined, 'kicked anyway');
});

test('timed mute and jail: the worker removes the mute role and gives the jailed member their roles back', async (t) => {
  const g = await m.guild(t);
  m.quiet(g, { mute_role_id: g.roles.muted.id, jail_role_id: g.roles.jail.id });
  const before = (await m.fakeMember(g, 't2')).roles.slice().sort();
  const a = await m.cmd('mute', g, { target: 't1', options: { [O.duration]: '2s', [O.reason]: 'flood' } });
  assert.ok(!a.ephemeral, a.text);
  const j = await m.cmd('jail', g, { target: 't2', options: { [O.duration]: '2s', [O.reason]: 'evasion' } });
  assert.ok(!j.ephemeral, j.text);
  assert.deepEqual((await m.fakeMember(g, 't2')).roles, [g.roles.jail.id], 'jailed: only the jail role');

  const done = await waitFor(() => {
    const cs = m.cases(g);
    return cs.length === 2 && cs.every((c) => c.lift === 'done') ? cs : null;
  }, { timeout: 60000, message: 'both lifts done by the worker' });
  for (const c of done) assert.equal(c.status, 'inactive', `${c.type} ends inactive`);
  const muted = await m.fakeMember(g, 't1');
  assert.ok(!muted.roles.includes(g.roles.muted.id), 'the mute role is gone');
  const freed = await m.fakeMember(g, 't2');
  assert.deepEqual(freed.roles.slice().sort(), before, 'the saved roles are back, the jail role gone');
});
