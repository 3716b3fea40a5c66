// api-login.mjs - for make bench: makes the demo guild known to Guildhall (the fake Discord's
// APPLICATION_AUTHORIZED webhook), logs its owner in through the real OAuth2 flow and prints
// the Cookie header value of the session, for wrk.
//   GH_PROFILE=bench node test/bench/api-login.mjs
import { installGuild, login } from '../lib/api.mjs';
import { FakeDiscord } from '../lib/fake.mjs';
import { DEMO_GUILD_ID, users } from '../lib/fixtures.mjs';
import { loadStack } from '../lib/stack.mjs';

const stack = loadStack(process.env.GH_PROFILE || 'bench');
await installGuild(new FakeDiscord(stack.fakeUrl), DEMO_GUILD_ID, users.owner.id);
const c = await login(stack, { user: users.owner.id, ip: '127.0.0.1' });
const r = await c.get(`/guilds/${DEMO_GUILD_ID}/settings/core`);
if (r.status !== 200) throw new Error(`settings answered ${r.status}: ${r.text}`);
process.stdout.write(`${c.cookieHeader()}\n`);
