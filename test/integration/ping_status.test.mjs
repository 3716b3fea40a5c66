// ping_status.test.mjs - PING/PONG, /ping and /status through nginx -> fcgi,
// and the command_log row each command leaves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput, ping } from '../lib/fixtures.mjs';
import { EPHEMERAL, lineAbout, messageText } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';

const h = harness();

test('PING is answered 200 {"type":1} as JSON', async () => {
  const r = await h.send(ping());
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { type: 1 });
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(r.response_valid, true, JSON.stringify(r.response_errors));
});

test('/ping answers type 4 with allowed_mentions and is logged', async (t) => {
  const g = await h.newGuild(t);
  const r = await h.send(chatInput('ping', { guild: g, user: 'member' }));
  assert.equal(r.status, 200);
  assert.equal(r.body.type, 4);
  assert.ok(r.body.data && 'allowed_mentions' in r.body.data, 'data.allowed_mentions must be set explicitly');
  assert.match(messageText(r.body.data), /pong/i);
  assert.equal(r.response_valid, true, JSON.stringify(r.response_errors));
  const row = await h.commandLogRow(r.interaction.id);
  assert.equal(String(row.guild_id), g.guild.id);
  assert.equal(row.command, 'ping');
  assert.equal(row.success, true);
});

test('/status is ephemeral and reports PostgreSQL and Redis ok', async (t) => {
  const g = await h.newGuild(t);
  const r = await h.send(chatInput('status', { guild: g, user: 'member' }));
  assert.equal(r.status, 200);
  assert.equal(r.body.type, 4);
  assert.equal(r.body.data.flags & EPHEMERAL, EPHEMERAL, 'ephemeral flag 64');
  assert.ok('allowed_mentions' in r.body.data);
  const text = messageText(r.body.data);
  assert.match(lineAbout(text, 'PostgreSQL'), /\bok\b/i, text);
  assert.match(lineAbout(text, 'Redis'), /\bok\b/i, text);
  assert.equal(r.response_valid, true, JSON.stringify(r.response_errors));
});
