// harness.mjs - what every integration test file starts with.
//
//   import { harness } from '../lib/harness.mjs';
//   const h = harness();                 // stack.env, fake client; checks both answer
//   const g = await h.newGuild(t);       // a fresh guild, cleaned up after the test
//   const r = await h.send(chatInput('ping', { guild: g, user: 'admin' }));
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { before } from 'node:test';
import { makeGuild } from './fixtures.mjs';
import { FakeDiscord } from './fake.mjs';
import { snowflake } from './snowflake.mjs';
import { loadStack, REPO_ROOT, STACK_SCRIPT } from './stack.mjs';
import { cleanupGuild, commandLogRows } from './store.mjs';
import { waitFor } from './wait.mjs';

/** A fresh snowflake for a test's own guild (never shared between tests). */
export function newGuildId() {
  return snowflake();
}

async function checkUp(url, what) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (res.status >= 500) throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    throw new Error(`${what} does not answer at ${url} (${e.cause?.message ?? e.message}); is the stack running? ` +
      '`scripts/stack.sh start test`');
  }
}

export function harness() {
  const stack = loadStack();
  const fake = new FakeDiscord(stack.fakeUrl);
  const h = {
    stack,
    fake,
    appId: stack.DISCORD_APPLICATION_ID,

    /** Signs and sends an interaction through the fake; returns the fake's report. */
    async send(body, opts = {}) {
      return fake.interaction(body, opts);
    },

    /**
     * A fresh guild (fixture layout, new ids) known to the fake; its
     * PostgreSQL rows and Redis keys are deleted after the test.
     */
    async newGuild(t, opts = {}) {
      const g = makeGuild({ ids: { guild: newGuildId() }, name: opts.name, botUserId: stack.DISCORD_APPLICATION_ID });
      await fake.addGuild(g);
      t.after(() => {
        const errors = cleanupGuild(stack, g.guild.id);
        if (errors.length) process.stderr.write(`# cleanup of guild ${g.guild.id}: ${errors.join('; ')}\n`);
      });
      return g;
    },

    /** Polls command_log until the interaction's row exists; returns it. */
    async commandLogRow(interactionId, { timeout = 15000 } = {}) {
      const rows = await waitFor(() => {
        const r = commandLogRows(stack.DATABASE_URL, interactionId);
        return r.length ? r : null;
      }, { timeout, message: `command_log row for interaction ${interactionId}` });
      return rows[0];
    },

    /** Runs scripts/stack.sh <sub> <profile>, failing clearly if the script lacks it. */
    stackScript(sub, { timeout = 120000 } = {}) {
      if (!fs.existsSync(STACK_SCRIPT)) throw new Error(`${STACK_SCRIPT} does not exist (the lead's stack script)`);
      const text = fs.readFileSync(STACK_SCRIPT, 'utf8');
      if (!text.includes(sub)) throw new Error(`scripts/stack.sh has no "${sub}" subcommand; this test needs it`);
      try {
        return execFileSync(STACK_SCRIPT, [sub, stack.profile], { cwd: REPO_ROOT, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        throw new Error(`scripts/stack.sh ${sub} ${stack.profile} failed (${e.status ?? e.signal}): ${String(e.stderr ?? '').trim().slice(-800)}`);
      }
    },
  };
  before(async () => {
    await checkUp(`${stack.GH_HTTP_URL.replace(/\/$/, '')}/health`, 'Guildhall (nginx)');
    await checkUp(`${fake.base}/_fake/health`, 'the fake Discord');
  });
  return h;
}
