// deferred.test.mjs - a deferred command (type 5) whose worker edits
// @original on the fake Discord, and a 429 from Discord that is honoured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput, interactionToken } from '../lib/fixtures.mjs';
import { escapeRe, webhookPath } from '../lib/fake.mjs';
import { harness } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';

const h = harness();

function originalPath(token) {
  return `${webhookPath(h.appId, token)}/messages/@original`;
}

test('/ping deferred:true -> type 5, then the worker PATCHes @original', async (t) => {
  const g = await h.newGuild(t);
  const r = await h.send(chatInput('ping', { guild: g, user: 'member', options: { deferred: true } }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 5);
  assert.equal(r.response_valid, true, JSON.stringify(r.response_errors));
  const [patch] = await h.fake.waitForRequests({ method: 'PATCH', path: originalPath(r.interaction.token) },
    { timeout: 20000, message: 'the worker\'s PATCH of @original' });
  assert.equal(patch.status, 200, JSON.stringify(patch.response));
  assert.equal(patch.valid, true, JSON.stringify(patch.errors));
  assert.equal(patch.has_allowed_mentions, true, 'the edit sets allowed_mentions');
  assert.match(patch.body.content ?? '', /pong/i);
  assert.match(patch.headers['user-agent'] ?? '', /^DiscordBot \(/);
  const st = await h.fake.state();
  const ix = st.interactions.find((x) => x.token === r.interaction.token);
  assert.equal(ix.original.flags & 128, 0, 'the loading state is gone');
  await h.commandLogRow(r.interaction.id, { timeout: 30000 });
});

test('a 429 on @original is retried after retry_after', async (t) => {
  const g = await h.newGuild(t);
  const id = snowflake();
  const token = interactionToken(id);
  await h.fake.fail({ method: 'PATCH', path_re: `${escapeRe(token)}/messages/@original$`, status: 429, retry_after: 0.5, count: 1 });
  const r = await h.send(chatInput('ping', { guild: g, id, token, options: { deferred: true } }));
  assert.equal(r.status, 200);
  assert.equal(r.body.type, 5);
  const patches = await h.fake.waitForRequests({ method: 'PATCH', path: originalPath(token) },
    { count: 2, timeout: 20000, message: 'the first (429) and the retried PATCH' });
  const [first, second] = patches;
  assert.equal(first.status, 429);
  assert.equal(first.injected, true);
  assert.equal(second.status, 200, JSON.stringify(second.response));
  const gap = second.time - first.time;
  assert.ok(gap >= 490, `retried ${gap.toFixed(1)} ms after the 429; retry_after was 500 ms`);
  assert.ok(gap < 10000, `retried only after ${gap.toFixed(1)} ms`);
  assert.deepEqual(second.body, first.body, 'the retry sends the same edit');
  assert.equal(patches.length, 2, 'no extra PATCHes');
});
