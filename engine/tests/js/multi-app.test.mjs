// Several apps in one ringcast, configured by a TOML file: each app is its own namespace of
// channels, members and credentials; per-app settings (enabled, max_connections,
// allowed_origins) are enforced with the close codes of pusher-protocol.md 1.5 (4003, 4004,
// 4009). Two workers.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherServer from 'pusher';
import { sleep, useRingcast } from './helpers.mjs';
import {
  QUIET_MS,
  RawPusher,
  apiCall,
  apiJson,
  dataOf,
  defaultApp,
  eventually,
  rawPusher,
  rawPushers,
  sdkFor,
  writeConfig,
} from './support.mjs';

const A = defaultApp();
const B = { id: '500002', key: 'app-b-key', secret: 'app-b-secret', activity_timeout: 45 };
const NOWATCH = { id: '500006', key: 'nowatch-key', secret: 'nowatch-secret', watchlist_events: false };
const DISABLED = { id: '500003', key: 'disabled-key', secret: 'disabled-secret', enabled: false };
const LIMITED = { id: '500004', key: 'limited-key', secret: 'limited-secret', max_connections: 1 };
const ORIGINS = { id: '500005', key: 'origin-key', secret: 'origin-secret', allowed_origins: ['allowed.test'] };

const signerFor = (app) => new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });

/**
 * How a connection attempt ended: `{established}` once connection_established arrived, or
 * `{closeCode, errorCode}` when the server closed it (errorCode from a pusher:error, if any).
 */
async function attempt(server, defer, opts) {
  const c = new RawPusher(server, defer, opts);
  const first = await Promise.race([
    c.take((m) => m.event === 'pusher:connection_established', 'connection_established').catch(() => null),
    c.closed.then(() => null),
  ]);
  if (first) return { established: true, client: c };
  const close = await c.closed;
  const err = c.frames.find((m) => m.event === 'pusher:error');
  return {
    established: false,
    closeCode: close.code,
    errorCode: err ? dataOf(err).code : undefined,
    upgradeStatus: c.upgradeStatus,
    client: c,
  };
}

describe('several apps from one config file (2 workers)', () => {
  const file = writeConfig({ apps: [A, B, DISABLED, LIMITED, ORIGINS, NOWATCH] });
  const { it } = useRingcast({
    workers: 2,
    args: ['--config', file],
    env: { REVERB_APP_ID: undefined, REVERB_APP_KEY: undefined, REVERB_APP_SECRET: undefined },
  });

  it("an event to app A never reaches app B's subscribers of the same channel name", async ({
    server,
    defer,
  }) => {
    const as = await rawPushers(server, defer, 3, { key: A.key });
    const bs = await rawPushers(server, defer, 3, { key: B.key });
    for (const c of as) c.subscribeSigned(signerFor(A), 'private-news');
    for (const c of bs) c.subscribeSigned(signerFor(B), 'private-news');
    for (const c of [...as, ...bs]) c.subscribe('news');
    for (const c of as) c.subscribe('only-a');
    await Promise.all([...as, ...bs].map((c) => c.succeeded('news')));
    await Promise.all(as.map((c) => c.succeeded('only-a')));
    await Promise.all([...as, ...bs].map((c) => c.succeeded('private-news')));

    await sdkFor(server, A).trigger(['news', 'private-news'], 'for-a', { app: 'A' });
    await sdkFor(server, B).trigger('news', 'for-b', { app: 'B' });
    for (const c of as) {
      await c.event('for-a', 'news');
      await c.event('for-a', 'private-news');
    }
    for (const c of bs) await c.event('for-b', 'news');
    await sleep(QUIET_MS);
    for (const c of as) assert.equal(c.count((m) => m.event === 'for-b'), 0, "A's subscriber got B's event");
    for (const c of bs) assert.equal(c.count((m) => m.event === 'for-a'), 0, "B's subscriber got A's event");

    // The query API of each app sees only its own channels and connections.
    const bChannels = await apiJson(sdkFor(server, B).get({ path: '/channels' }));
    assert.deepEqual(Object.keys(bChannels.channels).sort(), ['news', 'private-news']);
    const bOnlyA = await apiJson(sdkFor(server, B).get({ path: '/channels/only-a' }));
    assert.deepEqual(bOnlyA, { occupied: false });
    const aOnlyA = await apiJson(sdkFor(server, A).get({ path: '/channels/only-a', params: { info: 'subscription_count' } }));
    assert.deepEqual(aOnlyA, { occupied: true, subscription_count: 3 });
    const bNews = await apiJson(sdkFor(server, B).get({ path: '/channels/news', params: { info: 'subscription_count' } }));
    assert.deepEqual(bNews, { occupied: true, subscription_count: 3 }, "A's subscribers are not counted for B");
  });

  it("presence members of app A are not members of app B's channel with the same name", async ({
    server,
    defer,
  }) => {
    const [a1, a2] = await rawPushers(server, defer, 2, { key: A.key });
    const [b1] = await rawPushers(server, defer, 1, { key: B.key });
    a1.subscribeSigned(signerFor(A), 'presence-room', 'alice');
    await a1.succeeded('presence-room');
    b1.subscribeSigned(signerFor(B), 'presence-room', 'bob');
    const bMembers = (await b1.succeeded('presence-room')).presence;
    assert.deepEqual(bMembers.ids, ['bob']);
    a2.subscribeSigned(signerFor(A), 'presence-room', 'carol');
    const aMembers = (await a2.succeeded('presence-room')).presence;
    assert.deepEqual([...aMembers.ids].sort(), ['alice', 'carol']);
    await sleep(QUIET_MS);
    assert.equal(b1.count((m) => m.event === 'pusher_internal:member_added'), 0);
    const users = await apiJson(sdkFor(server, B).get({ path: '/channels/presence-room/users' }));
    assert.deepEqual(users, { users: [{ id: 'bob' }] });
  });

  it('users, cached events and settings are per app', async ({ server, defer }) => {
    // The same user id signed in on A and on B.
    const signIn = async (app, id, watchlist) => {
      const c = await rawPusher(server, defer, { key: app.key });
      const data = signerFor(app).authenticateUser(c.socketId, watchlist ? { id, watchlist } : { id });
      c.send({ event: 'pusher:signin', data });
      await c.event('pusher:signin_success');
      c.subscribe(`#server-to-user-${id}`);
      await c.succeeded(`#server-to-user-${id}`);
      return c;
    };
    const aWatcher = await signIn(A, 'watcher', ['7']);
    const a7 = await signIn(A, '7');
    const b7 = await signIn(B, '7');
    const bWatcher = await signIn(B, 'watcher', ['nobody']);
    await sdkFor(server, A).sendToUser('7', 'for-a7', {});
    await a7.event('for-a7', '#server-to-user-7');
    await sdkFor(server, A).terminateUserConnections('7');
    await a7.closed;
    await aWatcher.take(
      (m) =>
        m.event === 'pusher_internal:watchlist_events' &&
        dataOf(m).events.some((e) => e.name === 'offline' && e.user_ids.includes('7')),
      "A's watcher told that A's user 7 went offline",
    );
    await b7.roundTrip();
    await sleep(QUIET_MS);
    assert.equal(b7.count((m) => m.event === 'for-a7'), 0, "A's sendToUser reached B's user 7");
    assert.equal(b7.closeInfo, undefined, "A's terminate closed B's user 7");
    assert.equal(
      bWatcher.count((m) => m.event === 'pusher_internal:watchlist_events' && JSON.stringify(dataOf(m)).includes('"7"')),
      0,
    );

    // A cached event of A is not B's.
    await sdkFor(server, A).trigger('cache-shared-name', 'state', { app: 'A' });
    const bCache = await rawPusher(server, defer, { key: B.key });
    bCache.subscribe('cache-shared-name');
    await bCache.succeeded('cache-shared-name');
    await bCache.event('pusher:cache_miss', 'cache-shared-name');

    // Per-app activity_timeout is what connection_established announces.
    assert.equal(bCache.activityTimeout, 45);
    assert.equal(aWatcher.activityTimeout, 30, 'the default activity_timeout is 30 (Reverb)');

    // subscription_count is off by default: no count events on B.
    await sleep(QUIET_MS);
    assert.equal(bCache.count((m) => m.event === 'pusher_internal:subscription_count'), 0);
  });

  it('watchlist_events = false: sign-in works, no watchlist events', async ({ server, defer }) => {
    const w = await rawPusher(server, defer, { key: NOWATCH.key });
    w.send({ event: 'pusher:signin', data: signerFor(NOWATCH).authenticateUser(w.socketId, { id: 'w', watchlist: ['x'] }) });
    await w.event('pusher:signin_success');
    const x = await rawPusher(server, defer, { key: NOWATCH.key });
    x.send({ event: 'pusher:signin', data: signerFor(NOWATCH).authenticateUser(x.socketId, { id: 'x' }) });
    await x.event('pusher:signin_success');
    x.drop();
    await sleep(QUIET_MS);
    assert.equal(w.count((m) => m.event === 'pusher_internal:watchlist_events'), 0);
  });

  it("app B's credentials cannot trigger on app A (401), nor authorise A's channels", async ({
    server,
    defer,
  }) => {
    const [a] = await rawPushers(server, defer, 1, { key: A.key });
    a.subscribe('guarded');
    await a.succeeded('guarded');
    const forged = new PusherServer({
      appId: A.id,
      key: B.key,
      secret: B.secret,
      host: server.host,
      port: String(server.port),
      useTLS: false,
    });
    const r = await apiCall(forged.trigger('guarded', 'evil', { x: 1 }));
    assert.equal(r.status, 401, `B's key and secret on A's path: ${r.status} ${r.text}`);
    const mixed = new PusherServer({
      appId: A.id,
      key: A.key,
      secret: B.secret,
      host: server.host,
      port: String(server.port),
      useTLS: false,
    });
    const r2 = await apiCall(mixed.trigger('guarded', 'evil', { x: 1 }));
    assert.equal(r2.status, 401, `A's key signed with B's secret: ${r2.status} ${r2.text}`);

    // A channel signature made with B's secret does not open A's private channel.
    const wrong = signerFor(B).authorizeChannel(a.socketId, 'private-guarded');
    a.subscribe('private-guarded', { auth: `${A.key}:${wrong.auth.split(':')[1]}` });
    const f = await a.take((m) => m.channel === 'private-guarded', 'the answer to the subscribe');
    assert.equal(f.event, 'pusher:subscription_error');
    assert.equal(dataOf(f).status, 401);
    await sleep(QUIET_MS);
    assert.equal(a.count((m) => m.event === 'evil'), 0);
  });

  it('a disabled app is refused with close code 4003', async ({ server, defer }) => {
    const r = await attempt(server, defer, { key: DISABLED.key });
    assert.equal(r.established, false, 'a disabled app must not get connection_established');
    assert.equal(r.closeCode, 4003);
    if (r.errorCode !== undefined) assert.equal(r.errorCode, 4003, 'pusher:error carries the same code');
    // Other apps are unaffected.
    const ok = await attempt(server, defer, { key: A.key });
    assert.equal(ok.established, true);
  });

  it('a disabled app cannot publish: the HTTP API answers 403', async ({ server }) => {
    // pusher-protocol.md 2.2: "403 app disabled/over quota".
    const api = await apiCall(sdkFor(server, DISABLED).trigger('c', 'e', {}));
    assert.equal(api.status, 403, `trigger on a disabled app: ${api.status} ${api.text}`);
    const get = await apiCall(sdkFor(server, DISABLED).get({ path: '/channels' }));
    assert.equal(get.status, 403, `GET /channels on a disabled app: ${get.status} ${get.text}`);
  });

  it('max_connections = 1: further connections get 4004 until the first one leaves', async ({ server, defer }) => {
    const first = await attempt(server, defer, { key: LIMITED.key });
    assert.equal(first.established, true);
    const others = await Promise.all([1, 2, 3].map(() => attempt(server, defer, { key: LIMITED.key })));
    for (const r of others) {
      assert.equal(r.established, false, 'over the limit');
      assert.equal(r.closeCode, 4004);
      if (r.errorCode !== undefined) assert.equal(r.errorCode, 4004);
    }
    await first.client.roundTrip();
    first.client.ws.close();
    await first.client.closed;
    await eventually(async () => (await attempt(server, defer, { key: LIMITED.key })).established, 'a slot to free up');
  });

  it('max_connections = 1 holds when eight connections race on both workers', async ({ server, defer }) => {
    const results = await Promise.all(Array.from({ length: 8 }, () => attempt(server, defer, { key: LIMITED.key })));
    const winners = results.filter((r) => r.established);
    assert.equal(winners.length, 1, `established: ${winners.length}`);
    for (const r of results.filter((x) => !x.established)) assert.equal(r.closeCode, 4004);
    winners[0].client.drop();
  });

  it('allowed_origins: Origin http://evil.test gets 4009, http://allowed.test connects', async ({
    server,
    defer,
  }) => {
    const evil = await attempt(server, defer, { key: ORIGINS.key, headers: { Origin: 'http://evil.test' } });
    assert.equal(evil.established, false);
    assert.equal(evil.closeCode, 4009, `close ${evil.closeCode}, upgrade status ${evil.upgradeStatus}`);
    const lookalike = await attempt(server, defer, {
      key: ORIGINS.key,
      headers: { Origin: 'http://allowed.test.evil.test' },
    });
    assert.equal(lookalike.established, false);
    assert.equal(lookalike.closeCode, 4009);
    const good = await attempt(server, defer, { key: ORIGINS.key, headers: { Origin: 'http://allowed.test' } });
    assert.equal(good.established, true);
    // Apps without allowed_origins accept any Origin.
    const other = await attempt(server, defer, { key: A.key, headers: { Origin: 'http://evil.test' } });
    assert.equal(other.established, true);
  });
});
