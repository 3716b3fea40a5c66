// request_shape.test.mjs - what Guildhall does with odd but validly signed
// requests: malformed JSON, an oversized body, an unknown interaction type,
// and option values full of unicode or 6000 characters long.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chatInput } from '../lib/fixtures.mjs';
import { postInteractionRaw } from '../lib/gh.mjs';
import { harness } from '../lib/harness.mjs';
import { snowflake } from '../lib/snowflake.mjs';

const h = harness();
const MAX_BODY_BYTES = 262144;

/** Every string inside a JSON value (for finding an option in a stored document). */
function strings(v, out = []) {
  if (typeof v === 'string') {
    out.push(v);
    try { const inner = JSON.parse(v); if (inner && typeof inner === 'object') strings(inner, out); } catch { /* plain */ }
  } else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => strings(x, out));
  return out;
}

test('malformed JSON with a valid signature -> 400', async () => {
  const r = await postInteractionRaw(h.stack, '{"type":2,"id":"1300000000000000123","data":{"name":"ping"');
  assert.equal(r.status, 400, r.text);
});

test(`a body over MAX_BODY_BYTES (${MAX_BODY_BYTES}) -> 413`, async (t) => {
  const g = await h.newGuild(t);
  const ix = chatInput('help', { guild: g, options: { command: 'x'.repeat(300 * 1024) } });
  Object.assign(ix, { id: snowflake(), application_id: h.appId, token: 'oversized' });
  const raw = JSON.stringify(ix);
  assert.ok(Buffer.byteLength(raw) > 300 * 1024);
  const r = await postInteractionRaw(h.stack, raw);
  assert.equal(r.status, 413, r.text.slice(0, 200));
});

test('unknown interaction type 99 -> 400', async (t) => {
  const g = await h.newGuild(t);
  const ix = chatInput('ping', { guild: g });
  ix.type = 99;
  const r = await h.send(ix);
  assert.equal(r.status, 400, JSON.stringify(r.body));
});

const UNICODE = 'héllo 👋🏽 family 👨‍👩‍👧 مرحبا بالعالم עִבְרִית e\u0301 n\u0303 \u200f RTL\u200e 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 "quotes" \\back\\slash <@&1> @everyone';
const LONG = 'é€😀a'.repeat(1500); // 6000 code points, 13500 bytes

for (const [name, value] of [['unicode (emoji, RTL, combining marks)', UNICODE], ['a 6000-character value', LONG]]) {
  test(`option with ${name} -> 200 and command_log keeps it intact`, async (t) => {
    assert.ok([...value].length <= 6000);
    const g = await h.newGuild(t);
    const r = await h.send(chatInput('help', { guild: g, user: 'member', options: { command: value } }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.type, 4);
    assert.equal(r.response_valid, true, JSON.stringify(r.response_errors));
    const row = await h.commandLogRow(r.interaction.id);
    assert.ok(strings(row.options).includes(value),
      `command_log.options does not hold the exact value: ${JSON.stringify(row.options).slice(0, 300)}`);
  });
}
