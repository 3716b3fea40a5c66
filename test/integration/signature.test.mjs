// signature.test.mjs - every badly signed request is refused with 401 and
// leaves no trace: no command_log row, no call to Discord.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { commandLogRows } from '../lib/store.mjs';

const h = harness();

const cases = [
  ['tampered body', { tamper: true }],
  ['signed with the wrong key', { sign_with_wrong_key: true }],
  ['missing signature headers', { omit_headers: true }],
  ['stale timestamp (now - 600 s)', { timestamp: () => Math.floor(Date.now() / 1000) - 600 }],
  ['future timestamp (now + 600 s)', { timestamp: () => Math.floor(Date.now() / 1000) + 600 }],
];

test('bad signatures are refused with 401 and nothing is recorded', async (t) => {
  const g = await h.newGuild(t);
  const since = await h.fake.seq();
  const refused = [];
  for (const [name, opt] of cases) {
    await t.test(name, async () => {
      const o = { ...opt };
      if (typeof o.timestamp === 'function') o.timestamp = o.timestamp();
      const r = await h.send(chatInput('ping', { guild: g, user: 'admin' }), o);
      assert.equal(r.status, 401, `${name}: got ${r.status} ${JSON.stringify(r.body)}`);
      refused.push(r.interaction);
    });
  }
  // a valid command afterwards is the barrier: once its row is in, the
  // refused ones would have been written too
  const ok = await h.send(chatInput('ping', { guild: g, user: 'admin' }));
  assert.equal(ok.status, 200);
  await h.commandLogRow(ok.interaction.id);
  for (const { id } of refused) {
    assert.deepEqual(commandLogRows(h.stack.DATABASE_URL, id), [], `command_log has a row for refused interaction ${id}`);
  }
  const calls = await h.fake.requests({ since });
  const touched = calls.filter((c) => refused.some((ix) => c.path.includes(ix.token) || c.path.includes(ix.id)));
  assert.deepEqual(touched.map((c) => `${c.method} ${c.path}`), [], 'no Discord calls for refused interactions');
});

test('a signature over a different timestamp is refused', async (t) => {
  const g = await h.newGuild(t);
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ ...chatInput('ping', { guild: g }), id: '1300000000000000099', application_id: h.appId, token: 'x' });
  const { signature } = await h.fake.sign(body, String(now - 1));
  const res = await fetch(h.stack.interactionsUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Signature-Ed25519': signature, 'X-Signature-Timestamp': String(now) },
    body,
  });
  assert.equal(res.status, 401);
});
