// Subscription counts (pusher-protocol.md 1.15), cache channels (1.11) and the query side of the
// HTTP API (2.2) through the `pusher` SDK, on a two-worker ringcast configured from a TOML file
// with `subscription_count = true`. Clients are opened several at a time so both workers hold
// subscribers of every channel and each count is a cluster-wide sum.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherServer from 'pusher';
import { collect, connectPusherJs, serverSdk, sleep, subscribe } from './helpers.mjs';
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
  useConfiguredRingcast,
} from './support.mjs';

const CACHE_TTL = 60;
const SHORT_CACHE = { id: '424243', key: 'short-cache-key', secret: 'short-cache-secret', cache_ttl: 1 };
const signer = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });

const counts = (c, ch) => eventsOf(c, 'pusher_internal:subscription_count', ch).map((d) => d.subscription_count);
const lastCount = (c, ch) => counts(c, ch).at(-1);

describe('subscription counts, cache channels and the channel query API (2 workers, config file)', () => {
  const { it } = useConfiguredRingcast({
    workers: 2,
    apps: [defaultApp({ subscription_count: true, cache_ttl: CACHE_TTL }), SHORT_CACHE],
  });

  it('pusher-js: pusher:subscription_count follows subscribes and unsubscribes across workers', async ({
    server,
    defer,
  }) => {
    const clients = [];
    const seen = [];
    for (let i = 0; i < 5; i++) {
      const client = await connectPusherJs(server, defer);
      const ch = client.subscribe('counted');
      seen.push(collect(ch, 'pusher:subscription_count'));
      await new Promise((resolve) => ch.bind('pusher:subscription_succeeded', resolve));
      clients.push({ client, ch });
    }
    for (const [i, { ch }] of clients.entries()) {
      await eventually(() => ch.subscriptionCount === 5, `client ${i} to see subscriptionCount 5`);
    }
    clients[0].client.unsubscribe('counted');
    clients[1].client.disconnect();
    for (const { ch } of clients.slice(2)) {
      await eventually(() => ch.subscriptionCount === 3, 'subscriptionCount 3 after two left');
    }
    for (const s of seen.slice(2)) {
      const last = s.received.at(-1);
      assert.deepEqual(last, { subscription_count: 3 }, 'pusher:subscription_count data');
    }
  });

  it('pusher_internal:subscription_count on the wire; none on presence channels', async ({ server, defer }) => {
    const raws = await rawPushers(server, defer, 4);
    for (const r of raws) r.subscribe('count-wire');
    await Promise.all(raws.map((r) => r.succeeded('count-wire')));
    for (const r of raws) await eventually(() => lastCount(r, 'count-wire') === 4, 'count 4 on every client');
    const f = raws[0].frames.find((m) => m.event === 'pusher_internal:subscription_count');
    assert.equal(f.channel, 'count-wire');
    assert.equal(typeof f.data, 'string', 'data is a JSON string');
    assert.deepEqual(Object.keys(JSON.parse(f.data)), ['subscription_count']);

    // Private channels are counted too.
    for (const r of raws.slice(0, 2)) r.subscribeSigned(signer, 'private-count-wire');
    for (const r of raws.slice(0, 2)) {
      await eventually(() => lastCount(r, 'private-count-wire') === 2, 'count 2 on the private channel');
    }

    // Presence channels have member events instead.
    for (const [i, r] of raws.entries()) r.subscribeSigned(signer, 'presence-count-wire', `u${i}`);
    await Promise.all(raws.map((r) => r.succeeded('presence-count-wire')));
    await sleep(QUIET_MS);
    for (const r of raws) assert.deepEqual(counts(r, 'presence-count-wire'), []);
  });

  it("trigger(..., {info: 'subscription_count'}) and {info: 'user_count'} answer per channel", async ({
    server,
    defer,
  }) => {
    const raws = await rawPushers(server, defer, 4);
    for (const r of raws) r.subscribe('info-public');
    for (const [i, r] of raws.slice(0, 3).entries()) r.subscribeSigned(signer, 'presence-info', `p${i}`);
    // The same user twice: users count once.
    raws[3].subscribeSigned(signer, 'presence-info', 'p0');
    await Promise.all(raws.map((r) => r.succeeded('info-public')));
    await Promise.all(raws.map((r) => r.succeeded('presence-info')));

    const sdk = serverSdk(server);
    const one = await apiJson(sdk.trigger('info-public', 'e', { x: 1 }, { info: 'subscription_count' }));
    assert.deepEqual(one, { channels: { 'info-public': { subscription_count: 4 } } });
    const pres = await apiJson(sdk.trigger('presence-info', 'e', { x: 1 }, { info: 'user_count' }));
    assert.deepEqual(pres, { channels: { 'presence-info': { user_count: 3 } } });
    const none = await apiJson(sdk.trigger('info-nobody', 'e', { x: 1 }, { info: 'subscription_count' }));
    assert.deepEqual(none, { channels: { 'info-nobody': { subscription_count: 0 } } });
    const plain = await apiJson(sdk.trigger('info-public', 'e', { x: 1 }));
    assert.deepEqual(plain, {}, 'without info the answer stays {}');
  });

  it('GET /channels, /channels/{name} and /channels/{name}/users', async ({ server, defer }) => {
    const raws = await rawPushers(server, defer, 4);
    for (const r of raws) r.subscribe('q-public');
    raws[0].subscribeSigned(signer, 'private-q');
    for (const [i, r] of raws.entries()) r.subscribeSigned(signer, 'presence-q-room', i < 2 ? 'alice' : `user${i}`);
    raws[0].subscribeSigned(signer, 'presence-q-other', 'bob');
    await Promise.all(raws.map((r) => r.succeeded('presence-q-room')));
    await raws[0].succeeded('presence-q-other');
    await raws[0].succeeded('private-q');
    await Promise.all(raws.map((r) => r.succeeded('q-public')));
    const sdk = sdkFor(server);

    const presence = await apiJson(
      sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-q-', info: 'user_count' } }),
    );
    assert.deepEqual(presence, {
      channels: { 'presence-q-room': { user_count: 3 }, 'presence-q-other': { user_count: 1 } },
    });
    const all = await apiJson(sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-' } }));
    assert.deepEqual(all.channels['presence-q-room'], {});
    assert.ok(!('q-public' in all.channels), 'filter_by_prefix filters');
    const everything = await apiJson(sdk.get({ path: '/channels' }));
    for (const name of ['q-public', 'private-q', 'presence-q-room', 'presence-q-other']) {
      assert.deepEqual(everything.channels[name], {}, `${name} is listed as occupied`);
    }
    assert.ok(!('q-never' in everything.channels));

    const room = await apiJson(sdk.get({ path: '/channels/presence-q-room', params: { info: 'user_count' } }));
    assert.deepEqual(room, { occupied: true, user_count: 3 });
    const pub = await apiJson(sdk.get({ path: '/channels/q-public', params: { info: 'subscription_count' } }));
    assert.deepEqual(pub, { occupied: true, subscription_count: 4 });
    const empty = await apiJson(sdk.get({ path: '/channels/q-never' }));
    assert.deepEqual(empty, { occupied: false });

    const users = await apiJson(sdk.get({ path: '/channels/presence-q-room/users' }));
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'user2', 'user3']);
    for (const u of users.users) assert.deepEqual(Object.keys(u), ['id']);

    // Questions that do not apply to the channel type are 400 (protocol 2.2).
    for (const [what, call] of [
      ['user_count without a presence- prefix', () => sdk.get({ path: '/channels', params: { info: 'user_count' } })],
      ['user_count of a public channel', () => sdk.get({ path: '/channels/q-public', params: { info: 'user_count' } })],
      ['users of a public channel', () => sdk.get({ path: '/channels/q-public/users' })],
    ]) {
      const r = await apiCall(call());
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
    }
  });

  it("GET /connections counts the app's open connections across workers", async ({ server, defer }) => {
    const sdk = sdkFor(server);
    const connections = async () => (await apiJson(sdk.get({ path: '/connections' }))).connections;
    // The earlier tests' clients are gone (their cleanups closed them), so the count drains to 0.
    await eventually(async () => (await connections()) === 0, '0 connections once earlier clients left');
    const before = 0;
    const raws = await rawPushers(server, defer, 6);
    await eventually(
      async () => (await connections()) === before + 6,
      `${before + 6} connections`,
    );
    for (const r of raws.slice(0, 3)) r.ws.close();
    for (const r of raws.slice(3)) r.drop();
    await eventually(
      async () => (await connections()) === before,
      `back to ${before} connections`,
    );
    // Another app's connections are not counted.
    const other = await rawPusher(server, defer, { key: SHORT_CACHE.key });
    await other.roundTrip();
    assert.deepEqual(await apiJson(sdk.get({ path: '/connections' })), { connections: before });
  });

  it('subscription_count drops when subscribers vanish without a close frame', async ({ server, defer }) => {
    const raws = await rawPushers(server, defer, 6);
    for (const r of raws) r.subscribe('count-drop');
    await Promise.all(raws.map((r) => r.succeeded('count-drop')));
    for (const r of raws) await eventually(() => lastCount(r, 'count-drop') === 6, 'count 6');
    for (const r of raws.slice(0, 3)) r.drop();
    for (const r of raws.slice(3)) await eventually(() => lastCount(r, 'count-drop') === 3, 'count 3 after drops');
    const info = await apiJson(
      sdkFor(server).get({ path: '/channels/count-drop', params: { info: 'subscription_count' } }),
    );
    assert.deepEqual(info, { occupied: true, subscription_count: 3 });
  });

  it("triggerBatch with info answers one entry per event, in order", async ({ server, defer }) => {
    const raws = await rawPushers(server, defer, 3);
    for (const r of raws) r.subscribe('batch-a');
    raws[0].subscribe('batch-b');
    raws.forEach((r, i) => r.subscribeSigned(signer, 'presence-batch', `b${i % 2}`));
    await Promise.all(raws.map((r) => r.succeeded('presence-batch')));
    await Promise.all(raws.map((r) => r.succeeded('batch-a')));
    await raws[0].succeeded('batch-b');
    const body = await apiJson(
      serverSdk(server).triggerBatch([
        { channel: 'batch-a', name: 'e1', data: { n: 1 }, info: 'subscription_count' },
        { channel: 'batch-b', name: 'e2', data: { n: 2 }, info: 'subscription_count' },
        { channel: 'presence-batch', name: 'e3', data: { n: 3 }, info: 'user_count' },
        { channel: 'batch-a', name: 'e4', data: { n: 4 } },
      ]),
    );
    assert.deepEqual(body, {
      batch: [{ subscription_count: 3 }, { subscription_count: 1 }, { user_count: 2 }, {}],
    });
    for (const r of raws) {
      await r.event('e1', 'batch-a');
      await r.event('e4', 'batch-a');
      await r.event('e3', 'presence-batch');
    }
  });

  it('cache channel: pusher:cache_miss before any event, then the last event right after subscribing', async ({
    server,
    defer,
  }) => {
    const first = await rawPusher(server, defer);
    first.subscribe('cache-x');
    await first.succeeded('cache-x');
    const miss = await first.event('pusher:cache_miss', 'cache-x');
    assert.deepEqual(Object.keys(miss).sort().filter((k) => k !== 'data'), ['channel', 'event']);
    // The miss comes after subscription_succeeded (counts, enabled on this app, aside).
    const notCount = (m) => m.event !== 'pusher_internal:subscription_count';
    const events = first.frames.filter((m) => m.channel === 'cache-x' && notCount(m)).map((m) => m.event);
    assert.deepEqual(events, ['pusher_internal:subscription_succeeded', 'pusher:cache_miss']);

    // pusher-js sees the miss as a channel event.
    const js = await connectPusherJs(server, defer);
    const jsMiss = collect(js.subscribe('cache-x'), 'pusher:cache_miss');
    await jsMiss.waitFor(1);

    const sdk = serverSdk(server);
    await sdk.trigger('cache-x', 'price', { v: 1 });
    await sdk.trigger('cache-x', 'price', { v: 2, note: 'last one wins' });
    await eventually(() => first.count((m) => m.event === 'price') === 2, 'both live events');

    const late = await rawPushers(server, defer, 5);
    for (const r of late) r.subscribe('cache-x');
    for (const r of late) {
      await r.succeeded('cache-x');
      const onChannel = () => r.frames.filter((m) => m.channel === 'cache-x' && notCount(m));
      await eventually(() => onChannel().length >= 2, 'the cached event');
      const [ok, cached] = onChannel();
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
      assert.equal(cached.event, 'price', 'the cached event is sent as a normal channel event');
      assert.equal(typeof cached.data, 'string');
      assert.deepEqual(JSON.parse(cached.data), { v: 2, note: 'last one wins' });
    }
    await sleep(QUIET_MS);
    for (const r of late) {
      assert.equal(r.count((m) => m.event === 'pusher:cache_miss'), 0);
      assert.equal(r.count((m) => m.event === 'price'), 1, 'the cached event once');
    }
    assert.equal(first.count((m) => m.event === 'price'), 2, 'live subscribers are not sent it again');

    const info = await apiJson(sdk.get({ path: '/channels/cache-x', params: { info: 'cache' } }));
    assert.equal(info.occupied, true);
    assert.equal(info.cache.data, JSON.stringify({ v: 2, note: 'last one wins' }));
    assert.equal(typeof info.cache.ttl, 'number');
    assert.ok(info.cache.ttl > 0 && info.cache.ttl <= CACHE_TTL, `ttl ${info.cache.ttl}`);
  });

  it('private cache channel: whispers are not cached; server events are', async ({ server, defer }) => {
    const [a, b] = await rawPushers(server, defer, 2);
    for (const r of [a, b]) r.subscribeSigned(signer, 'private-cache-y');
    await Promise.all([a, b].map((r) => r.succeeded('private-cache-y')));
    a.send({ event: 'client-move', channel: 'private-cache-y', data: { x: 1 } });
    await b.event('client-move', 'private-cache-y');

    const c = await rawPusher(server, defer);
    c.subscribeSigned(signer, 'private-cache-y');
    await c.succeeded('private-cache-y');
    await c.event('pusher:cache_miss', 'private-cache-y');

    await serverSdk(server).trigger('private-cache-y', 'state', { s: 'on' });
    const d = await rawPusher(server, defer);
    d.subscribeSigned(signer, 'private-cache-y');
    await d.succeeded('private-cache-y');
    const f = await d.event('state', 'private-cache-y');
    assert.deepEqual(dataOf(f), { s: 'on' });
    const none = await apiJson(sdkFor(server).get({ path: '/channels/cache-never', params: { info: 'cache' } }));
    assert.equal(none.cache ?? null, null, 'no cached event: cache is null or absent');
  });

  it('the cached event expires after cache_ttl', async ({ server, defer }) => {
    const app = SHORT_CACHE;
    await sdkFor(server, app).trigger('cache-short', 'tick', { n: 1 });
    const early = await rawPusher(server, defer, { key: app.key });
    early.subscribe('cache-short');
    await early.succeeded('cache-short');
    await early.event('tick', 'cache-short');
    early.ws.close();
    await sleep(2_500);
    const late = await rawPusher(server, defer, { key: app.key });
    late.subscribe('cache-short');
    await late.succeeded('cache-short');
    await late.event('pusher:cache_miss', 'cache-short');
    assert.equal(late.count((m) => m.event === 'tick'), 0);
  });
});
