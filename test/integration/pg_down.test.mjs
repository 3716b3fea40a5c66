// pg_down.test.mjs - PostgreSQL stopped: commands still answer, and their
// command_log rows arrive once it is back (none lost).
// Stops a shared service: run this file alone or with --test-concurrency=1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput } from '../lib/fixtures.mjs';
import { harness } from '../lib/harness.mjs';
import { query } from '../lib/store.mjs';
import { waitFor } from '../lib/wait.mjs';

const h = harness();

test('PostgreSQL down: 5 commands answer, and all 5 reach command_log later', async (t) => {
  const g = await h.newGuild(t);
  // the guild row is created while PostgreSQL is up, so only command_log is deferred
  const warm = await h.send(chatInput('ping', { guild: g, user: 'member' }));
  assert.equal(warm.status, 200);
  await h.commandLogRow(warm.interaction.id, { timeout: 30000 });

  let stopped = false;
  t.after(() => { if (stopped) h.stackScript('pg-start'); });
  h.stackScript('pg-stop');
  stopped = true;

  const ids = [];
  for (let i = 0; i < 5; i++) {
    const r = await h.send(chatInput('ping', { guild: g, user: 'member' }));
    assert.equal(r.status, 200, `command ${i + 1} while PostgreSQL is down: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.type, 4);
    ids.push(r.interaction.id);
  }

  h.stackScript('pg-start');
  stopped = false;
  const rows = await waitFor(() => {
    const got = query(h.stack.DATABASE_URL,
      "SELECT interaction_id::text AS id FROM command_log WHERE guild_id = :'g'", { g: g.guild.id });
    const have = new Set(got.map((x) => x.id));
    return ids.every((id) => have.has(id)) ? got : null;
  }, { timeout: 60000, interval: 500, message: 'all 5 command_log rows after PostgreSQL is back' });
  const counts = new Map();
  for (const { id } of rows) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const id of ids) assert.equal(counts.get(id), 1, `interaction ${id} logged exactly once`);
});
