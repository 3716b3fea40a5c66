// redis_down.test.mjs - Redis stopped mid-test: /status still answers and
// says Redis is down, /ping still answers, commands are still logged; then
// Redis comes back and /status says ok again.
// Stops a shared service: run this file alone or with --test-concurrency=1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput } from '../lib/fixtures.mjs';
import { lineAbout, messageText } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();

async function status(g) {
  const r = await h.send(chatInput('status', { guild: g, user: 'admin' }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 4);
  return messageText(r.body.data);
}

test('Redis down: /status says so, /ping still answers', async (t) => {
  const g = await h.newGuild(t);
  assert.match(lineAbout(await status(g), 'Redis'), /\bok\b/i, 'Redis is up before the test');

  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('redis-start'); });
  h.stackScript('redis-stop');
  stopped = true;

  const text = await status(g);
  assert.match(lineAbout(text, 'Redis'), /down|unavailable|unreachable|error/i, text);
  assert.match(lineAbout(text, 'PostgreSQL'), /\bok\b/i, text);

  const p = await h.send(chatInput('ping', { guild: g, user: 'member' }));
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.equal(p.body.type, 4);

  h.stackScript('redis-start');
  stopped = false;
  await waitFor(async () => /\bok\b/i.test(lineAbout(await status(g), 'Redis')),
    { timeout: 20000, interval: 250, message: '/status to report Redis ok again' });
  // the ping made while Redis was down is not lost
  await h.commandLogRow(p.interaction.id, { timeout: 30000 });
});
