// moderation_escalation.test.mjs - the escalation engine and case numbers under concurrency
// (issue 6): thresholds evaluated in ascending order, each automatic action its own case
// referencing the triggering warning; 50 simultaneous /warn in one guild take 50 distinct
// consecutive numbers and each threshold fires exactly once; the Redis count is rebuilt from
// PostgreSQL on a miss; warning decay marks expired warnings inactive.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { harness } from '../lib/harness.mjs';
import { modHelpers } from '../lib/moderation.mjs';
import { redis } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();
const m = modHelpers(h);
const O = { reason: 'reason' };

const THRESHOLDS = [
  { warnings: 3, action: 'timeout', duration: '1h' },
  { warnings: 5, action: 'kick' },
  { warnings: 7, action: 'ban' },
];

function escalating(g, extra = {}) {
  m.settings(g, { dm_on_action: false, escalation_enabled: true, thresholds: THRESHOLDS, warn_decay: '30d', ...extra });
}

const warn = (g, target, reason = 'w', user = 'moderator') => m.cmd('warn', g, { target, user, options: { [O.reason]: reason } });

test('escalation: 3 warnings -> TIMEOUT case by Guildhall referencing the 3rd warning, with the PATCH made', async (t) => {
  const g = await m.guild(t);
  escalating(g);
  await warn(g, 't1', 'one');
  await warn(g, 't1', 'two');
  assert.equal(m.cases(g).length, 2, 'no escalation below 3');
  const since = await h.fake.seq();
  await warn(g, 't1', 'three');
  const cs = await m.waitCases(g, 4, { message: 'the escalation case after the 3rd warning' });
  assert.equal(cs.length, 4, JSON.stringify(cs));
  const [w3, esc] = [cs[2], cs[3]];
  assert.equal(w3.type, 'WARN');
  assert.equal(esc.type, 'TIMEOUT');
  assert.equal(esc.refs_case, w3.number, 'references the triggering warning');
  assert.equal(esc.moderator_id, null, 'made by Guildhall itself');
  assert.equal(esc.target_id, g.extra.t1.id);
  assert.equal(Number(esc.duration_s), 3600);
  await waitFor(() => m.cases(g)[3].status !== 'pending', { message: 'the escalation settled' });
  assert.equal(m.cases(g)[3].status, 'active', m.cases(g)[3].error);
  const acts = await m.actions(g, since);
  assert.equal(acts.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/members/${g.extra.t1.id}`)).length, 1);
  assert.equal(m.warnCount(g, 't1'), 3);
  // the 4th warning escalates nothing; another member's count is separate
  await warn(g, 't1', 'four');
  await warn(g, 't2', 'other');
  assert.equal(m.cases(g).length, 6);
  assert.deepEqual(m.cases(g).map((c) => c.type), ['WARN', 'WARN', 'WARN', 'TIMEOUT', 'WARN', 'WARN']);
});

test('escalation off: no automatic case however many warnings', async (t) => {
  const g = await m.guild(t);
  escalating(g, { escalation_enabled: false });
  for (let i = 0; i < 4; i++) await warn(g, 't1', `w${i}`);
  assert.deepEqual(m.cases(g).map((c) => c.type), ['WARN', 'WARN', 'WARN', 'WARN']);
});

test('voided warnings stop counting toward a threshold', async (t) => {
  const g = await m.guild(t);
  escalating(g);
  await warn(g, 't1', 'one');
  await warn(g, 't1', 'two');
  await m.cmd('case', g, { sub: 'void', options: { number: 2, reason: 'wrong person' } });
  await warn(g, 't1', 'three');
  assert.deepEqual(m.cases(g).map((c) => c.type), ['WARN', 'WARN', 'WARN'], 'only 2 active: no escalation');
  assert.equal(m.warnCount(g, 't1'), 2);
});

test('Redis count lost: rebuilt from PostgreSQL, the threshold still fires at the right warning', async (t) => {
  const g = await m.guild(t);
  escalating(g);
  await warn(g, 't1', 'one');
  await warn(g, 't1', 'two');
  redis(h.stack.REDIS_URL, 'DEL', m.warnKey(g, 't1'));
  await warn(g, 't1', 'three');
  const cs = await m.waitCases(g, 4, { message: 'the escalation after the count was rebuilt' });
  assert.equal(cs[3].type, 'TIMEOUT');
  assert.equal(cs[3].refs_case, 3);
  assert.equal(m.warnCount(g, 't1'), 3, 'the count is back in Redis');
});

test('decay: an expired warning becomes inactive (kept), stops counting', async (t) => {
  const g = await m.guild(t);
  escalating(g);
  await warn(g, 't1', 'old');
  await warn(g, 't1', 'new');
  m.x("UPDATE mod_cases SET expires_at = now() - interval '1 minute' WHERE guild_id = :'g' AND number = 1", { g: g.guild.id });
  // the hourly decay job (moderation:decay) run now through a durable timer of no guild
  const key = `test-decay:${g.guild.id}`;
  t.after(() => m.x("DELETE FROM scheduled_actions WHERE guild_id IS NULL AND idempotency_key = :'k'", { k: key }));
  m.x(`INSERT INTO scheduled_actions (guild_id, kind, payload, idempotency_key, due_at)
       VALUES (NULL, 'moderation:decay', '{}', :'k', now())`, { k: key });
  await waitFor(() => m.cases(g)[0].status === 'inactive',
    { timeout: 60000, interval: 500, message: 'the decay job marks warning 1 inactive' });
  assert.equal(m.cases(g)[1].status, 'active', 'the unexpired warning still counts');
  assert.equal(m.cases(g).length, 2, 'kept in history');
  await warn(g, 't1', 'third');
  assert.deepEqual(m.cases(g).map((c) => c.type), ['WARN', 'WARN', 'WARN'], 'only 2 active: no escalation');
});

test('concurrency: 50 simultaneous /warn -> 50 distinct consecutive numbers, one escalation per threshold', async (t) => {
  const g = await m.guild(t);
  escalating(g);
  const bodies = Array.from({ length: 50 }, (_, i) => m.build('warn', g, { target: 't1', options: { [O.reason]: `burst ${i}` } }));
  const answers = await Promise.all(bodies.map((b) => h.send(b)));
  for (const r of answers) assert.equal(r.status, 200, JSON.stringify(r.body));
  const cs = await m.waitCases(g, 53, { timeout: 60000, message: '50 warnings and 3 escalation cases' });
  assert.equal(cs.length, 53, `50 warnings + 3 escalations: ${cs.map((c) => `${c.number}:${c.type}`).join(' ')}`);
  assert.deepEqual(cs.map((c) => c.number), Array.from({ length: 53 }, (_, i) => i + 1), 'gapless, distinct numbers');
  const warns = cs.filter((c) => c.type === 'WARN');
  assert.equal(warns.length, 50);
  assert.equal(new Set(warns.map((c) => c.interaction_id)).size, 50, 'one case per interaction');
  const esc = cs.filter((c) => c.type !== 'WARN');
  assert.deepEqual(esc.map((c) => c.type).sort(), ['BAN', 'KICK', 'TIMEOUT']);
  const byType = Object.fromEntries(esc.map((c) => [c.type, c]));
  assert.equal(byType.TIMEOUT.refs_case, warns[2].number, 'timeout references the 3rd warning');
  assert.equal(byType.KICK.refs_case, warns[4].number, 'kick references the 5th warning');
  assert.equal(byType.BAN.refs_case, warns[6].number, 'ban references the 7th warning');
  for (const c of esc) assert.equal(c.moderator_id, null);
  await waitFor(() => m.warnCount(g, 't1') === 50, { message: 'the Redis count reaches 50' });
});
