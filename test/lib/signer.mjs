// signer.mjs - Ed25519 signing of interactions the way Discord does it.
//
// The signed message is the X-Signature-Timestamp bytes followed directly by
// the raw body bytes; the signature is sent as 128 hex chars. Keys are built
// from a 32-byte seed with node:crypto (PKCS8 DER prefix for Ed25519).
import crypto from 'node:crypto';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** TEST ONLY key and vector (shared/reference/discord-protocol.md, section 4). */
export const TEST_SEED_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
export const TEST_VECTOR = Object.freeze({
  seed: TEST_SEED_HEX,
  publicKey: '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  timestamp: '1700000000',
  body: '{"type":1,"id":"1","application_id":"2","token":"t","version":1}',
  signature:
    '0f9e54b264347b4abf8a98448093023b92be156813d2f25d6df7151bbd0632ec' +
    '668fd2e83ace7421c389b138783a8a5a3833d2805bcd2d84c5b452027c07460a',
});
/** A second key that Guildhall must reject ("wrong key" tests). */
export const WRONG_SEED_HEX = 'ff'.repeat(32);

const keyCache = new Map();

function seedBytes(seedHex) {
  if (typeof seedHex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(seedHex)) {
    throw new Error('signer: the seed must be 64 hex characters (32 bytes)');
  }
  return Buffer.from(seedHex, 'hex');
}

export function privateKeyFromSeed(seedHex) {
  let key = keyCache.get(seedHex);
  if (!key) {
    key = crypto.createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seedBytes(seedHex)]),
      format: 'der',
      type: 'pkcs8',
    });
    keyCache.set(seedHex, key);
  }
  return key;
}

/** The raw 32-byte public key of a seed, as hex (Discord's portal format). */
export function publicKeyHex(seedHex) {
  const der = crypto.createPublicKey(privateKeyFromSeed(seedHex)).export({ format: 'der', type: 'spki' });
  return Buffer.from(der).subarray(SPKI_ED25519_PREFIX.length).toString('hex');
}

function message(body, timestamp) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  return Buffer.concat([Buffer.from(String(timestamp), 'utf8'), b]);
}

/** Signature (hex) of timestamp || body. body: string (UTF-8) or Buffer. */
export function sign(body, timestamp, seedHex = TEST_SEED_HEX) {
  return crypto.sign(null, message(body, timestamp), privateKeyFromSeed(seedHex)).toString('hex');
}

/** true when signatureHex is a valid signature of timestamp || body. */
export function verify(body, timestamp, signatureHex, publicKeyHexStr) {
  try {
    if (!/^[0-9a-fA-F]{128}$/.test(signatureHex) || !/^[0-9a-fA-F]{64}$/.test(publicKeyHexStr)) return false;
    const pub = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKeyHexStr, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    return crypto.verify(null, message(body, timestamp), pub, Buffer.from(signatureHex, 'hex'));
  } catch {
    return false;
  }
}

/** Headers for a signed POST of body (string or Buffer). */
export function signedHeaders(body, { timestamp, seedHex = TEST_SEED_HEX } = {}) {
  const ts = String(timestamp ?? Math.floor(Date.now() / 1000));
  return {
    'Content-Type': 'application/json',
    'X-Signature-Ed25519': sign(body, ts, seedHex),
    'X-Signature-Timestamp': ts,
  };
}

/** Throws unless the implementation reproduces the reference vector. */
export function selfTest() {
  const v = TEST_VECTOR;
  if (publicKeyHex(v.seed) !== v.publicKey) throw new Error('signer self-test: public key mismatch');
  if (sign(v.body, v.timestamp, v.seed) !== v.signature) throw new Error('signer self-test: signature mismatch');
  if (!verify(v.body, v.timestamp, v.signature, v.publicKey)) throw new Error('signer self-test: verify failed');
  if (verify(v.body.replace('"type":1', '"type":2'), v.timestamp, v.signature, v.publicKey)) {
    throw new Error('signer self-test: tampered body verified');
  }
  return true;
}
