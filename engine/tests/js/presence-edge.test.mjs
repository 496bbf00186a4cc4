// Presence channels across two workers, counted on the wire with raw sockets: membership is per
// user, not per connection (pusher-protocol.md 1.9): `member_added` goes out when a user's first
// connection joins, `member_removed` when its last one leaves, to the other members only, and
// each exactly once. Tabs are opened in numbers so the kernel's SO_REUSEPORT spread puts them on
// both workers; a tab that vanishes without a close frame (TCP dropped) must still leave.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherServer from 'pusher';
import { sleep, useRingcast } from './helpers.mjs';
import { APP } from './server.mjs';
import { QUIET_MS, apiJson, dataOf, eventsOf, eventually, rawPusher, rawPushers, sdkFor } from './support.mjs';

// Signs presence subscriptions the way the app's auth endpoint would.
const signer = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });

const added = (c, ch) => eventsOf(c, 'pusher_internal:member_added', ch);
const removed = (c, ch) => eventsOf(c, 'pusher_internal:member_removed', ch);
const addedIds = (c, ch) => added(c, ch).map((d) => d.user_id);
const removedIds = (c, ch) => removed(c, ch).map((d) => d.user_id);

/** Opens a raw client and joins `channel` as `user`; returns it with the decoded member list. */
async function join(server, defer, channel, user) {
  const c = await rawPusher(server, defer);
  c.subscribeSigned(signer, channel, user);
  c.members = (await c.succeeded(channel)).presence;
  return c;
}

describe('presence channels: one member per user, every event exactly once (2 workers)', () => {
  const { it } = useRingcast({ workers: 2 });

  it('subscription_succeeded, member_added and member_removed have the protocol shapes', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-shapes';
    const a = await join(server, defer, ch, 1);
    assert.deepEqual(a.members, { ids: ['1'], hash: { 1: { name: 'User 1' } }, count: 1 });
    const raw = a.frames.find((m) => m.event === 'pusher_internal:subscription_succeeded');
    assert.equal(typeof raw.data, 'string', 'data is a JSON string');

    // A numeric user_id in channel_data is a string everywhere the server repeats it.
    const b = await rawPusher(server, defer);
    const signed = signer.authorizeChannel(b.socketId, ch, { user_id: 2, user_info: { name: 'Two' } });
    b.subscribe(ch, signed);
    const bm = (await b.succeeded(ch)).presence;
    assert.deepEqual([...bm.ids].sort(), ['1', '2']);
    assert.equal(bm.count, 2);
    assert.deepEqual(bm.hash, { 1: { name: 'User 1' }, 2: { name: 'Two' } });

    const f = await a.event('pusher_internal:member_added', ch);
    assert.equal(typeof f.data, 'string');
    assert.deepEqual(JSON.parse(f.data), { user_id: '2', user_info: { name: 'Two' } });
    b.unsubscribe(ch);
    const r = await a.event('pusher_internal:member_removed', ch);
    assert.deepEqual(JSON.parse(r.data), { user_id: '2' });

    await sleep(QUIET_MS);
    assert.equal(addedIds(b, ch).length, 0, 'the joiner is not told about itself');
    assert.equal(removedIds(b, ch).length, 0, 'the leaver is not told about itself');
    assert.equal(added(a, ch).length, 1);
    assert.equal(removed(a, ch).length, 1);
  });

  it('six users joining and leaving at once: each observer sees each user added once and removed once', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-crowd';
    const observers = [await join(server, defer, ch, 'obs1'), await join(server, defer, ch, 'obs2')];
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    const tabs = await Promise.all(users.map((u) => join(server, defer, ch, u)));
    for (const o of observers) {
      await eventually(() => addedIds(o, ch).filter((id) => users.includes(id)).length >= 6, 'six member_added');
    }
    for (const t of tabs) t.unsubscribe(ch);
    for (const o of observers) {
      await eventually(() => removedIds(o, ch).length >= 6, 'six member_removed');
    }
    await sleep(QUIET_MS);
    for (const o of observers) {
      assert.deepEqual(addedIds(o, ch).filter((id) => users.includes(id)).sort(), users);
      assert.deepEqual(removedIds(o, ch).sort(), users);
    }
    const left = await apiJson(sdkFor(server).get({ path: `/channels/${ch}/users` }), 'GET users');
    assert.deepEqual(left.users.map((u) => u.id).sort(), ['obs1', 'obs2']);
  });

  it('the same user in eight tabs (both workers): one member, removed only after the last tab', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-tabs';
    const observer = await join(server, defer, ch, 'watcher');
    const tabs = [];
    for (let i = 0; i < 8; i++) tabs.push(await join(server, defer, ch, 7));
    for (const t of tabs) {
      assert.equal(t.members.count, 2, 'a user counts once however many tabs it has');
      assert.deepEqual([...t.members.ids].sort(), ['7', 'watcher']);
    }
    await eventually(() => addedIds(observer, ch).length >= 1, 'member_added for user 7');
    const users = await apiJson(sdkFor(server).get({ path: `/channels/${ch}/users` }), 'GET users');
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['7', 'watcher']);
    const info = await apiJson(sdkFor(server).get({ path: `/channels/${ch}`, params: { info: 'user_count' } }));
    assert.equal(info.user_count, 2);

    // Close seven tabs: four with a close frame, three by unsubscribing.
    for (const t of tabs.slice(0, 4)) t.ws.close();
    for (const t of tabs.slice(4, 7)) t.unsubscribe(ch);
    await Promise.all(tabs.slice(0, 4).map((t) => t.closed));
    await tabs[7].roundTrip();
    await sleep(QUIET_MS);
    assert.deepEqual(removedIds(observer, ch), [], 'user 7 still has a tab open');
    assert.deepEqual(addedIds(observer, ch), ['7'], 'member_added exactly once');
    tabs[7].ws.close();
    await eventually(() => removedIds(observer, ch).length >= 1, 'member_removed for user 7');
    await sleep(QUIET_MS);
    assert.deepEqual(removedIds(observer, ch), ['7']);
    assert.deepEqual(addedIds(observer, ch), ['7']);
  });

  it('a tab whose TCP connection is dropped (no close frame) leaves the channel', async ({ server, defer }) => {
    const ch = 'presence-dropped';
    const observer = await join(server, defer, ch, 'watcher');
    const tabs = await Promise.all([join(server, defer, ch, 'd1'), join(server, defer, ch, 'd2')]);
    await eventually(() => addedIds(observer, ch).length >= 2, 'two member_added');
    tabs[0].drop(); // socket.destroy(): FIN without a WebSocket close frame
    tabs[1].ws.terminate(); // the ws package's own abrupt close
    await eventually(() => removedIds(observer, ch).length >= 2, 'member_removed for both dropped tabs');
    await sleep(QUIET_MS);
    assert.deepEqual(removedIds(observer, ch).sort(), ['d1', 'd2']);
    const users = await apiJson(sdkFor(server).get({ path: `/channels/${ch}/users` }));
    assert.deepEqual(users.users.map((u) => u.id), ['watcher']);
  });

  it('a join and a leave of the same user racing on different connections settle to one member', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-race';
    const observers = await Promise.all([join(server, defer, ch, 'o1'), join(server, defer, ch, 'o2')]);
    let current = await join(server, defer, ch, 9);
    for (let round = 0; round < 6; round++) {
      // A fresh connection (often on the other worker) joins while the old one leaves.
      const next = await rawPusher(server, defer);
      const signed = signer.authorizeChannel(next.socketId, ch, { user_id: '9', user_info: { name: 'User 9' } });
      next.subscribe(ch, signed);
      if (round % 2 === 0) current.unsubscribe(ch);
      else current.drop();
      await next.succeeded(ch);
      current = next;
    }
    await current.roundTrip();
    await sleep(QUIET_MS);
    for (const o of observers) {
      // For user 9 the observer's events must alternate added/removed, starting with added and
      // ending with added (user 9 is still present).
      const seq = o.frames
        .filter(
          (m) =>
            m.channel === ch &&
            (m.event === 'pusher_internal:member_added' || m.event === 'pusher_internal:member_removed') &&
            dataOf(m).user_id === '9',
        )
        .map((m) => (m.event.endsWith('added') ? '+' : '-'))
        .join('');
      assert.match(seq, /^(\+-)*\+$/, `user 9 events seen by an observer: ${seq}`);
    }
    const users = await apiJson(sdkFor(server).get({ path: `/channels/${ch}/users` }));
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['9', 'o1', 'o2']);
    const late = await join(server, defer, ch, 'late');
    assert.deepEqual([...late.members.ids].sort(), ['9', 'late', 'o1', 'o2']);
  });

  it('different users joining and leaving at the same moment: each event once', async ({ server, defer }) => {
    const ch = 'presence-swap';
    const observer = await join(server, defer, ch, 'o');
    const leavers = await Promise.all(['l1', 'l2', 'l3'].map((u) => join(server, defer, ch, u)));
    const joiners = await rawPushers(server, defer, 3);
    await eventually(() => addedIds(observer, ch).length >= 3, 'the leavers to be added');
    joiners.forEach((j, i) => j.subscribeSigned(signer, ch, `j${i + 1}`));
    leavers.forEach((l) => l.drop());
    await Promise.all(joiners.map((j) => j.succeeded(ch)));
    await eventually(() => removedIds(observer, ch).length >= 3 && addedIds(observer, ch).length >= 6, 'all events');
    await sleep(QUIET_MS);
    assert.deepEqual(addedIds(observer, ch).sort(), ['j1', 'j2', 'j3', 'l1', 'l2', 'l3']);
    assert.deepEqual(removedIds(observer, ch).sort(), ['l1', 'l2', 'l3']);
  });

  it('subscribing twice to the same presence channel is idempotent', async ({ server, defer }) => {
    const ch = 'presence-twice';
    const observer = await join(server, defer, ch, 'o');
    const c = await join(server, defer, ch, 5);
    c.subscribeSigned(signer, ch, 5);
    await c.roundTrip();
    await sleep(QUIET_MS);
    assert.deepEqual(addedIds(observer, ch), ['5']);
    const info = await apiJson(sdkFor(server).get({ path: `/channels/${ch}`, params: { info: 'user_count' } }));
    assert.equal(info.user_count, 2);
  });
  it('leaving and rejoining from another connection: removed then added again, once each', async ({
    server,
    defer,
  }) => {
    const ch = 'presence-rejoin';
    const observer = await join(server, defer, ch, 'o');
    const first = await join(server, defer, ch, 'r');
    await eventually(() => addedIds(observer, ch).length >= 1, 'member_added');
    first.unsubscribe(ch);
    await eventually(() => removedIds(observer, ch).length >= 1, 'member_removed');
    // Subscribing again on the same connection, then on a fresh one.
    first.subscribeSigned(signer, ch, 'r');
    await first.succeeded(ch);
    await eventually(() => addedIds(observer, ch).length >= 2, 'the second member_added');
    first.drop();
    await eventually(() => removedIds(observer, ch).length >= 2, 'the second member_removed');
    await join(server, defer, ch, 'r');
    await eventually(() => addedIds(observer, ch).length >= 3, 'the third member_added');
    await sleep(QUIET_MS);
    assert.deepEqual(addedIds(observer, ch), ['r', 'r', 'r']);
    assert.deepEqual(removedIds(observer, ch), ['r', 'r']);
  });

  it('a presence channel whose last member dropped is no longer listed as occupied', async ({ server, defer }) => {
    const ch = 'presence-vanish';
    const tabs = await Promise.all(['v1', 'v2', 'v3', 'v4'].map((u) => join(server, defer, ch, u)));
    const sdk = sdkFor(server);
    const listed = async () =>
      ch in (await apiJson(sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-vanish' } }))).channels;
    assert.equal(await listed(), true);
    for (const t of tabs) t.drop();
    await eventually(async () => !(await listed()), `${ch} to disappear from GET /channels`);
    const info = await apiJson(sdk.get({ path: `/channels/${ch}`, params: { info: 'user_count' } }));
    assert.equal(info.occupied, false);
    assert.equal(info.user_count ?? 0, 0);
    const users = await apiJson(sdk.get({ path: `/channels/${ch}/users` }));
    assert.deepEqual(users, { users: [] });
  });

  it('the 101st distinct member is refused with pusher:subscription_error; a second tab of a member is not', async ({
    server,
    defer,
  }) => {
    // Hosted Pusher's limit: 100 members per presence channel (pusher-protocol.md 1.9).
    const ch = 'presence-full';
    const members = [];
    for (let batch = 0; batch < 4; batch++) {
      const cs = await rawPushers(server, defer, 25);
      cs.forEach((c, i) => c.subscribeSigned(signer, ch, `m${batch * 25 + i}`));
      await Promise.all(cs.map((c) => c.succeeded(ch)));
      members.push(...cs);
    }
    const extra = await rawPusher(server, defer);
    extra.subscribeSigned(signer, ch, 'one-too-many');
    const f = await extra.take((m) => m.channel === ch, 'the answer for the 101st member');
    assert.equal(f.event, 'pusher:subscription_error', JSON.stringify(f));
    const d = dataOf(f);
    assert.equal(typeof d.type, 'string');
    assert.equal(typeof d.error, 'string');
    assert.equal(typeof d.status, 'number');
    // Another connection of an existing member adds no member, so it fits.
    const again = await join(server, defer, ch, 'm0');
    assert.equal(again.members.count, 100);
    await sleep(QUIET_MS);
    assert.equal(
      members[1].count((m) => m.event === 'pusher_internal:member_added' && dataOf(m).user_id === 'one-too-many'),
      0,
      'the refused user was never announced',
    );
  });

  it('channel_data with user_info over 1 KB is refused', async ({ server, defer }) => {
    const c = await rawPusher(server, defer);
    const big = signer.authorizeChannel(c.socketId, 'presence-big', {
      user_id: 'big',
      user_info: { bio: 'x'.repeat(2_000) },
    });
    c.subscribe('presence-big', big);
    const f = await c.take((m) => m.channel === 'presence-big' || m.event === 'pusher:error', 'the answer');
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', JSON.stringify(f).slice(0, 300));
    await c.roundTrip();
  });
});
