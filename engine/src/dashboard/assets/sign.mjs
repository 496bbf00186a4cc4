// Signatures the dashboard makes in the browser with the secret the operator typed, so that the
// secret itself never leaves the page: Pusher HTTP API requests (auth_version 1.0, HMAC-SHA256
// over "METHOD\nPATH\nsorted query", with body_md5 for a body), private-channel subscriptions
// ("key:" + HMAC-SHA256 over "socket_id:channel"), and the name of the app's stats channel.
//
// HMAC-SHA256 comes from WebCrypto where the page has it. Browsers offer WebCrypto only to
// secure contexts (https, or a loopback address), and an operator may well open the dashboard
// over plain http on a private address, so SHA-256 and HMAC are also written out here (FIPS
// 180-4, RFC 2104), and the tests check both against Node's crypto. MD5 (RFC 1321), which the
// API's body_md5 needs, is not in WebCrypto at all.

const encoder = new TextEncoder();

/** Lower-case hex of a byte array. */
export function hex(bytes) {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** The message padded to whole 64-byte blocks with its bit length, big- or little-endian. */
function pad(bytes, bigEndian) {
  const blocks = Math.ceil((bytes.length + 9) / 64);
  const out = new Uint8Array(blocks * 64);
  out.set(bytes);
  out[bytes.length] = 0x80;
  const view = new DataView(out.buffer);
  const bits = bytes.length * 8;
  const hi = Math.floor(bits / 0x100000000);
  const lo = bits >>> 0;
  if (bigEndian) {
    view.setUint32(out.length - 8, hi);
    view.setUint32(out.length - 4, lo);
  } else {
    view.setUint32(out.length - 8, lo, true);
    view.setUint32(out.length - 4, hi, true);
  }
  return view;
}

/** SHA-256 of a byte array (FIPS 180-4 section 6.2). */
export function sha256(bytes) {
  const view = pad(bytes, true);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < view.byteLength; off += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + t * 4);
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(i * 4, x));
  return out;
}

/** HMAC-SHA256 (RFC 2104) of byte arrays, without WebCrypto. */
export function hmacSha256Bytes(key, message) {
  let k = key.length > 64 ? sha256(key) : key;
  const block = new Uint8Array(64);
  block.set(k);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** Hex HMAC-SHA256 of `message` keyed with `secret` (both strings, UTF-8). */
export async function hmacSha256Hex(secret, message) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  const key = encoder.encode(secret);
  const msg = encoder.encode(message);
  if (!subtle) return hex(hmacSha256Bytes(key, msg));
  const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return hex(new Uint8Array(await subtle.sign('HMAC', k, msg)));
}

const S_MD5 = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K_MD5 = new Uint32Array(64).map((_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 0x100000000));

/** Hex MD5 (RFC 1321) of a string's UTF-8 bytes. */
export function md5Hex(text) {
  const view = pad(encoder.encode(text), false);
  const h = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  const m = new Uint32Array(16);
  for (let off = 0; off < view.byteLength; off += 64) {
    for (let i = 0; i < 16; i++) m[i] = view.getUint32(off + i * 4, true);
    let [a, b, c, d] = h;
    for (let i = 0; i < 64; i++) {
      const round = i >> 4;
      let f;
      let g;
      if (round === 0) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (round === 1) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (round === 2) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const s = S_MD5[round * 4 + (i % 4)];
      const x = (a + f + K_MD5[i] + m[g]) >>> 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) >>> 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
  }
  const out = new Uint8Array(16);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(i * 4, x, true));
  return hex(out);
}

/**
 * The signed query string of a Pusher HTTP API request: `params` plus auth_key,
 * auth_timestamp, auth_version and (for a body) body_md5, sorted by key, values signed raw and
 * sent percent-encoded, then auth_signature.
 */
export async function signedQuery({ method, path, key, secret, body = '', params = {}, now = Date.now() }) {
  const all = { ...params, auth_key: key, auth_timestamp: String(Math.floor(now / 1000)), auth_version: '1.0' };
  if (body) all.body_md5 = md5Hex(body);
  const keys = Object.keys(all).sort();
  const toSign = keys.map((k) => `${k}=${all[k]}`).join('&');
  const signature = await hmacSha256Hex(secret, `${method}\n${path}\n${toSign}`);
  const sent = keys.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(all[k])}`).join('&');
  return `${sent}&auth_signature=${signature}`;
}

/** The `auth` of a private-channel subscription: "key:" + HMAC over "socket_id:channel". */
export async function channelAuth(key, secret, socketId, channel) {
  return `${key}:${await hmacSha256Hex(secret, `${socketId}:${channel}`)}`;
}

/** The app's stats channel: the server derives the same name from the same secret. */
export async function statsChannel(secret) {
  const mac = await hmacSha256Hex(secret, 'ringcast-dashboard');
  return `private-ringcast-dashboard-${mac.slice(0, 24)}`;
}
