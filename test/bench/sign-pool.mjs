// Signs a fresh pool of interaction requests for wrk, right before a run.
// Each request gets a unique interaction id and the current timestamp; the command is
// `ping` for every server. Writes a Lua file that wrk's script (interactions.lua) loads.
//   node sign-pool.mjs <seed hex> <count> <out.lua> [fixture.json]
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [seedHex, countArg, out, fixtureArg] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = fixtureArg || path.join(here, '..', 'fixtures', 'interactions', 'command.json');
const base = JSON.parse(fs.readFileSync(fixture, 'utf8'));
base.data.name = 'ping';
base.data.options = [];
delete base.data.resolved;

const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]);
const key = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
const ts = String(Math.floor(Date.now() / 1000));
const count = Number(countArg || 5000);
// Snowflakes from "now" so that the ids are unique per run and their age is realistic.
let snow = (BigInt(Date.now()) - 1420070400000n) << 22n;
const esc = (s) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
const lines = ['pool = {'];
for (let i = 0; i < count; i++) {
  snow += 1n;
  base.id = snow.toString();
  const body = JSON.stringify(base);
  const sig = crypto.sign(null, Buffer.from(ts + body), key).toString('hex');
  lines.push(`{"${sig}","${esc(body)}"},`);
}
lines.push('}', `ts = "${ts}"`);
fs.writeFileSync(out, lines.join('\n'));
