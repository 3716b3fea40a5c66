// api_guild_pages.test.mjs - a user in more than 200 guilds: Discord's GET /users/@me/guilds
// answers 200 a page (sorted by id, `after` for the next), so Guildhall reads every page (at most
// GH_ACCESS_GUILD_PAGES) or the newest guilds would be missing from the dashboard's access checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installGuild, refreshGuilds, sessionFor } from '../lib/api.mjs';
import { makeGuild, users } from '../lib/fixtures.mjs';
import { harness, newGuildId } from '../lib/harness.mjs';
import { cleanupGuild, query } from '../lib/store.mjs';

const h = harness();

test('guild list over several pages: the 201st+ guilds are read (after=<last id>) and managed', async (t) => {
  const ids = [];
  for (let i = 0; i < 205; i++) {
    const g = makeGuild({ ids: { guild: newGuildId() }, name: `page test ${i}`, botUserId: h.stack.DISCORD_APPLICATION_ID });
    await h.fake.addGuild(g);
    ids.push(g.guild.id);
  }
  const last = ids[ids.length - 1];
  await installGuild(h.fake, last, users.owner.id);
  t.after(() => cleanupGuild(h.stack, last));
  const since = await h.fake.seq();
  const owner = await sessionFor(h.stack, users.owner.id);
  await refreshGuilds(owner, [ids[0], last]);
  const stored = query(h.stack.DATABASE_URL,
    "SELECT jsonb_array_length(guilds) AS n FROM dashboard_users WHERE id = :'u'", { u: users.owner.id })[0];
  assert.ok(Number(stored.n) > 200, `stored ${stored.n} guilds`);
  const pages = await h.fake.requests({ method: 'GET', path: '/api/v10/users/@me/guilds', since });
  assert.ok(pages.some((r) => /^\d+$/.test(String(r.query?.after ?? ''))), `no page after the first: ${JSON.stringify(pages.map((r) => r.query))}`);
  const r = await owner.get(`/guilds/${last}/settings/core`);
  assert.equal(r.status, 200, r.text);
});
