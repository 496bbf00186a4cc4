// Laravel Echo 2.5.0 over pusher-js, configured the two ways a Laravel app configures it for a
// self-hosted server: `broadcaster: 'reverb'` and `broadcaster: 'pusher'` with wsHost/wsPort.
// Events are published with the server SDK the way Laravel's broadcaster publishes them: the event
// name is the PHP class name (App\Events\OrderShipped) unless the event sets broadcastAs.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { serverSdk, useRingcast, within } from './helpers.mjs';

function echoOptions(server, broadcaster) {
  const common = {
    Pusher,
    key: server.app.key,
    wsHost: server.host,
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    authEndpoint: `${server.httpUrl}/broadcasting/auth`,
  };
  return broadcaster === 'pusher' ? { ...common, broadcaster, cluster: 'mt1' } : { ...common, broadcaster };
}

/** An Echo instance whose channel `name` is subscribed; disconnected by `defer`. */
async function echoOn(server, defer, broadcaster, name, bindListeners) {
  const echo = new Echo(echoOptions(server, broadcaster));
  defer(() => echo.disconnect());
  const channel = echo.channel(name);
  bindListeners(channel);
  await within(
    new Promise((resolve, reject) => {
      channel.subscribed(resolve);
      channel.error((err) => reject(new Error(`Echo subscription error: ${JSON.stringify(err)}`)));
    }),
    `Echo (${broadcaster}) to subscribe to ${name}`,
  );
  return echo;
}

/** A promise for the first payload `listen(event)` hands over, and the listener to bind. */
function firstPayload(what) {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { listener: (payload) => resolve(payload), received: within(promise, what) };
}

describe('laravel-echo', () => {
  const { it } = useRingcast({ workers: 1 });

  for (const broadcaster of ['reverb', 'pusher']) {
    it(`broadcaster '${broadcaster}': listen('.OrderShipped') receives the raw event name`, async ({
      server,
      defer,
    }) => {
      const dotted = firstPayload('.OrderShipped');
      await echoOn(server, defer, broadcaster, 'orders', (ch) => ch.listen('.OrderShipped', dotted.listener));
      await serverSdk(server).trigger('orders', 'OrderShipped', { order: { id: 17, total: '9.99' } });
      assert.deepEqual(await dotted.received, { order: { id: 17, total: '9.99' } });
    });

    it(`broadcaster '${broadcaster}': listen('OrderShipped') receives App\\Events\\OrderShipped`, async ({
      server,
      defer,
    }) => {
      const namespaced = firstPayload('App\\Events\\OrderShipped');
      await echoOn(server, defer, broadcaster, 'orders', (ch) =>
        ch.listen('OrderShipped', namespaced.listener),
      );
      await serverSdk(server).trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 18 }, socket: null });
      assert.deepEqual(await namespaced.received, { order: { id: 18 }, socket: null });
    });
  }

  it("broadcast()->toOthers(): the socket id from Echo.socketId() is left out", async ({
    server,
    defer,
  }) => {
    const senderGot = [];
    const sender = await echoOn(server, defer, 'reverb', 'chat', (ch) =>
      ch.listen('.MessagePosted', (p) => senderGot.push(p)),
    );
    const otherGot = firstPayload('MessagePosted on the other Echo');
    await echoOn(server, defer, 'reverb', 'chat', (ch) => ch.listen('.MessagePosted', otherGot.listener));
    const socketId = sender.socketId();
    assert.match(socketId, /^\d+\.\d+$/);

    const sdk = serverSdk(server);
    await sdk.trigger('chat', 'MessagePosted', { body: 'hi' }, { socket_id: socketId });
    assert.deepEqual(await otherGot.received, { body: 'hi' });

    // The sender sees a later event and, because per-connection order holds, not the first one.
    const senderLater = new Promise((resolve) => {
      const timer = setInterval(() => {
        if (senderGot.length > 0) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    await sdk.trigger('chat', 'MessagePosted', { body: 'everyone' });
    await within(senderLater, 'the sender to get the second event');
    assert.deepEqual(senderGot, [{ body: 'everyone' }]);
  });
});
