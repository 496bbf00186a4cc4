// Client events ("whispers", pusher-protocol.md 1.10): only on private and presence channels,
// only from subscribers (Reverb's default `accept_client_events_from = "members"`), at most 10
// per second per connection (pusher:error 4301 beyond), never echoed to the sender; an app with
// `accept_client_events_from = "none"` refuses them, one with `"all"` accepts them from any of
// its connections. Two workers, config file.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherServer from 'pusher';
import PusherClient from 'pusher-js';
import { pusherJsOptions, sleep, within } from './helpers.mjs';
import { QUIET_MS, dataOf, defaultApp, eventually, rawPushers, useConfiguredRingcast } from './support.mjs';

const MEMBERS = defaultApp();
const NONE = { id: '600002', key: 'no-whispers-key', secret: 'no-whispers-secret', accept_client_events_from: 'none' };
const ALL = { id: '600003', key: 'all-whispers-key', secret: 'all-whispers-secret', accept_client_events_from: 'all' };

const signerFor = (app) => new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });
const errorsOf = (c) => c.frames.filter((m) => m.event === 'pusher:error').map(dataOf);

/** `n` raw clients of `app` subscribed to `channel`. */
async function subscribers(server, defer, app, channel, n) {
  const cs = await rawPushers(server, defer, n, { key: app.key });
  cs.forEach((c, i) =>
    channel.startsWith('private-') || channel.startsWith('presence-')
      ? c.subscribeSigned(signerFor(app), channel, `u${i}`)
      : c.subscribe(channel),
  );
  await Promise.all(cs.map((c) => c.succeeded(channel)));
  return cs;
}

describe('client events (2 workers, config file)', () => {
  const { it } = useConfiguredRingcast({ workers: 2, apps: [MEMBERS, NONE, ALL] });

  it('relayed on a private channel to every other subscriber, as sent, without user_id', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, MEMBERS, 'private-whisper', 4);
    cs[0].send({ event: 'client-typing', channel: 'private-whisper', data: { who: 'ann', n: [1, 2] } });
    cs[0].send({ event: 'client-text', channel: 'private-whisper', data: 'plain string' });
    for (const c of cs.slice(1)) {
      const f = await c.event('client-typing', 'private-whisper');
      assert.deepEqual(dataOf(f), { who: 'ann', n: [1, 2] });
      assert.equal(f.user_id, undefined, 'no user_id outside presence channels');
      const t = await c.event('client-text', 'private-whisper');
      assert.equal(dataOf(t), 'plain string');
    }
    await sleep(QUIET_MS);
    assert.equal(cs[0].count((m) => m.event.startsWith('client-')), 0, 'not echoed');
    for (const c of cs.slice(1)) assert.equal(c.count((m) => m.event === 'client-typing'), 1);
    assert.deepEqual(errorsOf(cs[0]), []);
  });

  it('a client event on a public channel is refused with pusher:error and not relayed', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, MEMBERS, 'public-whisper', 3);
    cs[0].send({ event: 'client-typing', channel: 'public-whisper', data: {} });
    const e = await cs[0].event('pusher:error');
    assert.equal(typeof dataOf(e).message, 'string');
    await sleep(QUIET_MS);
    for (const c of cs.slice(1)) assert.equal(c.count((m) => m.event === 'client-typing'), 0);
    await cs[0].roundTrip();
  });

  it('a connection that is not subscribed cannot send client events to a channel (members)', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, MEMBERS, 'private-members', 3);
    const [outsider] = await rawPushers(server, defer, 1);
    outsider.send({ event: 'client-typing', channel: 'private-members', data: {} });
    await outsider.event('pusher:error');
    await sleep(QUIET_MS);
    for (const c of cs) assert.equal(c.count((m) => m.event === 'client-typing'), 0);
  });

  it('more than 10 client events per second: pusher:error 4301 and the excess is dropped', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, MEMBERS, 'private-burst', 3);
    for (let i = 0; i < 15; i++) {
      cs[0].send({ event: 'client-tick', channel: 'private-burst', data: { i } });
    }
    await eventually(() => errorsOf(cs[0]).some((e) => e.code === 4301), 'pusher:error 4301');
    await sleep(QUIET_MS);
    for (const c of cs.slice(1)) {
      const got = c.frames.filter((m) => m.event === 'client-tick').map((m) => dataOf(m).i);
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the first ten pass, in order');
    }
    // The limit is per second: a second later the connection may whisper again.
    if (cs[0].closeInfo) return; // a server may also disconnect a flooding client; both are allowed
    await sleep(1_100);
    cs[0].send({ event: 'client-tick', channel: 'private-burst', data: { i: 'later' } });
    for (const c of cs.slice(1)) {
      await c.take((m) => m.event === 'client-tick' && dataOf(m).i === 'later', 'a whisper after the window');
    }
  });

  it('pusher-js: channel.trigger beyond the limit surfaces as a connection error event 4301', async ({
    server,
    defer,
  }) => {
    const signer = signerFor(MEMBERS);
    const client = new PusherClient(
      MEMBERS.key,
      pusherJsOptions(server, {
        channelAuthorization: {
          customHandler: ({ socketId, channelName }, cb) => cb(null, signer.authorizeChannel(socketId, channelName)),
        },
      }),
    );
    defer(() => client.disconnect());
    const errors = [];
    client.connection.bind('error', (e) => errors.push(e));
    const ch = client.subscribe('private-js-burst');
    await within(new Promise((r) => ch.bind('pusher:subscription_succeeded', r)), 'pusher-js subscription');
    for (let i = 0; i < 12; i++) ch.trigger('client-tick', { i });
    await eventually(
      () => errors.some((e) => e.type === 'PusherError' && e.data && e.data.code === 4301),
      'a PusherError with code 4301',
    );
  });

  it('accept_client_events_from = "none": refused with pusher:error even for members', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, NONE, 'private-quiet', 3);
    cs[0].send({ event: 'client-typing', channel: 'private-quiet', data: {} });
    await cs[0].event('pusher:error');
    await sleep(QUIET_MS);
    for (const c of cs.slice(1)) assert.equal(c.count((m) => m.event === 'client-typing'), 0);
  });

  it('accept_client_events_from = "all": any connection of the app may send', async ({ server, defer }) => {
    const cs = await subscribers(server, defer, ALL, 'private-open', 3);
    const [outsider] = await rawPushers(server, defer, 1, { key: ALL.key });
    outsider.send({ event: 'client-hello', channel: 'private-open', data: { from: 'outside' } });
    for (const c of cs) {
      const f = await c.event('client-hello', 'private-open');
      assert.deepEqual(dataOf(f), { from: 'outside' });
    }
    assert.deepEqual(errorsOf(outsider), []);
  });

  it('a frame from a client whose event is neither pusher:* nor client-* is refused, not relayed', async ({
    server,
    defer,
  }) => {
    const cs = await subscribers(server, defer, MEMBERS, 'private-names', 2);
    cs[0].send({ event: 'typing', channel: 'private-names', data: {} });
    cs[0].send({ event: 'pusher_internal:member_added', channel: 'private-names', data: {} });
    await eventually(() => errorsOf(cs[0]).length >= 2, 'a pusher:error for each invalid event name');
    await sleep(QUIET_MS);
    assert.equal(cs[1].count((m) => m.event === 'typing' || m.event.startsWith('pusher_internal:member')), 0);
    await cs[0].roundTrip();
  });
});
