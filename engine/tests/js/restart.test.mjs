// pusher-js through a restart without downtime (`kill -USR2`, what `ringcast restart` and
// `systemctl reload` send): the old process closes its clients with 4200, pusher-js reconnects
// at once to the new process on the same port (no `unavailable` state, no back-off),
// resubscribes by itself, and receives what the server SDK publishes after the restart. The
// test prints how long pusher-js was away; it fails only if it never comes back.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { collect, connectPusherJs, serverSdk, subscribe, useRingcast, within } from './helpers.mjs';

/** How long pusher-js has to come back before the test fails: far longer than it takes. */
const BACK_WITHIN_MS = 15_000;

/**
 * The error codes of a request that went out on the old process's kept-alive connection
 * after that process let it go: the connection was reset or hung up (Node's `socket hang up`
 * is ECONNRESET), or it was closed while the request was being written. A refused connection
 * (ECONNREFUSED) is not among them: something always listens on the port.
 */
const DROPPED_KEPT_ALIVE = new Set(['ECONNRESET', 'EPIPE']);

describe('restart without downtime', () => {
  const { it } = useRingcast({ workers: 2 });

  it('pusher-js reconnects at once after 4200 and gets what is published after', async ({
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
    // The new process must be ready before the old one lets its clients go; pusher-js then
    // reconnects at once on 4200 (no back-off).
    const resubscribed = await within(back, 'pusher-js to resubscribe after the restart', BACK_WITHIN_MS);
    console.log(`pusher-js resubscribed ${resubscribed - sent} ms after SIGUSR2 (the new process's start included)`);
    assert.notEqual(client.connection.socket_id, before, 'a new connection, to the new process');
    assert.deepEqual(states.slice(0, 2), ['connecting', 'connected'], `states: ${states}`);
    assert.ok(!states.includes('unavailable'), `states: ${states}`);

    // A publish that reaches the old process on its kept-alive connection is refused, never
    // accepted and dropped: with 503 while it drains (and the connection closed), or, once it
    // has drained, by the end of that connection (reset or hung up). Never by a refused
    // connection. Retried, as Laravel's queue does, it goes to the new process.
    const refusals = [];
    for (let attempt = 1; ; attempt++) {
      try {
        await sdk.trigger('orders', 'shipped', { n: 2 });
        break;
      } catch (err) {
        const code = err.error?.code;
        refusals.push(err.status ?? code);
        assert.ok(
          err.status === 503 || (err.status === undefined && DROPPED_KEPT_ALIVE.has(code)),
          `publish ${attempt} failed with status ${err.status}, code ${code}: ${err.error?.message ?? err.message}`,
        );
        assert.ok(attempt < 3, `refused three times: ${refusals}`);
      }
    }
    console.log(`the publish after the restart was refused first by: ${refusals.length ? refusals.join(', ') : 'nothing'}`);
    const got = await events.waitFor(2);
    assert.deepEqual(
      got.map((e) => e.n),
      [1, 2],
    );
  });
});
