// Webhooks from a cluster of three ringcast nodes on one Redis: each webhook is sent once per
// cluster, by the node whose Redis script decided its fact, whichever nodes the clients are on;
// the 3-second delay of channel_vacated / member_removed is cancelled by a return on any
// node; a node killed with SIGKILL has its departures, and the count its subscriptions leave,
// sent by the survivor that reaps it. Every request is validated by both Pusher SDKs (see
// webhook-receiver.mjs).

import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import { sleep } from './helpers.mjs';
import { APP } from './server.mjs';
import { QUIET_MS, defaultApp, subscribedClient, useCluster } from './support.mjs';
import { startReceiver } from './webhook-receiver.mjs';

const ALL = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'];

const subscriber = subscribedClient;

const lines = (events, channel) =>
  events
    .filter((e) => e.channel === channel)
    .map((e) => `${e.name}${e.user_id ? ` ${e.user_id}` : ''}${e.subscription_count ? ` ${e.subscription_count}` : ''}`);

/** `got` with its lines `from`..`to` sorted: webhooks decided on different nodes are not ordered. */
const unordered = (got, from, to) => [...got.slice(0, from), ...got.slice(from, to).sort(), ...got.slice(to)];

describe('webhooks from a three-node cluster', async () => {
  const receiver = await startReceiver(APP);
  after(() => receiver.stop());
  const { it } = useCluster({
    nodes: 3,
    workers: 2,
    apps: [defaultApp({ subscription_count: true, webhooks: [{ url: receiver.url, event_types: ALL }] })],
  });

  it('occupied and vacated once for subscribers on every node', async ({ nodes, defer }) => {
    const ch = 'cl-room';
    const subs = [];
    for (const n of nodes) subs.push(await subscriber(n, defer, ch));
    await receiver.until((e) => lines(e, ch).filter((l) => l.startsWith('subscription_count')).length >= 3, 'three counts');
    for (const s of subs) s.ws.close();
    await receiver.until((e) => lines(e, ch).includes('channel_vacated'), 'channel_vacated', 8000);
    await sleep(QUIET_MS);
    // Each node sends what its own scripts decided, in order; nodes are not ordered against
    // each other, so the counts are compared as a set: each decided count exactly once.
    const got = lines(receiver.events, ch);
    assert.equal(got.at(-1), 'channel_vacated');
    assert.deepEqual(got.slice(0, -1).sort(), [
      'channel_occupied',
      'subscription_count 1',
      'subscription_count 1',
      'subscription_count 2',
      'subscription_count 2',
      'subscription_count 3',
    ]);
    receiver.assertAllValid();
  });

  it('a member with tabs on two nodes is added once and removed once, 3 s after the last tab', async ({ nodes, defer }) => {
    const ch = 'presence-cl';
    const watcher = await subscriber(nodes[0], defer, ch, 'w');
    // Each node sends what its scripts decided; nodes are not ordered against each other, so
    // the next step waits for node 0's webhooks first.
    await receiver.until((e) => lines(e, ch).includes('member_added w'), 'member_added w');
    const tab1 = await subscriber(nodes[1], defer, ch, 'u');
    const tab2 = await subscriber(nodes[2], defer, ch, 'u');
    await receiver.until((e) => lines(e, ch).includes('member_added u'), 'member_added u');
    tab1.ws.close();
    await sleep(QUIET_MS);
    const gone = Date.now();
    tab2.drop();
    await receiver.until((e) => lines(e, ch).includes('member_removed u'), 'member_removed u', 8000);
    const removed = receiver.named('member_removed', ch)[0];
    assert.ok(removed.at - gone >= 2900, `removed after ${removed.at - gone} ms`);
    await sleep(QUIET_MS);
    // w's arrival is decided on node 0, u's on node 1 or 2: not ordered against each other.
    assert.deepEqual(unordered(lines(receiver.events, ch), 1, 3), ['channel_occupied', 'member_added u', 'member_added w', 'member_removed u']);
    watcher.ws.close();
    await receiver.until((e) => lines(e, ch).includes('channel_vacated'), 'channel_vacated', 8000);
    receiver.assertAllValid();
  });

  it('leaving on one node and rejoining on another within 3 s sends nothing', async ({ nodes, defer }) => {
    const ch = 'presence-cl-reload';
    const first = await subscriber(nodes[0], defer, ch, 'r');
    await receiver.until((e) => lines(e, ch).includes('member_added r'), 'member_added r');
    first.drop();
    await sleep(1000);
    const again = await subscriber(nodes[2], defer, ch, 'r');
    await sleep(4000);
    assert.deepEqual(lines(receiver.events, ch), ['channel_occupied', 'member_added r']);
    again.ws.close();
    await receiver.until((e) => lines(e, ch).includes('channel_vacated'), 'channel_vacated', 8000);
    assert.deepEqual(lines(receiver.events, ch), ['channel_occupied', 'member_added r', 'member_removed r', 'channel_vacated']);
    receiver.assertAllValid();
  });

  it('client_event once, cache_miss once for simultaneous subscribers on three nodes', async ({ nodes, defer }) => {
    const ch = 'cache-cl';
    await Promise.all(nodes.map((n) => subscriber(n, defer, ch)));
    const a = await subscriber(nodes[1], defer, 'private-cl', null);
    await subscriber(nodes[2], defer, 'private-cl', null);
    a.send({ event: 'client-hi', channel: 'private-cl', data: { x: 1 } });
    await receiver.until((e) => e.some((x) => x.name === 'client_event' && x.channel === 'private-cl'), 'client_event');
    await sleep(QUIET_MS);
    assert.equal(receiver.named('client_event', 'private-cl').length, 1);
    assert.equal(receiver.named('client_event', 'private-cl')[0].socket_id, a.socketId);
    assert.equal(receiver.named('cache_miss', ch).length, 1, 'one cache_miss for three nodes');
    assert.equal(receiver.named('channel_occupied', ch).length, 1);
    receiver.assertAllValid();
  });
});

describe('webhooks of a node killed with SIGKILL', async () => {
  const NODE_TIMEOUT = 4;
  const receiver = await startReceiver(APP);
  after(() => receiver.stop());
  const { it } = useCluster({
    nodes: 2,
    workers: 2,
    timeout: 60_000,
    env: { RINGCAST_NODE_TIMEOUT: String(NODE_TIMEOUT) },
    // Every event type, and no `subscription_count` setting: the counts go to the webhook only.
    apps: [defaultApp({ webhooks: [{ url: receiver.url, event_types: ALL }] })],
  });

  it('the survivor that reaps it sends member_removed and channel_vacated once, after the delay, and the count', async ({ nodes, defer }) => {
    const [a, b] = nodes;
    const room = 'presence-cl-kill';
    const lonely = 'cl-kill-lonely';
    const shared = 'cl-kill-shared';
    await subscriber(a, defer, room, 'w');
    await subscriber(b, defer, room, 'k'); // only on the node that dies
    await subscriber(b, defer, lonely);
    const stays = await subscriber(a, defer, shared);
    await receiver.until((e) => lines(e, shared).includes('subscription_count 1'), 'the first count');
    await subscriber(b, defer, shared);
    await receiver.until(
      (e) => lines(e, room).includes('member_added k') && lines(e, lonely).includes('subscription_count 1') && lines(e, shared).includes('subscription_count 2'),
      'arrivals',
    );
    const killedAt = Date.now();
    b.signal('SIGKILL');
    await b.exited();
    const wait = (NODE_TIMEOUT + 3 + 4) * 1000;
    await receiver.until(
      (e) => lines(e, room).includes('member_removed k') && lines(e, lonely).includes('channel_vacated') && lines(e, shared).length >= 4,
      'departures',
      wait,
    );
    const removed = receiver.named('member_removed', room)[0];
    const took = (removed.at - killedAt) / 1000;
    console.log(`a SIGKILLed node's member_removed webhook came ${took.toFixed(1)} s after the kill (node timeout ${NODE_TIMEOUT} s + 3 s delay)`);
    assert.ok(took >= 2.9, `after the reap and its 3 s delay: ${took} s`);
    await sleep(QUIET_MS);
    assert.deepEqual(unordered(lines(receiver.events, room), 1, 3), ['channel_occupied', 'member_added k', 'member_added w', 'member_removed k']);
    assert.deepEqual(lines(receiver.events, lonely), ['channel_occupied', 'subscription_count 1', 'channel_vacated']);
    assert.deepEqual(lines(receiver.events, shared), ['channel_occupied', 'subscription_count 1', 'subscription_count 2', 'subscription_count 1']);
    assert.equal(stays.count((m) => m.event === 'pusher_internal:subscription_count'), 0, 'no count event to a subscriber');
    receiver.assertAllValid();
  });
});
