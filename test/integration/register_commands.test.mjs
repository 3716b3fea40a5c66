// register_commands.test.mjs - guildhall-register-commands sends the registry's commands, and
// the fake Discord (which validates every body against Discord's OpenAPI schemas) accepts them:
// a command whose options Discord would refuse fails here, not on the operator's first deploy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';

import { loadStack } from '../lib/stack.mjs';
import { FakeDiscord } from '../lib/fake.mjs';
import { APPLICATION_ID, DEMO_GUILD_ID } from '../lib/fixtures.mjs';

const run = promisify(execFile);

test('register-commands: every registry command is accepted by Discord\'s schema (guild and global)', async () => {
  const stack = loadStack();
  const fake = new FakeDiscord(stack.GH_FAKE_DISCORD_URL);
  const bin = path.join(stack.GH_BIN, 'guildhall-register-commands');
  const env = { ...process.env, ...stack, LOG_FILE: '' };

  const dry = await run(bin, ['--dry-run'], { env });
  const commands = JSON.parse(dry.stdout);
  assert.ok(commands.length >= 20, `only ${commands.length} commands in the registry`);
  const names = commands.map((c) => c.name);
  for (const n of ['ping', 'warn', 'rank', 'leaderboard', 'xp']) assert.ok(names.includes(n), `/${n} missing`);

  const since = await fake.seq();
  await run(bin, ['--guild', DEMO_GUILD_ID], { env });
  await run(bin, [], { env });
  const reqs = await fake.requests({ method: "PUT", since });
  const puts = reqs.filter((r) => /\/applications\/\d+\/(guilds\/\d+\/)?commands$/.test(r.path));
  assert.equal(puts.length, 2, JSON.stringify(reqs.map((r) => [r.path, r.status])));
  for (const r of puts) assert.equal(r.status, 200, `${r.path}: ${JSON.stringify(r.response ?? r.errors ?? '')}`);

  const listed = await fetch(`${stack.GH_FAKE_DISCORD_URL}/api/v10/applications/${APPLICATION_ID}/guilds/${DEMO_GUILD_ID}/commands`,
    { headers: { Authorization: `Bot ${stack.DISCORD_TOKEN}`, 'User-Agent': 'DiscordBot (https://guildhall.test, 1.0)' } });
  assert.equal(listed.status, 200);
  assert.deepEqual((await listed.json()).map((c) => c.name).sort(), [...names].sort());
});
