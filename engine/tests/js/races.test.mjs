// Requests that overtake each other. Presence and cache subscriptions are confirmed by the
// channel's owner, which may be the other worker, so a client can unsubscribe, resubscribe or
// vanish while its subscription is still on its way. Whatever the interleaving, the server must
// end in the state the client's last request asked for, with no ghost member, no event for a
// channel the client left and every member event exactly once. Two workers.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherServer from 'pusher';
import { serverSdk, sleep, useRingcast } from './helpers.mjs';
import { APP } from './server.mjs';
import { QUIET_MS, apiJson, dataOf, eventsOf, eventually, rawPusher, rawPushers, sdkFor } from './support.mjs';

const signer = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });

const addedIds = (c, ch) => eventsOf(c, 'pusher_internal:member_added', ch).map((d) => d.user_id);
const removedIds = (c, ch) => eventsOf(c, 'pusher_internal:member_removed', ch).map((d) => d.user_id);

async function observe(server, defer, ch, user = 'observer') {
  const o = await rawPusher(server, defer);
  o.subscribeSigned(signer, ch, user);
  o.members = (await o.succeeded(ch)).presence;
  return o;
}

const usersOf = async (server, ch) =>
  (await apiJson(sdkFor(server).get({ path: `/channels/${ch}/users` }))).users.map((u) => u.id).sort();

/** Sends several frames in one write, so they reach the server in one read. */
function sendTogether(c, frames) {
  c.ws._socket.cork();
  for (const f of frames) c.send(f);
  c.ws._socket.uncork();
}

function presenceSubscribe(c, ch, user) {
  const a = signer.authorizeChannel(c.socketId, ch, { user_id: user, user_info: { name: user } });
  return { event: 'pusher:subscribe', data: { channel: ch, auth: a.auth, channel_data: a.channel_data } };
}

describe('overtaking requests on presence, cache and user channels (2 workers)', () => {
  const { it } = useRingcast({ workers: 2 });

  it('presence subscribe + unsubscribe in one packet: no ghost member, no events afterwards', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-flash';
    const o = await observe(server, defer, ch);
    const cs = await rawPushers(server, defer, 6);
    cs.forEach((c, i) =>
      sendTogether(c, [presenceSubscribe(c, ch, `f${i}`), { event: 'pusher:unsubscribe', data: { channel: ch } }]),
    );
    await Promise.all(cs.map((c) => c.roundTrip()));
    await eventually(async () => (await usersOf(server, ch)).join() === 'observer', 'only the observer left');
    await serverSdk(server).trigger(ch, 'after', { late: true });
    await o.event('after', ch);
    await sleep(QUIET_MS);
    for (const c of cs) {
      assert.equal(c.count((m) => m.event === 'after'), 0, 'an unsubscribed client got a channel event');
    }
    // Each flashing user is either never announced or announced and removed, once each.
    for (let i = 0; i < cs.length; i++) {
      const a = addedIds(o, ch).filter((id) => id === `f${i}`).length;
      const r = removedIds(o, ch).filter((id) => id === `f${i}`).length;
      assert.ok((a === 0 && r === 0) || (a === 1 && r === 1), `f${i}: added ${a}, removed ${r}`);
    }
  });

  it('presence subscribe, unsubscribe, subscribe in one packet: member once, subscribed', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-flicker';
    const o = await observe(server, defer, ch);
    const cs = await rawPushers(server, defer, 6);
    cs.forEach((c, i) =>
      sendTogether(c, [
        presenceSubscribe(c, ch, `k${i}`),
        { event: 'pusher:unsubscribe', data: { channel: ch } },
        presenceSubscribe(c, ch, `k${i}`),
      ]),
    );
    await Promise.all(cs.map((c) => c.succeeded(ch)));
    await eventually(async () => (await usersOf(server, ch)).length === 7, 'seven members');
    await serverSdk(server).trigger(ch, 'after', {});
    for (const c of cs) await c.event('after', ch);
    await sleep(QUIET_MS);
    for (const c of cs) assert.equal(c.count((m) => m.event === 'after'), 1, 'the event once');
    for (let i = 0; i < cs.length; i++) {
      const seq = o.frames
        .filter((m) => m.channel === ch && m.event.startsWith('pusher_internal:member_') && dataOf(m).user_id === `k${i}`)
        .map((m) => (m.event.endsWith('added') ? '+' : '-'))
        .join('');
      assert.match(seq, /^(\+-)*\+$/, `k${i} as the observer saw it: ${seq}`);
    }
  });

  it('a tab that subscribes to presence and drops its TCP connection at once leaves no ghost', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-ghost';
    const o = await observe(server, defer, ch);
    const cs = await rawPushers(server, defer, 6);
    cs.forEach((c, i) => {
      c.send(presenceSubscribe(c, ch, `g${i}`));
      c.drop();
    });
    await eventually(async () => (await usersOf(server, ch)).join() === 'observer', 'no ghost members');
    await sleep(QUIET_MS);
    for (let i = 0; i < cs.length; i++) {
      const a = addedIds(o, ch).filter((id) => id === `g${i}`).length;
      const r = removedIds(o, ch).filter((id) => id === `g${i}`).length;
      assert.equal(a, r, `g${i}: added ${a}, removed ${r}`);
      assert.ok(a <= 1);
    }
    const late = await observe(server, defer, ch, 'late');
    assert.deepEqual([...late.members.ids].sort(), ['late', 'observer']);
  });

  it('cache channel subscribe + unsubscribe in one packet: no cached event or miss leaks later', async ({
    server,
    defer,
  }) => {
    await serverSdk(server).trigger('cache-flash', 'state', { v: 1 });
    const cs = await rawPushers(server, defer, 6);
    for (const c of cs) {
      sendTogether(c, [
        { event: 'pusher:subscribe', data: { channel: 'cache-flash' } },
        { event: 'pusher:unsubscribe', data: { channel: 'cache-flash' } },
      ]);
    }
    await Promise.all(cs.map((c) => c.roundTrip()));
    await serverSdk(server).trigger('cache-flash', 'state', { v: 2 });
    await sleep(QUIET_MS);
    for (const c of cs) {
      const got = c.frames.filter((m) => m.event === 'state').map((m) => dataOf(m).v);
      assert.ok(!got.includes(2), `an unsubscribed client got a live event: ${got}`);
      assert.ok(got.length <= 1, `the cached event at most once: ${got}`);
    }
    const info = await apiJson(
      sdkFor(server).get({ path: '/channels/cache-flash', params: { info: 'subscription_count' } }),
    );
    assert.equal(info.occupied, false);
  });

  it('sign-in followed at once by a dropped connection: the user ends offline', async ({ server, defer }) => {
    const cs = await rawPushers(server, defer, 6);
    cs.forEach((c, i) => {
      c.send({ event: 'pusher:signin', data: signer.authenticateUser(c.socketId, { id: `s${i}` }) });
      c.drop();
    });
    await sleep(QUIET_MS);
    const watcher = await rawPusher(server, defer);
    const ids = cs.map((_, i) => `s${i}`);
    watcher.send({
      event: 'pusher:signin',
      data: signer.authenticateUser(watcher.socketId, { id: 'watcher', watchlist: ids }),
    });
    await watcher.event('pusher:signin_success');
    await sleep(QUIET_MS);
    const online = watcher.frames
      .filter((m) => m.event === 'pusher_internal:watchlist_events')
      .flatMap((m) => dataOf(m).events.filter((e) => e.name === 'online').flatMap((e) => e.user_ids));
    assert.deepEqual(online, [], 'users whose connections are gone are not online');
    await serverSdk(server).sendToUser('s0', 'anyone', {});
  });

  it('presence member_removed when terminateUserConnections closes a signed-in member', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-terminated';
    const o = await observe(server, defer, ch);
    const tabs = await rawPushers(server, defer, 4);
    for (const t of tabs) {
      t.send({ event: 'pusher:signin', data: signer.authenticateUser(t.socketId, { id: 'tt' }) });
      await t.event('pusher:signin_success');
      t.send(presenceSubscribe(t, ch, 'tt'));
      await t.succeeded(ch);
    }
    await eventually(() => addedIds(o, ch).includes('tt'), 'member_added for tt');
    await serverSdk(server).terminateUserConnections('tt');
    await Promise.all(tabs.map((t) => t.closed));
    await eventually(() => removedIds(o, ch).includes('tt'), 'member_removed for tt');
    await sleep(QUIET_MS);
    assert.deepEqual(addedIds(o, ch), ['tt']);
    assert.deepEqual(removedIds(o, ch), ['tt']);
  });

  it('the client event limit is per connection, across channels', async ({ server, defer }) => {
    const [a, b] = await rawPushers(server, defer, 2);
    for (const c of [a, b]) {
      c.subscribeSigned(signer, 'private-rate-1');
      c.subscribeSigned(signer, 'private-rate-2');
    }
    await Promise.all([a, b].flatMap((c) => [c.succeeded('private-rate-1'), c.succeeded('private-rate-2')]));
    const frames = [];
    for (let i = 0; i < 7; i++) {
      frames.push({ event: 'client-x', channel: 'private-rate-1', data: { i } });
      frames.push({ event: 'client-x', channel: 'private-rate-2', data: { i } });
    }
    sendTogether(a, frames);
    await eventually(
      () => a.frames.some((m) => m.event === 'pusher:error' && dataOf(m).code === 4301),
      'pusher:error 4301',
    );
    await sleep(QUIET_MS);
    assert.equal(b.count((m) => m.event === 'client-x'), 10, 'ten client events per second in total');
  });

  it('presence user_info round-trips byte-exact: unicode, escapes, nesting, numbers', async ({ server, defer }) => {
    const ch = 'presence-unicode';
    const o = await observe(server, defer, ch);
    const info = {
      name: 'Zoë Åström 😀 “quoted” "plain" \\ back\\slash',
      ctl: '\n\t\u0001',
      tags: [1, 2.5, -0.125, null, true, false, { deep: ['x'] }],
      big: 12345678901234,
    };
    const c = await rawPusher(server, defer);
    const a = signer.authorizeChannel(c.socketId, ch, { user_id: 'üñí', user_info: info });
    c.subscribe(ch, a);
    const mine = (await c.succeeded(ch)).presence;
    assert.deepEqual(mine.hash['üñí'], info);
    const f = await o.event('pusher_internal:member_added', ch);
    assert.deepEqual(dataOf(f), { user_id: 'üñí', user_info: info });
  });
});
