// Three ringcast nodes on one Redis (Debian's redis-server, started on a free loopback port with
// persistence off), each with two workers, configured through Laravel's variables
// (REVERB_SCALING_ENABLED, REDIS_HOST, REDIS_PORT): to every client the three must look like
// one big server. Presence with numeric user ids through Laravel Echo 2.5.0 and pusher-js
// 8.6.0, whispers, `toOthers()` (the SDK's socket_id), the query API asked on a third node,
// sendToUser / terminate, watchlists, cache channels, subscription counts, max_connections,
// exactly-once in-order delivery for publishers on every node to subscribers on every node,
// events posted one after the other through different nodes arriving in that order everywhere,
// and batches and multi-channel triggers from two nodes at once arriving whole, in their order,
// in one order on every connection of every node.
// The failures (a node killed or frozen, Redis restarted or frozen) are cluster-faults.test.mjs.
// With --dashboard, a signed stats watcher on one node is shown every node of the cluster with
// its connections and lease age (a suite of its own, so no other test's clients are counted).
// The interest-routing test prints Redis messages received per node per broadcast; it and the
// next count the script calls (round trips) of a plain channel's join, publishes and leave and of
// a presence channel's joins and leaves with MONITOR; the last test puts
// tuning/nginx/ringcast-cluster.conf.template in front of the three nodes.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { useAuthEndpoint } from './auth-endpoint.mjs';
import { STEP_TIMEOUT_MS, connectPusherJs, sleep, subscribe, within } from './helpers.mjs';
import { startNginx } from './nginx.mjs';
import { channelAuth, statsChannel } from '../../src/dashboard/assets/sign.mjs';
import { APP } from './server.mjs';
import {
  QUIET_MS,
  apiCall,
  apiJson,
  dataOf,
  defaultApp,
  eventsOf,
  eventually,
  rawPusher,
  rawPushers,
  sdkFor,
  useCluster,
} from './support.mjs';

const LIMITED = Object.freeze({ id: '515151', key: 'limited-key', secret: 'limited-secret' });

/** A connected Echo ('reverb' broadcaster) on `server`, logged in to the auth endpoint as `user`. */
function newEcho(server, auth, defer, user) {
  const echo = new Echo({
    broadcaster: 'reverb',
    Pusher,
    key: server.app.key,
    wsHost: server.host,
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    authEndpoint: auth.authUrl(user),
  });
  defer(() => echo.disconnect());
  return echo;
}

/** Calls of a callback, with a wait for a number of them. */
function recorder() {
  const calls = [];
  const fn = (...args) => calls.push(args);
  fn.calls = calls;
  fn.waitFor = (n, what) => eventually(() => calls.length >= n, what);
  return fn;
}

/** A presence subscription signed with a numeric user id, as a Laravel app's user model has. */
function subscribePresence(c, sdk, channel, id) {
  const a = sdk.authorizeChannel(c.socketId, channel, { user_id: id, user_info: { id, name: `User ${id}` } });
  c.subscribe(channel, { auth: a.auth, channel_data: a.channel_data });
}

/** `XINFO STREAM` entries-added of each node's inbox: messages that node received from Redis. */
async function inboxCounts(redis, nodes) {
  const out = [];
  for (const n of nodes) {
    const info = await redis.cli('--no-raw', 'XINFO', 'STREAM', `reverb:inbox:${n.node}`).catch(() => '');
    const m = /"entries-added"\s*\n\s*\d+\)\s*\(integer\)\s*(\d+)/.exec(info);
    out.push(m ? Number(m[1]) : 0);
  }
  return out;
}

describe('a cluster of three nodes on one Redis', () => {
  const auth = useAuthEndpoint({ app: APP, numericUserIds: true });
  const { it } = useCluster({
    nodes: 3,
    workers: 2,
    apps: [defaultApp({ subscription_count: true }), { ...LIMITED, max_connections: 3 }],
  });

  it('each node names its id and the Redis it joined, and answers on its own port', async ({ nodes, redis }) => {
    const ids = new Set(nodes.map((n) => n.node));
    assert.equal(ids.size, 3, `three distinct node ids: ${[...ids]}`);
    for (const n of nodes) assert.equal(n.joined, `redis://127.0.0.1:${redis.port}/0`);
    const members = (await redis.cli('SMEMBERS', 'reverb:nodes')).trim().split('\n').sort();
    assert.deepEqual(members, [...ids].sort());
  });

  it('Echo presence across nodes with numeric ids: here(), joining() and leaving() see every node', async ({
    nodes,
    defer,
  }) => {
    const room = 'cluster-room';
    const a = newEcho(nodes[0], auth, defer, 1);
    const aHere = recorder();
    const aJoin = recorder();
    const aLeave = recorder();
    a.join(room).here(aHere).joining(aJoin).leaving(aLeave);
    await aHere.waitFor(1, 'user 1 to see here()');
    assert.deepEqual(aHere.calls[0][0], [{ id: 1, name: 'User 1' }]);

    const b = newEcho(nodes[1], auth, defer, 2);
    const bHere = recorder();
    b.join(room).here(bHere);
    await bHere.waitFor(1, 'user 2 to see here()');
    const byId = (x, y) => x.id - y.id;
    assert.deepEqual(bHere.calls[0][0].sort(byId), [
      { id: 1, name: 'User 1' },
      { id: 2, name: 'User 2' },
    ]);
    await aJoin.waitFor(1, 'user 1 to see user 2 joining from node 1');
    assert.deepEqual(aJoin.calls[0][0], { id: 2, name: 'User 2' });

    // User 2 opens a second tab on node 2: the same member, no second joining().
    const b2 = newEcho(nodes[2], auth, defer, 2);
    const b2Here = recorder();
    b2.join(room).here(b2Here);
    await b2Here.waitFor(1, "user 2's second tab to see here()");
    assert.equal(b2Here.calls[0][0].length, 2);
    b.leave(room);
    await sleep(QUIET_MS);
    assert.equal(aJoin.calls.length, 1, 'a second tab is not a second member');
    assert.equal(aLeave.calls.length, 0, 'user 2 still has a tab on node 2');
    b2.disconnect();
    await aLeave.waitFor(1, 'user 1 to see user 2 leaving after their last tab');
    assert.deepEqual(aLeave.calls[0][0], { id: 2, name: 'User 2' });
  });

  it('raw presence across nodes: member_added once on the first connection anywhere, member_removed after the last', async ({
    nodes,
    defer,
  }) => {
    const sdk = auth.sdk;
    const ch = 'presence-cluster-raw';
    const watcher = await rawPusher(nodes[0], defer);
    subscribePresence(watcher, sdk, ch, 10);
    assert.deepEqual((await watcher.succeeded(ch)).presence.ids, ['10']);
    const tabs = [];
    for (const n of [nodes[1], nodes[2], nodes[1]]) {
      const t = await rawPusher(n, defer);
      subscribePresence(t, sdk, ch, 11);
      const d = await t.succeeded(ch);
      assert.deepEqual(d.presence.ids.sort(), ['10', '11']);
      assert.equal(d.presence.count, 2);
      tabs.push(t);
    }
    await watcher.event('pusher_internal:member_added', ch);
    assert.deepEqual(eventsOf(watcher, 'pusher_internal:member_added', ch), [
      { user_id: '11', user_info: { id: 11, name: 'User 11' } },
    ]);
    tabs[0].drop();
    tabs[1].unsubscribe(ch);
    await sleep(QUIET_MS);
    assert.equal(watcher.count((m) => m.event === 'pusher_internal:member_removed'), 0);
    tabs[2].ws.close();
    await watcher.event('pusher_internal:member_removed', ch);
    await sleep(QUIET_MS);
    assert.deepEqual(eventsOf(watcher, 'pusher_internal:member_removed', ch), [{ user_id: '11' }]);
    assert.equal(eventsOf(watcher, 'pusher_internal:member_added', ch).length, 1, 'exactly once');
  });

  it('pusher-js presence members across nodes', async ({ nodes, defer }) => {
    const ch = 'presence-cluster-js';
    const clients = [];
    for (const [i, n] of nodes.entries()) {
      const c = new Pusher(APP.key, {
        wsHost: n.host,
        wsPort: n.port,
        forceTLS: false,
        enabledTransports: ['ws'],
        cluster: 'mt1',
        channelAuthorization: { endpoint: auth.authUrl(20 + i), transport: 'ajax' },
      });
      defer(() => c.disconnect());
      const channel = c.subscribe(ch);
      await within(new Promise((r) => channel.bind('pusher:subscription_succeeded', r)), `client ${i} to join`);
      clients.push(channel);
    }
    await eventually(() => clients[0].members.count === 3, 'the first client to count three members');
    const ids = [];
    clients[0].members.each((m) => ids.push(m.id));
    assert.deepEqual(ids.sort(), ['20', '21', '22']);
    assert.equal(clients[2].members.get('20').info.name, 'User 20');
  });

  it('whispers cross nodes and never come back to their sender', async ({ nodes, defer }) => {
    const sender = newEcho(nodes[0], auth, defer, 30);
    const got = [];
    const subscribed = [];
    // Echo calls subscribed() only for a success that comes after it: each is bound at once.
    const whenSubscribed = (ch) => subscribed.push(within(new Promise((r) => ch.subscribed(r)), 'whisper channel subscription'));
    for (const i of [1, 2]) {
      const r = recorder();
      got.push(r);
      whenSubscribed(newEcho(nodes[i], auth, defer, 31 + i).private('cluster-whisper').listenForWhisper('typing', r));
    }
    const own = recorder();
    const mine = sender.private('cluster-whisper').listenForWhisper('typing', own);
    whenSubscribed(mine);
    await Promise.all(subscribed);
    mine.whisper('typing', { who: 30 });
    for (const r of got) await r.waitFor(1, 'the whisper on another node');
    assert.deepEqual(got[0].calls[0][0], { who: 30 });
    await sleep(QUIET_MS);
    assert.equal(own.calls.length, 0, 'no echo to the sender');
    assert.equal(got[1].calls.length, 1, 'exactly once');
  });

  it("toOthers() across nodes: the SDK's socket_id excludes that client on its node only", async ({ nodes, defer }) => {
    const ch = 'cluster-others';
    const subs = [];
    for (const n of nodes) {
      for (let i = 0; i < 2; i++) {
        const c = await rawPusher(n, defer);
        c.subscribe(ch);
        await c.succeeded(ch);
        subs.push(c);
      }
    }
    const originator = subs[3]; // on node 1
    for (const via of [0, 1, 2]) {
      await apiJson(sdkFor(nodes[via]).trigger(ch, 'saved', { via }, { socket_id: originator.socketId }));
    }
    for (const c of subs) {
      if (c === originator) continue;
      await eventually(() => eventsOf(c, 'saved', ch).length === 3, 'three events on every other client');
    }
    await sleep(QUIET_MS);
    assert.equal(originator.count((m) => m.event === 'saved'), 0, 'the originator got none, from any node');
    // Each event was posted once the last was answered: they arrive in that order everywhere.
    for (const c of subs) if (c !== originator) assert.deepEqual(eventsOf(c, 'saved', ch), [{ via: 0 }, { via: 1 }, { via: 2 }]);
  });

  it('events posted one after the other through different nodes arrive in that order on every node', async ({ nodes, defer }) => {
    const ch = 'cluster-sequence';
    const subs = [];
    for (const n of nodes) {
      for (const c of await rawPushers(n, defer, 3)) {
        c.subscribe(ch);
        await c.succeeded(ch);
        subs.push(c);
      }
    }
    // One publisher that moves between nodes (a load balancer in front of the API), posting
    // the next event once the last was answered.
    const N = 90;
    const sdks = nodes.map((n) => sdkFor(n));
    for (let i = 0; i < N; i++) await apiJson(sdks[i % 3].trigger(ch, 'n', { i }));
    for (const c of subs) await eventually(() => eventsOf(c, 'n', ch).length >= N, 'every event on every subscriber');
    await sleep(QUIET_MS);
    const want = Array.from({ length: N }, (_, i) => i);
    for (const [k, c] of subs.entries()) {
      assert.deepEqual(
        eventsOf(c, 'n', ch).map((e) => e.i),
        want,
        `subscriber ${k} (on node ${Math.floor(k / 3)}): in the order they were accepted, each once`,
      );
    }
  });

  it('the query API answers the same on every node, also on one with no subscriber', async ({ nodes, defer }) => {
    const sdk = auth.sdk;
    const pres = 'presence-cluster-query';
    const plain = 'cluster-query-plain';
    for (const [i, n] of [nodes[0], nodes[0], nodes[1]].entries()) {
      const c = await rawPusher(n, defer);
      subscribePresence(c, sdk, pres, 40 + (i % 2));
      await c.succeeded(pres);
      c.subscribe(plain);
      await c.succeeded(plain);
    }
    const answers = [];
    for (const n of nodes) {
      const s = sdkFor(n);
      answers.push({
        channels: await apiJson(s.get({ path: '/channels', params: { filter_by_prefix: 'presence-cluster-query', info: 'user_count' } })),
        channel: await apiJson(s.get({ path: `/channels/${pres}`, params: { info: 'user_count,subscription_count' } })),
        plain: await apiJson(s.get({ path: `/channels/${plain}`, params: { info: 'subscription_count' } })),
        users: await apiJson(s.get({ path: `/channels/${pres}/users` })),
      });
    }
    const want = {
      channels: { channels: { [pres]: { user_count: 2 } } },
      channel: { occupied: true, user_count: 2, subscription_count: 3 },
      plain: { occupied: true, subscription_count: 3 },
    };
    for (const a of answers) {
      assert.deepEqual({ channels: a.channels, channel: a.channel, plain: a.plain }, want);
      assert.deepEqual(a.users.users.map((u) => u.id).sort(), ['40', '41']);
    }
    const all = await apiJson(sdkFor(nodes[2]).get({ path: '/channels' }));
    assert.ok(all.channels[plain] && all.channels[pres], JSON.stringify(all));
  });

  it('sendToUser and terminateUserConnections reach a user signed in on another node', async ({ nodes, defer }) => {
    const sdk = auth.sdk;
    const signIn = async (n, id) => {
      const c = await rawPusher(n, defer);
      c.send({ event: 'pusher:signin', data: sdk.authenticateUser(c.socketId, { id }) });
      await c.event('pusher:signin_success');
      c.subscribe(`#server-to-user-${id}`);
      await c.succeeded(`#server-to-user-${id}`);
      return c;
    };
    const u = await signIn(nodes[0], '50');
    const u2 = await signIn(nodes[1], '50');
    const other = await signIn(nodes[1], '51');
    await apiJson(sdkFor(nodes[2]).sendToUser('50', 'note', { n: 1 }));
    for (const c of [u, u2]) {
      const f = await c.event('note');
      assert.deepEqual(dataOf(f), { n: 1 });
      assert.equal(f.channel, '#server-to-user-50');
    }
    const r = await apiCall(sdkFor(nodes[2]).terminateUserConnections('50'));
    assert.equal(r.status, 200, r.text);
    for (const c of [u, u2]) assert.equal((await within(c.closed, 'the terminated connection to close')).code, 4009);
    await other.roundTrip();
    assert.equal(other.count((m) => m.event === 'note'), 0);
  });

  it('watchlists see users come online and go offline on other nodes', async ({ nodes, defer }) => {
    const sdk = auth.sdk;
    const watcher = await rawPusher(nodes[0], defer);
    watcher.send({ event: 'pusher:signin', data: sdk.authenticateUser(watcher.socketId, { id: '60', watchlist: ['61', '62'] }) });
    await watcher.event('pusher:signin_success');
    const first = dataOf(await watcher.event('pusher_internal:watchlist_events'));
    assert.deepEqual(first, { events: [{ name: 'offline', user_ids: ['61', '62'] }] });
    const watched = await rawPusher(nodes[2], defer);
    watched.send({ event: 'pusher:signin', data: sdk.authenticateUser(watched.socketId, { id: '61' }) });
    await watched.event('pusher:signin_success');
    assert.deepEqual(dataOf(await watcher.event('pusher_internal:watchlist_events')), {
      events: [{ name: 'online', user_ids: ['61'] }],
    });
    watched.ws.close();
    assert.deepEqual(dataOf(await watcher.event('pusher_internal:watchlist_events')), {
      events: [{ name: 'offline', user_ids: ['61'] }],
    });
  });

  it('a cache channel keeps its last event for joiners on every node', async ({ nodes, defer }) => {
    const ch = 'cache-cluster';
    const early = await rawPusher(nodes[1], defer);
    early.subscribe(ch);
    await early.succeeded(ch);
    await early.event('pusher:cache_miss', ch);
    await apiJson(sdkFor(nodes[0]).trigger(ch, 'price', { v: 1 }));
    await apiJson(sdkFor(nodes[0]).trigger(ch, 'price', { v: 2 }));
    await eventually(() => eventsOf(early, 'price', ch).length === 2, 'two live events on node 1');
    for (const n of nodes) {
      const late = await rawPusher(n, defer);
      late.subscribe(ch);
      await late.succeeded(ch);
      assert.deepEqual(dataOf(await late.event('price', ch)), { v: 2 });
      assert.equal(late.count((m) => m.event === 'pusher:cache_miss'), 0);
    }
    const info = await apiJson(sdkFor(nodes[2]).get({ path: `/channels/${ch}`, params: { info: 'cache' } }));
    assert.equal(info.cache.data, JSON.stringify({ v: 2 }));
  });

  it('subscription_count counts subscribers on every node', async ({ nodes, defer }) => {
    const ch = 'cluster-counted';
    const a = await rawPusher(nodes[0], defer);
    a.subscribe(ch);
    await a.succeeded(ch);
    assert.deepEqual(dataOf(await a.event('pusher_internal:subscription_count', ch)), { subscription_count: 1 });
    const b = await rawPusher(nodes[1], defer);
    b.subscribe(ch);
    await b.succeeded(ch);
    assert.deepEqual(dataOf(await b.event('pusher_internal:subscription_count', ch)), { subscription_count: 2 });
    assert.deepEqual(dataOf(await a.event('pusher_internal:subscription_count', ch)), { subscription_count: 2 });
    b.ws.close();
    assert.deepEqual(dataOf(await a.event('pusher_internal:subscription_count', ch)), { subscription_count: 1 });
  });

  it('max_connections and /connections count the whole cluster', async ({ nodes, defer }) => {
    await rawPushers(nodes[0], defer, 2, { key: LIMITED.key });
    // The other nodes learn node 0's count within a heartbeat (one second).
    await eventually(
      async () => (await apiJson(sdkFor(nodes[1], LIMITED).get({ path: '/connections' }))).connections === 2,
      'node 1 to count node 0 connections',
    );
    await rawPusher(nodes[1], defer, { key: LIMITED.key });
    await eventually(
      async () => (await apiJson(sdkFor(nodes[2], LIMITED).get({ path: '/connections' }))).connections === 3,
      'node 2 to count three connections',
    );
    const refused = await rawPusher(nodes[2], defer, { key: LIMITED.key }).then(
      () => null,
      (err) => err,
    );
    assert.ok(refused, 'the fourth connection of the cluster is refused');
    assert.match(refused.message, /4004/);
  });

  it('exactly once and in order: three publishers on three nodes, subscribers on every node', async ({ nodes, defer }) => {
    const ch = 'cluster-stream';
    const subs = [];
    for (const n of nodes) {
      for (const c of await rawPushers(n, defer, 4)) {
        c.subscribe(ch);
        await c.succeeded(ch);
        subs.push(c);
      }
    }
    const PER = 60;
    await Promise.all(
      nodes.map(async (n, p) => {
        const s = sdkFor(n);
        for (let i = 0; i < PER; i++) {
          if (i % 10 === 9) {
            await apiJson(s.triggerBatch([{ channel: ch, name: 'seq', data: { p, i } }]));
          } else {
            await apiJson(s.trigger([ch, 'cluster-stream-other'], 'seq', { p, i }));
          }
        }
      }),
    );
    for (const c of subs) {
      await eventually(() => eventsOf(c, 'seq', ch).length >= 3 * PER, 'every event on every subscriber', STEP_TIMEOUT_MS * 2);
    }
    await sleep(QUIET_MS);
    for (const c of subs) {
      const got = eventsOf(c, 'seq', ch);
      assert.equal(got.length, 3 * PER, 'no duplicates');
      for (let p = 0; p < 3; p++) {
        const seq = got.filter((e) => e.p === p).map((e) => e.i);
        assert.deepEqual(seq, Array.from({ length: PER }, (_, i) => i), `publisher ${p} in order`);
      }
    }
  });

  it('batches and multi-channel triggers from two nodes: each request whole, in its order, one order on every connection', async ({
    nodes,
    defer,
  }) => {
    const A = 'cluster-batch-a';
    const B = 'cluster-batch-b';
    // Two connections subscribed to both channels on every node (the publishing nodes
    // included), and one subscribed to A only.
    const both = [];
    for (const n of nodes) {
      for (const c of await rawPushers(n, defer, 2)) {
        c.subscribe(A);
        c.subscribe(B);
        await c.succeeded(A);
        await c.succeeded(B);
        both.push(c);
      }
    }
    const onlyA = await rawPusher(nodes[2], defer);
    onlyA.subscribe(A);
    await onlyA.succeeded(A);

    // Two publishers, through nodes 0 and 1 at the same time, each posting its next request
    // once the last was answered: batches of ten events over both channels in a mixed order,
    // and events triggered on both channels at once. Every event is tagged with its publisher,
    // its request and its place in the request.
    const ROUNDS = 8;
    const pattern = [A, B, B, A, A, B, A, B, B, A];
    const sent = [[], []]; // per publisher: the requests, each the [channel, tag] of its events in order
    await Promise.all(
      [0, 1].map(async (p) => {
        const sdk = sdkFor(nodes[p]);
        for (let r = 0; r < ROUNDS; r++) {
          await apiJson(sdk.triggerBatch(pattern.map((channel, i) => ({ channel, name: 'ev', data: { p, r: 2 * r, i } }))));
          sent[p].push(pattern.map((channel, i) => [channel, `${p}/${2 * r}/${i}`]));
          const multi = r % 2 ? [B, A] : [A, B];
          await apiJson(sdk.trigger(multi, 'ev', { p, r: 2 * r + 1, i: 0 }));
          sent[p].push(multi.map((channel) => [channel, `${p}/${2 * r + 1}/0`]));
        }
      }),
    );
    const perConnection = 2 * ROUNDS * (pattern.length + 2);
    const received = (c) =>
      c.frames.filter((f) => f.event === 'ev').map((f) => [f.channel, (({ p, r, i }) => `${p}/${r}/${i}`)(dataOf(f))]);
    for (const c of both) await eventually(() => received(c).length >= perConnection, 'every event on every connection', STEP_TIMEOUT_MS * 2);
    await sleep(QUIET_MS);

    const key = ([channel, tag]) => `${channel}:${tag}`;
    const first = received(both[0]);
    for (const [k, c] of both.entries()) {
      const got = received(c);
      const where = `connection ${k} (node ${Math.floor(k / 2)})`;
      assert.equal(got.length, perConnection, `${where}: no event missing, none twice`);
      assert.equal(new Set(got.map(key)).size, perConnection, `${where}: no event twice`);
      // Each request arrives whole (nothing of another request in between) and in its own
      // order, across both channels; and each publisher's requests in the order it sent them.
      const requests = [];
      for (const e of got) {
        const req = e[1].split('/').slice(0, 2).join('/');
        if (requests.at(-1)?.req !== req) requests.push({ req, events: [] });
        requests.at(-1).events.push(e);
      }
      for (const p of [0, 1]) {
        const mine = requests.filter((q) => q.req.startsWith(`${p}/`)).map((q) => q.events);
        assert.deepEqual(mine, sent[p], `${where}: publisher ${p}'s requests, each whole and in order`);
      }
      // Requests made at the same time through two nodes are in one order, the same everywhere.
      assert.deepEqual(got, first, `${where}: the same order as connection 0`);
    }
    const gotA = received(onlyA);
    assert.deepEqual(gotA, first.filter(([channel]) => channel === A), 'the A-only connection: every A event once, in the same order');
  });

  it('interest routing: a channel on one node of three costs the other nodes nothing', async ({ nodes, redis, defer }) => {
    const ch = 'cluster-one-node-only';
    const sub = await rawPusher(nodes[0], defer);
    const monitor = redis.monitor();
    defer(() => monitor.stop());
    await sleep(200);
    sub.subscribe(ch);
    await sub.succeeded(ch);
    const before = await inboxCounts(redis, nodes);
    const N = 100;
    for (let i = 0; i < N; i++) await apiJson(sdkFor(nodes[2]).trigger(ch, 'tick', { i }));
    await eventually(() => eventsOf(sub, 'tick', ch).length === N, 'every broadcast on node 0');
    const afterPublish = await inboxCounts(redis, nodes);
    sub.unsubscribe(ch);
    await sub.roundTrip();
    await sleep(300);
    monitor.stop();
    const perNode = afterPublish.map((n, i) => (n - before[i]) / N);
    console.log(
      `interest routing: Redis messages received per broadcast, channel on node 0 of 3, published on node 2: ${perNode
        .map((x, i) => `node ${i} ${x.toFixed(2)}`)
        .join(', ')}`,
    );
    assert.deepEqual(perNode, [1, 0, 0]);
    // Round trips, from MONITOR: script calls naming the channel (not the commands they ran).
    const calls = monitor.lines.filter((l) => l.includes('"EVALSHA"') && l.includes(`"${ch}"`) && !l.includes('lua]'));
    console.log(`round trips for this channel: ${calls.length} script calls for 1 join, ${N} publishes and 1 leave`);
    assert.equal(calls.length, N + 2, calls.slice(0, 5).join('\n'));
  });

  it('round trips: a presence join and a presence leave are one script call each, their member events included', async ({
    nodes,
    redis,
    defer,
  }) => {
    const sdk = auth.sdk;
    const ch = 'presence-cluster-round-trips';
    const monitor = redis.monitor();
    defer(() => monitor.stop());
    await sleep(200);
    // Script calls naming the channel, as MONITOR shows them (not the commands they ran).
    const calls = () => monitor.lines.filter((l) => l.includes('"EVALSHA"') && l.includes(`"${ch}"`) && !l.includes('lua]'));
    const watcher = await rawPusher(nodes[0], defer);
    subscribePresence(watcher, sdk, ch, 70);
    await watcher.succeeded(ch);
    // User 71 on the two other nodes, twice on node 1: the first join is a member_added on
    // node 0, the others are not.
    const tabs = [];
    for (const n of [nodes[1], nodes[2], nodes[1]]) {
      const t = await rawPusher(n, defer);
      subscribePresence(t, sdk, ch, 71);
      await t.succeeded(ch);
      tabs.push(t);
    }
    await watcher.event('pusher_internal:member_added', ch);
    for (const t of tabs) t.unsubscribe(ch);
    await watcher.event('pusher_internal:member_removed', ch);
    watcher.unsubscribe(ch);
    const JOINS = 4;
    const LEAVES = 4;
    await eventually(() => calls().length >= JOINS + LEAVES, 'a script call for every join and leave');
    await sleep(QUIET_MS);
    monitor.stop();
    console.log(
      `round trips for a presence channel with members on three nodes: ${calls().length} script calls for ${JOINS} joins and ${LEAVES} leaves`,
    );
    assert.equal(calls().length, JOINS + LEAVES, calls().join('\n'));
    assert.equal(eventsOf(watcher, 'pusher_internal:member_added', ch).length, 1);
    assert.equal(eventsOf(watcher, 'pusher_internal:member_removed', ch).length, 1);
  });

  it('behind the cluster nginx site, clients spread over the nodes and every one gets every publish', async ({
    nodes,
    redis,
    defer,
  }) => {
    const nginx = await startNginx({
      template: 'ringcast-cluster.conf.template',
      vars: {
        RINGCAST_PATH: '',
        RINGCAST_PROXY_READ_TIMEOUT: '120s',
        RINGCAST_MAX_FAILS: '2',
        RINGCAST_FAIL_TIMEOUT: '10s',
        RINGCAST_NODE_1: `127.0.0.1:${nodes[0].port}`,
        RINGCAST_NODE_2: `127.0.0.1:${nodes[1].port}`,
        RINGCAST_NODE_3: `127.0.0.1:${nodes[2].port}`,
      },
    });
    defer(() => nginx.stop());
    const front = { host: '127.0.0.1', port: nginx.port, app: APP };
    const ch = 'cluster-behind-nginx';
    const clients = [];
    const counts = [];
    for (let i = 0; i < 6; i++) {
      const c = await connectPusherJs(front, defer);
      const channel = await subscribe(c, ch);
      const got = [];
      channel.bind('hello', (d) => got.push(d));
      clients.push(c);
      counts.push(got);
    }
    // least_conn spread the six over the nodes: each node serves some of them.
    const local = (await redis.cli('HGETALL', `reverb:subs:${APP.id}:${ch}`)).trim().split('\n');
    assert.equal(local.length, 6, `subscriptions on all three nodes: ${local}`);
    const perNode = await Promise.all(
      nodes.map(async (n) => (await apiJson(sdkFor(n).get({ path: `/channels/${ch}`, params: { info: 'subscription_count' } }))).subscription_count),
    );
    assert.deepEqual(perNode, [6, 6, 6], 'every node sees the cluster-wide count');
    await apiJson(sdkFor(front).trigger(ch, 'hello', { via: 'nginx' }));
    for (const got of counts) await eventually(() => got.length === 1, 'the publish through nginx on every client');
    const up = await fetch(`http://127.0.0.1:${nginx.port}/up`);
    assert.equal(up.status, 200);
  });
});

describe('a cluster of three nodes with the dashboard', () => {
  const { it } = useCluster({ nodes: 3, workers: 2, args: ['--dashboard'], apps: [defaultApp()] });

  it("a signed stats watcher on one node sees every node's id, connections and a lease younger than 30 s", async ({
    nodes,
    defer,
  }) => {
    // 2, 3 and 4 connections on nodes 0, 1 and 2 (the watcher is one of node 0's).
    await rawPushers(nodes[0], defer, 1);
    await rawPushers(nodes[1], defer, 3);
    await rawPushers(nodes[2], defer, 4);
    const { key, secret } = nodes[0].app;
    const channel = await statsChannel(secret);
    const watcher = await rawPusher(nodes[0], defer);
    watcher.subscribe(channel, { auth: await channelAuth(key, secret, watcher.socketId, channel) });
    await watcher.take((f) => f.event === 'pusher_internal:subscription_succeeded', 'the stats subscription');
    const want = [
      [nodes[0].node, 2],
      [nodes[1].node, 3],
      [nodes[2].node, 4],
    ].sort(([a], [b]) => a.localeCompare(b));
    // The other nodes' counts are their last heartbeat's (every second): wait for a document
    // that has them all.
    const doc = await eventually(
      () => {
        const last = eventsOf(watcher, 'stats', channel).at(-1);
        const got = last?.nodes.map((n) => [n.id, n.connections]);
        return JSON.stringify(got) === JSON.stringify(want) && last;
      },
      'a stats document listing the three nodes with 2, 3 and 4 connections',
      10_000,
    );
    for (const n of doc.nodes) {
      assert.equal(n.this, n.id === nodes[0].node, `only the watcher's node is this node: ${n.id}`);
      assert.equal(typeof n.lease_age_secs, 'number', `a live lease for ${n.id}`);
      assert.ok(n.lease_age_secs >= 0 && n.lease_age_secs < 30, `lease age of ${n.id}: ${n.lease_age_secs}`);
      assert.ok(n.lease_ms_left > 0 && n.lease_ms_left <= 30_000, `lease left of ${n.id}: ${n.lease_ms_left}`);
    }
    const me = doc.nodes.find((n) => n.this);
    assert.equal(me.workers.length, 2, "this node's workers are listed");
    assert.equal(doc.connections, 2, "the app's connections on this node");
  });
});
