// Laravel Echo 2.5.0 (broadcaster 'reverb') on private, presence and encrypted channels, with a
// Laravel-style auth endpoint (auth-endpoint.mjs) signing through the `pusher` SDK, against a
// ringcast with two workers. Several clients per test, so both workers serve some of them and
// every delivery crosses workers.
//
// Wire shapes checked with a raw socket follow pusher-protocol.md 1.7 (subscription_error
// carrying {type, error, status}), 1.9 (presence), 1.10 (whispers) and 1.12 (encrypted data).

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { newMasterKey, useAuthEndpoint, userInfo } from './auth-endpoint.mjs';
import { pusherJsOptions, serverSdk, sleep, useRingcast, within } from './helpers.mjs';
import { APP } from './server.mjs';
import { QUIET_MS, dataOf, deferred, eventually, rawPusher } from './support.mjs';

const MASTER_KEY = newMasterKey();

/** A connected Echo ('reverb' broadcaster) logged in to the auth endpoint as `user`. */
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

/** Resolves when an Echo channel is subscribed; rejects on its `.error()`. */
function whenSubscribed(channel, what) {
  const p = within(
    new Promise((resolve, reject) => {
      channel.subscribed(resolve);
      channel.error((err) => reject(new Error(`${what}: subscription error ${JSON.stringify(err)}`)));
    }),
    `${what} to be subscribed`,
  );
  // Awaited later by the test; a rejection before then must not count as unhandled.
  p.catch(() => {});
  return p;
}

/** Records the arguments of every call, and lets a test wait for a number of calls. */
function recorder(what) {
  const calls = [];
  let waiters = [];
  const fn = (...args) => {
    calls.push(args);
    waiters = waiters.filter((w) => (calls.length >= w.n ? (w.resolve(), false) : true));
  };
  fn.calls = calls;
  fn.waitFor = (n) =>
    calls.length >= n
      ? Promise.resolve()
      : within(new Promise((resolve) => waiters.push({ n, resolve })), `${n} call(s) of ${what} (got ${calls.length})`);
  return fn;
}

describe('laravel-echo on private, presence and encrypted channels (2 workers)', () => {
  const { it } = useRingcast({ workers: 2 });
  const auth = useAuthEndpoint({ app: APP, encryptionMasterKeyBase64: MASTER_KEY });

  it("Echo.private('orders.1').listen('.Shipped') delivers one event to every client", async ({ server, defer }) => {
    const clients = [];
    for (let i = 1; i <= 6; i++) {
      const echo = newEcho(server, auth, defer, i);
      const got = recorder(`client ${i} .Shipped`);
      const ch = echo.private('orders.1').listen('.Shipped', got);
      clients.push({ echo, got, ready: whenSubscribed(ch, `client ${i} private-orders.1`) });
    }
    await Promise.all(clients.map((c) => c.ready));

    // Every subscription went through the auth endpoint with the client's own socket id.
    for (const { echo } of clients) {
      assert.ok(
        auth.requests.some((r) => r.channel === 'private-orders.1' && r.socketId === echo.socketId()),
        `no auth request for socket ${echo.socketId()}`,
      );
    }

    const payload = { order: { id: 1, total: '12.50' }, note: 'ünïcødé "quoted"' };
    await serverSdk(server).trigger('private-orders.1', 'Shipped', payload);
    await Promise.all(clients.map((c) => c.got.waitFor(1)));
    await sleep(QUIET_MS);
    for (const c of clients) {
      assert.equal(c.got.calls.length, 1, 'each client gets the event exactly once');
      assert.deepEqual(c.got.calls[0][0], payload);
    }
  });

  it("Echo.join('room'): here, joining and leaving each fire once per user", async ({ server, defer }) => {
    const openTab = (u) => {
      const echo = newEcho(server, auth, defer, u);
      const here = recorder(`user ${u} here`);
      const joining = recorder(`user ${u} joining`);
      const leaving = recorder(`user ${u} leaving`);
      const ch = echo.join('room').here(here).joining(joining).leaving(leaving);
      return { u, echo, here, joining, leaving, ready: whenSubscribed(ch, `user ${u} presence-room`) };
    };
    const byId = (a, b) => Number(a.id) - Number(b.id);
    /** Everyone a tab has seen: its here() list plus those joining() reported. */
    const seenBy = (t) => [...(t.here.calls[0]?.[0] ?? []).map((m) => m.id), ...t.joining.calls.map((c) => c[0].id)];

    // User 1 first, alone.
    const first = openTab(1);
    await first.ready;
    await first.here.waitFor(1);
    assert.deepEqual(first.here.calls[0][0], [userInfo(1)]);

    // Then users 2, 3 and 4 at once (spread over both workers).
    const tabs = [first, ...[2, 3, 4].map(openTab)];
    await Promise.all(tabs.map((t) => t.ready));
    await Promise.all(tabs.map((t) => t.here.waitFor(1)));
    await first.joining.waitFor(3);
    assert.deepEqual(first.joining.calls.map((c) => c[0]).sort(byId), [userInfo(2), userInfo(3), userInfo(4)]);
    for (const t of tabs) {
      await eventually(() => seenBy(t).length >= 4, `user ${t.u} to know all four members`);
    }

    // User 2 leaves the channel, user 3 closes the tab.
    tabs[1].echo.leave('room');
    tabs[2].echo.disconnect();
    await first.leaving.waitFor(2);
    await tabs[3].leaving.waitFor(2);
    await sleep(QUIET_MS);
    for (const t of [first, tabs[3]]) {
      assert.deepEqual(t.leaving.calls.map((c) => c[0]).sort(byId), [userInfo(2), userInfo(3)]);
      // Every user is seen exactly once: in here() or in one joining().
      assert.deepEqual(seenBy(t).sort(), ['1', '2', '3', '4'], `user ${t.u} saw members ${seenBy(t)}`);
    }
    assert.equal(first.joining.calls.length, 3);
  });

  it('whisper on a private channel reaches the others once and is not echoed', async ({ server, defer }) => {
    const tabs = [1, 2, 3, 4, 5].map((u) => {
      const echo = newEcho(server, auth, defer, u);
      const got = recorder(`user ${u} typing`);
      const ch = echo.private('chat.1').listenForWhisper('typing', got);
      return { echo, got, ch, ready: whenSubscribed(ch, `user ${u} private-chat.1`) };
    });
    await Promise.all(tabs.map((t) => t.ready));
    tabs[0].ch.whisper('typing', { name: 'Ann', typing: true });
    await Promise.all(tabs.slice(1).map((t) => t.got.waitFor(1)));
    await sleep(QUIET_MS);
    assert.equal(tabs[0].got.calls.length, 0, 'the whisperer does not get its own whisper');
    for (const t of tabs.slice(1)) {
      assert.equal(t.got.calls.length, 1);
      assert.deepEqual(t.got.calls[0][0], { name: 'Ann', typing: true });
    }
  });

  it('whisper on a presence channel carries the sender user_id', async ({ server, defer }) => {
    const tabs = [11, 12, 13, 14].map((u) => {
      const echo = newEcho(server, auth, defer, u);
      const got = recorder(`user ${u} typing`);
      const ch = echo.join('lobby').listenForWhisper('typing', got);
      return { u, echo, got, ch, ready: whenSubscribed(ch, `user ${u} presence-lobby`) };
    });
    await Promise.all(tabs.map((t) => t.ready));
    tabs[2].ch.whisper('typing', { typing: true });
    const others = tabs.filter((t) => t.u !== 13);
    await Promise.all(others.map((t) => t.got.waitFor(1)));
    await sleep(QUIET_MS);
    assert.equal(tabs[2].got.calls.length, 0, 'not echoed to the sender');
    for (const t of others) {
      assert.equal(t.got.calls.length, 1);
      const [data, metadata] = t.got.calls[0];
      assert.deepEqual(data, { typing: true });
      assert.equal(metadata?.user_id, '13', 'user_id comes from the sender channel_data');
    }
  });

  it('presence whisper on the wire: top-level user_id, channel, client- event name', async ({ server, defer }) => {
    const sdk = auth.sdk;
    const a = await rawPusher(server, defer);
    const b = await rawPusher(server, defer);
    a.subscribeSigned(sdk, 'presence-wire', 21);
    await a.succeeded('presence-wire');
    b.subscribeSigned(sdk, 'presence-wire', 22);
    await b.succeeded('presence-wire');
    // A client cannot choose its user_id: a forged one in the frame is replaced.
    b.send({ event: 'client-typing', channel: 'presence-wire', data: { typing: true }, user_id: '999' });
    const f = await a.event('client-typing', 'presence-wire');
    assert.equal(f.user_id, '22');
    assert.deepEqual(dataOf(f), { typing: true });
    await sleep(QUIET_MS);
    assert.equal(b.count((m) => m.event === 'client-typing'), 0, 'not echoed to the sender');
  });

  it("Echo.encryptedPrivate('secret') decrypts what the SDK encrypted; the wire carries only ciphertext", async ({
    server,
    defer,
  }) => {
    const tabs = [1, 2, 3, 4].map((u) => {
      const echo = newEcho(server, auth, defer, u);
      const got = recorder(`user ${u} .Msg`);
      const ch = echo.encryptedPrivate('secret').listen('.Msg', got);
      return { got, ready: whenSubscribed(ch, `user ${u} private-encrypted-secret`) };
    });
    const raw = await rawPusher(server, defer);
    const a = auth.sdk.authorizeChannel(raw.socketId, 'private-encrypted-secret');
    assert.ok(a.shared_secret, 'the SDK returns a shared_secret for encrypted channels');
    raw.subscribe('private-encrypted-secret', { auth: a.auth });
    await raw.succeeded('private-encrypted-secret');
    await Promise.all(tabs.map((t) => t.ready));

    const payload = { text: 'attack at dawn', n: 7, nested: { ok: true } };
    const sdk = serverSdk(server, { encryptionMasterKeyBase64: MASTER_KEY });
    await sdk.trigger('private-encrypted-secret', 'Msg', payload);
    await Promise.all(tabs.map((t) => t.got.waitFor(1)));
    await sleep(QUIET_MS);
    for (const t of tabs) {
      assert.equal(t.got.calls.length, 1);
      assert.deepEqual(t.got.calls[0][0], payload);
    }
    const f = await raw.event('Msg', 'private-encrypted-secret');
    assert.equal(typeof f.data, 'string', 'channel event data is a JSON string');
    const wire = JSON.parse(f.data);
    assert.deepEqual(Object.keys(wire).sort(), ['ciphertext', 'nonce']);
    assert.ok(!f.data.includes('attack'), 'the server relays ciphertext only');
  });

  it("Echo.private('App.Models.User.1').notification() receives BroadcastNotificationCreated", async ({
    server,
    defer,
  }) => {
    const echo = newEcho(server, auth, defer, 1);
    const got = recorder('notification');
    const ch = echo.private('App.Models.User.1').notification(got);
    await whenSubscribed(ch, 'private-App.Models.User.1');
    const other = newEcho(server, auth, defer, 2);
    const otherGot = recorder('other user notification');
    await whenSubscribed(other.private('App.Models.User.2').notification(otherGot), 'private-App.Models.User.2');

    // What Laravel's BroadcastChannel posts for a database/broadcast notification.
    const notification = {
      id: '9b2c4f5e-8a7d-4b1e-9c3f-2d6e7a8b9c0d',
      type: 'App\\Notifications\\InvoicePaid',
      invoice_id: 42,
      amount: '99.00',
    };
    await serverSdk(server).trigger(
      'private-App.Models.User.1',
      'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated',
      notification,
    );
    await got.waitFor(1);
    await sleep(QUIET_MS);
    assert.equal(got.calls.length, 1);
    assert.deepEqual(got.calls[0][0], notification);
    assert.equal(otherGot.calls.length, 0, "another user's channel gets nothing");
  });

  it('.error() fires when the auth endpoint refuses the channel (403)', async ({ server, defer }) => {
    const echo = newEcho(server, auth, defer, 1);
    const err = deferred();
    const subscribed = recorder('subscribed');
    echo.private('forbidden.1').subscribed(subscribed).error(err.resolve);
    const e = await within(err.promise, 'Echo .error() on private-forbidden.1');
    assert.equal(e.type, 'AuthError');
    assert.equal(e.status, 403);
    await sleep(QUIET_MS);
    assert.equal(subscribed.calls.length, 0);
    assert.ok(auth.requests.some((r) => r.channel === 'private-forbidden.1' && r.refused));
  });

  it('a forged auth string from pusher-js gets pusher:subscription_error with status 401', async ({
    server,
    defer,
  }) => {
    const client = new Pusher(
      server.app.key,
      pusherJsOptions(server, {
        channelAuthorization: {
          customHandler: (_params, callback) => callback(null, { auth: `${server.app.key}:${'0'.repeat(64)}` }),
        },
      }),
    );
    defer(() => client.disconnect());
    const channel = client.subscribe('private-forged');
    const err = deferred();
    channel.bind('pusher:subscription_error', err.resolve);
    channel.bind('pusher:subscription_succeeded', () => err.reject(new Error('forged auth was accepted')));
    const e = await within(err.promise, 'pusher:subscription_error on private-forged');
    assert.equal(e.status, 401);
    assert.equal(e.type, 'AuthError');
    assert.equal(typeof e.error, 'string');
    assert.equal(client.connection.state, 'connected', 'a refused subscription keeps the connection');
  });

  it('forged auth on the wire: subscription_error frames, connection stays usable', async ({ server, defer }) => {
    const sdk = auth.sdk;
    const c = await rawPusher(server, defer);
    const good = sdk.authorizeChannel(c.socketId, 'private-wire');
    const otherSocket = sdk.authorizeChannel('1234.5678', 'private-wire');
    const asUser1 = sdk.authorizeChannel(c.socketId, 'presence-wire-forged', { user_id: '1', user_info: {} });
    const cases = [
      ['private-wire', { auth: `${server.app.key}:${'f'.repeat(64)}` }, 'bad signature'],
      ['private-wire', { auth: `not-the-key:${good.auth.split(':')[1]}` }, 'wrong key'],
      ['private-wire', { auth: otherSocket.auth }, "another socket's signature"],
      ['private-wire', {}, 'no auth at all'],
      ['private-wire-other', { auth: good.auth }, "another channel's signature"],
      [
        'presence-wire-forged',
        { auth: asUser1.auth, channel_data: JSON.stringify({ user_id: '2', user_info: {} }) },
        'channel_data changed after signing',
      ],
    ];
    for (const [channel, fields, what] of cases) {
      c.subscribe(channel, fields);
      const f = await c.take(
        (m) => m.channel === channel && /subscription_(error|succeeded)/.test(m.event),
        `the answer to a subscribe with ${what}`,
      );
      assert.equal(f.event, 'pusher:subscription_error', `${what}: ${JSON.stringify(f)}`);
      assert.equal(typeof f.data, 'string', `${what}: data is a JSON string`);
      const d = JSON.parse(f.data);
      assert.equal(d.type, 'AuthError', what);
      assert.equal(d.status, 401, what);
      assert.equal(typeof d.error, 'string', what);
      assert.ok(!d.error.includes(server.app.secret), 'the error never shows the secret');
    }
    await c.roundTrip();
    c.subscribe('private-wire', { auth: good.auth });
    await c.succeeded('private-wire');
  });
  it('malformed subscriptions are refused and the connection stays usable', async ({ server, defer }) => {
    const sdk = auth.sdk;
    const c = await rawPusher(server, defer);
    const long = `x${'a'.repeat(164)}`; // 165 characters: over Pusher's 164
    const noData = sdk.authorizeChannel(c.socketId, 'presence-nodata');
    const badData = `${server.app.key}:${'0'.repeat(64)}`;
    const cases = [
      ['presence-nodata', { auth: noData.auth }, 'presence without channel_data'],
      ['presence-baddata', { auth: badData, channel_data: 'not json' }, 'channel_data that is not JSON'],
      ['presence-nouser', sdk.authorizeChannel(c.socketId, 'presence-nouser', { user_info: {} }), 'channel_data without user_id'],
      [long, {}, 'a 165-character channel name'],
      ['bad channel!', {}, 'a channel name with a space and !'],
      ['#not-server-to-user', {}, 'a # name that is not #server-to-user-'],
    ];
    for (const [channel, fields, what] of cases) {
      c.subscribe(channel, fields);
      const f = await c.take(
        (m) => m.channel === channel || m.event === 'pusher:error',
        `the answer to a subscribe with ${what}`,
      );
      assert.ok(
        f.event === 'pusher:subscription_error' || f.event === 'pusher:error',
        `${what}: ${JSON.stringify(f).slice(0, 300)}`,
      );
      await c.roundTrip();
    }
    await sleep(QUIET_MS);
    assert.equal(c.count((m) => m.event === 'pusher_internal:subscription_succeeded'), 0);
    c.subscribe('still-fine');
    await c.succeeded('still-fine');
  });

  it("toOthers() on a presence channel: Echo.socketId() is left out on whichever worker it is", async ({
    server,
    defer,
  }) => {
    const tabs = [31, 32, 33, 34, 35].map((u) => {
      const echo = newEcho(server, auth, defer, u);
      const got = recorder(`user ${u} .Said`);
      const ch = echo.join('talk').listen('.Said', got);
      return { echo, got, ready: whenSubscribed(ch, `user ${u} presence-talk`) };
    });
    await Promise.all(tabs.map((t) => t.ready));
    await serverSdk(server).trigger('presence-talk', 'Said', { text: 'hi' }, { socket_id: tabs[0].echo.socketId() });
    await Promise.all(tabs.slice(1).map((t) => t.got.waitFor(1)));
    await sleep(QUIET_MS);
    assert.equal(tabs[0].got.calls.length, 0, 'the sender socket is excluded');
    for (const t of tabs.slice(1)) assert.equal(t.got.calls.length, 1);
  });
});
