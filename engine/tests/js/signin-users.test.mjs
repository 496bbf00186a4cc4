// User sign-in (pusher-protocol.md 1.13), server-to-user events, watchlists (1.14) and
// terminating a user's connections, with pusher-js 8.6.0 signing in through a Laravel-style
// user-auth endpoint and the `pusher` SDK calling `sendToUser` / `terminateUserConnections`.
// Two workers; a user's tabs are spread over both.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import PusherClient from 'pusher-js';
import { useAuthEndpoint } from './auth-endpoint.mjs';
import { pusherJsOptions, serverSdk, sleep, useRingcast, within } from './helpers.mjs';
import { APP } from './server.mjs';
import { QUIET_MS, apiCall, dataOf, deferred, eventually, rawPusher } from './support.mjs';

/**
 * Works around a client-side timer leak: when a close code makes pusher-js give up ("refused",
 * 4001-4099), it calls close() on a faye-websocket that is already closed, which arms a 30 s
 * timer nobody clears and keeps the test process alive. Clearing it after the test is harmless.
 */
function clearCloseTimer(client, defer) {
  const socket = client.connection.connection?.transport?.socket;
  defer(() => {
    if (socket && socket._closeTimer) clearTimeout(socket._closeTimer);
  });
}

/** A pusher-js client that signed in as `user` (watching `watch`) and holds #server-to-user-<user>. */
async function signedIn(server, auth, defer, user, watch) {
  const client = new PusherClient(
    server.app.key,
    pusherJsOptions(server, {
      userAuthentication: { endpoint: auth.userAuthUrl(user, watch), transport: 'ajax' },
    }),
  );
  defer(() => client.disconnect());
  client.watchlistEvents = [];
  client.user.watchlist.bind('online', (e) => client.watchlistEvents.push(e));
  client.user.watchlist.bind('offline', (e) => client.watchlistEvents.push(e));
  client.signin();
  await eventually(
    () => client.user.serverToUserChannel?.subscribed,
    `user ${user} to sign in and subscribe #server-to-user-${user}`,
  );
  assert.equal(client.user.user_data.id, String(user));
  return client;
}

/** A raw client signed in with the SDK's `authenticateUser` for `userData`. */
async function rawSignedIn(server, defer, sdk, userData) {
  const c = await rawPusher(server, defer);
  const signed = sdk.authenticateUser(c.socketId, userData);
  c.send({ event: 'pusher:signin', data: signed });
  const f = await c.take(
    (m) => m.event === 'pusher:signin_success' || m.event === 'pusher:error',
    `signin of user ${userData.id}`,
  );
  assert.equal(f.event, 'pusher:signin_success', JSON.stringify(f));
  c.signedUserData = signed.user_data;
  c.successFrame = f;
  return c;
}

/** The watchlist events a pusher-js client got for `name`, flattened to user ids. */
const watched = (client, name) =>
  client.watchlistEvents.filter((e) => e.name === name).flatMap((e) => e.user_ids);

describe('sign-in, server-to-user events, watchlists and terminate (2 workers)', () => {
  const { it } = useRingcast({ workers: 2 });
  const auth = useAuthEndpoint({ app: APP });

  it('pusher:signin_success echoes user_data as a string; #server-to-user-<id> subscribes', async ({
    server,
    defer,
  }) => {
    const c = await rawSignedIn(server, defer, auth.sdk, { id: '31', user_info: { name: 'x' } });
    assert.equal(c.successFrame.channel, undefined, 'signin_success has no channel');
    assert.equal(typeof c.successFrame.data, 'string', 'data is a JSON string');
    const data = JSON.parse(c.successFrame.data);
    assert.deepEqual(Object.keys(data), ['user_data']);
    assert.equal(data.user_data, c.signedUserData, 'user_data is the exact string that was signed');
    c.subscribe('#server-to-user-31');
    await c.succeeded('#server-to-user-31');
    await serverSdk(server).sendToUser('31', 'hello', { a: 1 });
    const f = await c.event('hello', '#server-to-user-31');
    assert.deepEqual(dataOf(f), { a: 1 });
  });

  it('sendToUser reaches every tab of that user once and nobody else', async ({ server, defer }) => {
    const tabs = [];
    for (let i = 0; i < 4; i++) tabs.push(await signedIn(server, auth, defer, 5));
    const other = await signedIn(server, auth, defer, 6);
    const got = tabs.map(() => []);
    tabs.forEach((t, i) => t.user.bind('invoice-paid', (d) => got[i].push(d)));
    const otherGot = [];
    other.user.bind('invoice-paid', (d) => otherGot.push(d));

    const payload = { invoice: 77, amount: '5.00' };
    const r = await apiCall(serverSdk(server).sendToUser('5', 'invoice-paid', payload));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {});
    await eventually(() => got.every((g) => g.length >= 1), 'every tab of user 5 to get the event');
    await sleep(QUIET_MS);
    for (const g of got) assert.deepEqual(g, [payload]);
    assert.deepEqual(otherGot, []);
  });

  it('a forged sign-in is refused and #server-to-user-<id> stays closed to other sockets', async ({
    server,
    defer,
  }) => {
    const c = await rawPusher(server, defer);
    const userData = JSON.stringify({ id: '32' });
    c.send({ event: 'pusher:signin', data: { auth: `${APP.key}:${'a'.repeat(64)}`, user_data: userData } });
    const f = await c.take(
      (m) => m.event === 'pusher:signin_success' || m.event === 'pusher:error',
      'the answer to a forged signin',
    );
    assert.equal(f.event, 'pusher:error', JSON.stringify(f));
    assert.equal(typeof dataOf(f).message, 'string');

    // A socket that is not signed in as 32 cannot listen to user 32's events.
    const snoop = await rawPusher(server, defer);
    snoop.subscribe('#server-to-user-32');
    const victim = await rawSignedIn(server, defer, auth.sdk, { id: '32' });
    victim.subscribe('#server-to-user-32');
    await victim.succeeded('#server-to-user-32');
    await serverSdk(server).sendToUser('32', 'secret', { s: 1 });
    await victim.event('secret', '#server-to-user-32');
    await snoop.roundTrip();
    await sleep(QUIET_MS);
    assert.equal(
      snoop.count((m) => m.event === 'pusher_internal:subscription_succeeded'),
      0,
      'no subscription_succeeded for someone else’s user channel',
    );
    assert.equal(snoop.count((m) => m.event === 'secret'), 0, 'no event for someone else');
    assert.equal(c.count((m) => m.event === 'secret'), 0);
  });

  it('watchlist: online when a watched user signs in, offline after its last tab leaves', async ({
    server,
    defer,
  }) => {
    const watcher = await signedIn(server, auth, defer, 41, ['42']);
    await sleep(QUIET_MS);
    // At sign-in the server may report the current status of the watched ids (42 is offline);
    // what follows must be the changes only.
    assert.deepEqual(watched(watcher, 'online'), [], 'user 42 is not online yet');
    watcher.watchlistEvents.length = 0;

    const tab1 = await signedIn(server, auth, defer, 42);
    await eventually(() => watched(watcher, 'online').includes('42'), "'online' for user 42");
    const tab2 = await signedIn(server, auth, defer, 42);
    await tab2.user.signinDonePromise;

    // Someone who starts watching while 42 is online learns it at sign-in.
    const late = await signedIn(server, auth, defer, 43, ['42', '44']);
    await eventually(() => watched(late, 'online').includes('42'), "'online' for 42 sent at sign-in");
    assert.ok(!watched(late, 'online').includes('44'), 'user 44 is not online');

    tab1.disconnect();
    await sleep(QUIET_MS);
    assert.deepEqual(watched(watcher, 'offline'), [], 'user 42 still has a tab');
    tab2.disconnect();
    await eventually(() => watched(watcher, 'offline').includes('42'), "'offline' for user 42");
    await eventually(() => watched(late, 'offline').includes('42'), "'offline' for user 42 (late watcher)");
    await sleep(QUIET_MS);
    assert.deepEqual(watched(watcher, 'online'), ['42'], "one 'online' although 42 had two tabs");
    assert.deepEqual(watched(watcher, 'offline'), ['42']);
  });

  it('watchlist events on the wire: pusher_internal:watchlist_events without a channel', async ({
    server,
    defer,
  }) => {
    const w = await rawSignedIn(server, defer, auth.sdk, { id: '51', watchlist: ['52'] });
    const u = await rawSignedIn(server, defer, auth.sdk, { id: '52' });
    const isOnline = (m) =>
      m.event === 'pusher_internal:watchlist_events' &&
      (dataOf(m).events || []).some((e) => e.name === 'online' && e.user_ids.includes('52'));
    const f = await w.take(isOnline, "watchlist 'online' for 52");
    assert.equal(f.channel, undefined);
    assert.equal(typeof f.data, 'string', 'data is a JSON string');
    for (const e of JSON.parse(f.data).events) {
      assert.ok(['online', 'offline'].includes(e.name));
      assert.ok(Array.isArray(e.user_ids) && e.user_ids.length > 0, 'empty groups are left out');
      for (const id of e.user_ids) assert.equal(typeof id, 'string');
    }
    u.drop();
    await w.take(
      (m) =>
        m.event === 'pusher_internal:watchlist_events' &&
        dataOf(m).events.some((e) => e.name === 'offline' && e.user_ids.includes('52')),
      "watchlist 'offline' for 52",
    );
  });

  it('terminateUserConnections closes every signed-in connection of that user, and only those', async ({
    server,
    defer,
  }) => {
    const sdk = auth.sdk;
    const js = await signedIn(server, auth, defer, 8);
    clearCloseTimer(js, defer);
    const raws = [];
    for (let i = 0; i < 4; i++) raws.push(await rawSignedIn(server, defer, sdk, { id: '8' }));
    // Same id, but only as a presence member, not signed in: not terminated (protocol 1.13).
    const presenceOnly = await rawPusher(server, defer);
    presenceOnly.subscribeSigned(sdk, 'presence-term', 8);
    await presenceOnly.succeeded('presence-term');
    const otherUser = await rawSignedIn(server, defer, sdk, { id: '80' });

    const jsGone = deferred();
    js.connection.bind('state_change', ({ current }) => {
      if (current === 'disconnected' || current === 'failed') jsGone.resolve(current);
    });
    const r = await apiCall(serverSdk(server).terminateUserConnections('8'));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {});

    const closes = await within(Promise.all(raws.map((c) => c.closed)), 'the signed-in raw sockets to close');
    for (const c of closes) assert.equal(c.code, 4009, `close code ${c.code} ${c.reason}`);
    await within(jsGone.promise, 'pusher-js to leave the connected state');
    await sleep(QUIET_MS);
    assert.notEqual(js.connection.state, 'connected', 'pusher-js does not reconnect after 4009');
    await presenceOnly.roundTrip();
    await otherUser.roundTrip();
  });
  it('signing in again as the same user is harmless; as another user it is refused with 4009', async ({
    server,
    defer,
  }) => {
    const sdk = auth.sdk;
    const watcher = await rawSignedIn(server, defer, sdk, { id: '61', watchlist: ['62'] });
    const c = await rawSignedIn(server, defer, sdk, { id: '62' });
    const isOnline62 = (m) =>
      m.event === 'pusher_internal:watchlist_events' &&
      dataOf(m).events.some((e) => e.name === 'online' && e.user_ids.includes('62'));
    await watcher.take(isOnline62, "'online' for 62");
    c.send({ event: 'pusher:signin', data: sdk.authenticateUser(c.socketId, { id: '62' }) });
    await c.event('pusher:signin_success');
    c.send({ event: 'pusher:signin', data: sdk.authenticateUser(c.socketId, { id: '63' }) });
    const e = await c.event('pusher:error');
    assert.equal(dataOf(e).code, 4009);
    await sleep(QUIET_MS);
    assert.equal(watcher.count(isOnline62), 1, "a repeated sign-in sends no second 'online'");
    // Still signed in as 62: user 62's events arrive, user 63's do not.
    c.subscribe('#server-to-user-62');
    await c.succeeded('#server-to-user-62');
    await serverSdk(server).sendToUser('62', 'still-62', {});
    await serverSdk(server).sendToUser('63', 'now-63', {});
    await c.event('still-62', '#server-to-user-62');
    await sleep(QUIET_MS);
    assert.equal(c.count((m) => m.event === 'now-63'), 0);
  });

  it('a watchlist over 100 ids: sign-in succeeds, then pusher:error 4302', async ({ server, defer }) => {
    const ids = Array.from({ length: 120 }, (_, i) => `w${i}`);
    const c = await rawSignedIn(server, defer, auth.sdk, { id: '70', watchlist: ids });
    const e = await c.event('pusher:error');
    assert.equal(dataOf(e).code, 4302);
    // The first 100 are watched: w5 coming online is reported.
    await rawSignedIn(server, defer, auth.sdk, { id: 'w5' });
    await c.take(
      (m) =>
        m.event === 'pusher_internal:watchlist_events' &&
        dataOf(m).events.some((ev) => ev.name === 'online' && ev.user_ids.includes('w5')),
      "'online' for w5",
    );
  });

  it('sendToUser to a user with no connection answers {}', async ({ server }) => {
    const r = await apiCall(serverSdk(server).sendToUser('nobody-here', 'evt', { a: 1 }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {});
    const t = await apiCall(serverSdk(server).terminateUserConnections('nobody-here'));
    assert.equal(t.status, 200);
  });
});
