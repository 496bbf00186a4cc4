// pusher-js through a restart without downtime (`kill -USR2`, what `ringcast restart` and
// `systemctl reload` send): the old process closes its clients with 4200, pusher-js reconnects
// at once to the new process on the same port, resubscribes by itself, and receives what the
// server SDK publishes after the restart.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { collect, connectPusherJs, serverSdk, subscribe, useRingcast, within } from './helpers.mjs';

describe('restart without downtime', () => {
  const { it } = useRingcast({ workers: 2 });

  it('pusher-js is back within a second and gets what is published after', async ({
    server,
    defer,
  }) => {
    const client = await connectPusherJs(server, defer);
    const channel = await subscribe(client, 'orders');
    const events = collect(channel, 'shipped');
    const sdk = serverSdk(server);
    await sdk.trigger('orders', 'shipped', { n: 1 });
    await events.waitFor(1);
    const before = client.connection.socket_id;

    const states = [];
    client.connection.bind('state_change', ({ current }) => states.push(current));
    const back = new Promise((resolve) => {
      channel.bind('pusher:subscription_succeeded', () => resolve(Date.now()));
    });
    const sent = Date.now();
    process.kill(server.pid, 'SIGUSR2');
    const resubscribed = await within(back, 'pusher-js to resubscribe after the restart', 10_000);
    // The new process must be ready before the old one lets its clients go; pusher-js then
    // reconnects at once on 4200 (no back-off).
    assert.ok(resubscribed - sent < 5_000, `back after ${resubscribed - sent} ms`);
    assert.notEqual(client.connection.socket_id, before, 'a new connection, to the new process');
    assert.deepEqual(states.slice(0, 2), ['connecting', 'connected'], `states: ${states}`);
    assert.ok(!states.includes('unavailable'), `states: ${states}`);

    // A publish that reaches the old process on its kept-alive connection is refused, never
    // accepted and dropped: with 503 while it drains (and the connection closed), or, once it
    // has drained, by the end of that connection. Retried, as Laravel's queue does, it goes to
    // the new process.
    for (let attempt = 1; ; attempt++) {
      try {
        await sdk.trigger('orders', 'shipped', { n: 2 });
        break;
      } catch (err) {
        assert.ok(err.status === 503 || err.status === undefined, String(err));
        assert.ok(attempt < 3, 'refused three times');
      }
    }
    const got = await events.waitFor(2);
    assert.deepEqual(
      got.map((e) => e.n),
      [1, 2],
    );
  });
});
