// The dashboard page's signing code (engine/src/dashboard/assets/sign.mjs), which the browser
// runs with the secret the operator typed: its own SHA-256, HMAC and MD5 (for pages without
// WebCrypto, and for body_md5) agree with Node's crypto, and the API requests and channel
// subscriptions it signs are accepted by a real ringcast, and refused when signed with
// another secret.

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import {
  channelAuth,
  hex,
  hmacSha256Bytes,
  hmacSha256Hex,
  md5Hex,
  sha256,
  signedQuery,
  statsChannel,
} from '../../src/dashboard/assets/sign.mjs';
import { useRingcast, within } from './helpers.mjs';

const enc = new TextEncoder();

/** Strings around every padding boundary of a 64-byte block, with multi-byte characters. */
const SAMPLES = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000].map(
  (n) => 'aé€😀'.repeat(n).slice(0, n),
);

describe('dashboard signing in the browser', () => {
  const { it } = useRingcast({ workers: 2, args: ['--dashboard'] });

  it('SHA-256, HMAC-SHA256 and MD5 agree with Node crypto', async () => {
    for (const s of SAMPLES) {
      assert.equal(hex(sha256(enc.encode(s))), crypto.createHash('sha256').update(s).digest('hex'), `sha256 of ${s.length}`);
      assert.equal(md5Hex(s), crypto.createHash('md5').update(s).digest('hex'), `md5 of ${s.length}`);
      for (const key of ['k', 'x'.repeat(64), 'long key '.repeat(20)]) {
        const expected = crypto.createHmac('sha256', key).update(s).digest('hex');
        assert.equal(hex(hmacSha256Bytes(enc.encode(key), enc.encode(s))), expected, 'own HMAC');
        assert.equal(await hmacSha256Hex(key, s), expected, 'WebCrypto HMAC');
      }
    }
  });

  it('its signed API requests are accepted, and refused with another secret', async ({ server }) => {
    const { id, key, secret } = server.app;
    const get = async (s) => {
      const path = `/apps/${id}/channels`;
      const q = await signedQuery({ method: 'GET', path, key, secret: s, params: { filter_by_prefix: 'presence-' } });
      return fetch(`${server.httpUrl}${path}?${q}`);
    };
    assert.equal((await get(secret)).status, 200);
    const refused = await get('not-the-secret');
    assert.equal(refused.status, 401);
    const path = `/apps/${id}/events`;
    const body = JSON.stringify({ name: 'hello', channels: ['news'], data: '{"é":"€"}' });
    const q = await signedQuery({ method: 'POST', path, key, secret, body });
    const posted = await fetch(`${server.httpUrl}${path}?${q}`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    assert.equal(posted.status, 200, await posted.text());
  });

  it('its stats subscription is accepted and delivers stats', async ({ server, defer }) => {
    const { key, secret } = server.app;
    const channel = await statsChannel(secret);
    const expected = crypto.createHmac('sha256', secret).update('ringcast-dashboard').digest('hex').slice(0, 24);
    assert.equal(channel, `private-ringcast-dashboard-${expected}`);
    const ws = new WebSocket(`${server.wsUrl}/app/${key}?protocol=7`);
    defer(() => ws.close());
    const events = [];
    let notify = () => {};
    ws.on('message', (m) => {
      events.push(JSON.parse(m.toString()));
      notify();
    });
    const next = (name) =>
      within(
        new Promise((resolve) => {
          const look = () => {
            const i = events.findIndex((e) => e.event === name);
            if (i >= 0) resolve(events.splice(i, 1)[0]);
          };
          notify = look;
          look();
        }),
        name,
      );
    const hello = await next('pusher:connection_established');
    const socketId = JSON.parse(hello.data).socket_id;
    const auth = await channelAuth(key, secret, socketId, channel);
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth } }));
    await next('pusher_internal:subscription_succeeded');
    const stats = await next('stats');
    assert.equal(stats.channel, channel);
    const doc = JSON.parse(stats.data);
    assert.equal(doc.app, server.app.id);
    assert.equal(doc.watchers, 1);
    assert.ok(doc.connections >= 1);
  });
});
