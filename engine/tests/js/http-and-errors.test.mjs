// The HTTP side and the refusals a client or publisher can meet: signed API requests, the health
// check, and an unknown app key on the WebSocket endpoint.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherClient from 'pusher-js';
import { openRawPusher, pusherJsOptions, serverSdk, useRingcast, within } from './helpers.mjs';

describe('HTTP API, health check and refusals', () => {
  const { it } = useRingcast({ workers: 2 });

  it('GET /up answers 200 {"health":"OK"}', async ({ server }) => {
    const res = await fetch(`${server.httpUrl}/up`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await res.json(), { health: 'OK' });
  });

  it('a correctly signed trigger gets 200 {}', async ({ server }) => {
    const res = await serverSdk(server).trigger('nobody-listens', 'ping', { ok: true });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
  });

  it('a trigger signed with the wrong secret gets 401', async ({ server }) => {
    const sdk = serverSdk(server, { secret: 'not-the-secret' });
    await assert.rejects(
      () => sdk.trigger('news', 'headline', { title: 'forged' }),
      (err) => {
        assert.equal(err.status, 401, `status ${err.status}: ${err.message} ${err.body ?? ''}`);
        return true;
      },
    );
  });

  it('a trigger with the wrong app key gets 401', async ({ server }) => {
    const sdk = serverSdk(server, { key: 'not-the-key' });
    await assert.rejects(
      () => sdk.trigger('news', 'headline', { title: 'forged' }),
      (err) => {
        assert.equal(err.status, 401, `status ${err.status}: ${err.message} ${err.body ?? ''}`);
        return true;
      },
    );
  });

  it('an unsigned request is refused', async ({ server }) => {
    const res = await fetch(`${server.httpUrl}/apps/${server.app.id}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', channel: 'news', data: '{}' }),
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(res.status, 401);
  });

  it('an unknown app key gets pusher:error 4001 and close code 4001', async ({ server, defer }) => {
    const conn = openRawPusher(server, defer, 'no-such-key');
    await conn.opened;
    const err = await conn.nextJson('pusher:error');
    assert.equal(err.event, 'pusher:error');
    const data = typeof err.data === 'string' ? JSON.parse(err.data) : err.data;
    assert.equal(data.code, 4001);
    const { code } = await within(conn.closed, 'the close frame');
    assert.equal(code, 4001);
  });

  it('a client message over REVERB_APP_MAX_MESSAGE_SIZE (10000 by default) is closed with 1009', async ({
    server,
    defer,
  }) => {
    const conn = openRawPusher(server, defer);
    await conn.opened;
    assert.equal((await conn.nextJson('pusher:connection_established')).event, 'pusher:connection_established');
    // Exactly the limit is still accepted: a ping padded to 10000 bytes gets its pong.
    const ping = JSON.stringify({ event: 'pusher:ping', data: {} });
    const pad = (n) => `${ping.slice(0, -1)},"pad":"${'x'.repeat(n - ping.length - 9)}"}`;
    assert.equal(Buffer.byteLength(pad(10_000)), 10_000);
    conn.send(pad(10_000));
    assert.equal((await conn.nextJson('pusher:pong')).event, 'pusher:pong');
    conn.send(pad(10_001));
    const { code } = await within(conn.closed, 'the close frame');
    assert.equal(code, 1009);
  });

  it('pusher-js with an unknown app key reports error 4001 and does not retry', async ({
    server,
    defer,
  }) => {
    const client = new PusherClient('no-such-key', pusherJsOptions(server));
    defer(() => client.disconnect());
    const states = [];
    client.connection.bind('state_change', ({ current }) => states.push(current));
    const error = await within(
      new Promise((resolve) => client.connection.bind('error', resolve)),
      'pusher-js error event',
    );
    assert.equal(error.error?.data?.code, 4001, JSON.stringify(error));
    await within(
      new Promise((resolve) => {
        const check = () => (client.connection.state === 'disconnected' ? resolve() : setTimeout(check, 10));
        check();
      }),
      'pusher-js to give up (state disconnected)',
    );
    assert.ok(!states.includes('connected'), `states: ${states.join(' -> ')}`);
  });
});
