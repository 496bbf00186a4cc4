// Fan-out across worker threads. With --workers 2 each worker accepts on its own SO_REUSEPORT
// listener, so the kernel spreads connections (and the HTTP publish requests) over both; a
// broadcast published on one worker must reach subscribers held by the other, exactly once and in
// the order the publisher sent them.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { collect, connectPusherJs, serverSdk, subscribe, useRingcast } from './helpers.mjs';

const CLIENTS = 20;
const BROADCASTS = 50;

describe('fan-out with --workers 2', () => {
  const { it } = useRingcast({ workers: 2 });

  it(`${CLIENTS} clients each get ${BROADCASTS} broadcasts once and in publish order`, async ({
    server,
    defer,
  }) => {
    const collectors = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = await connectPusherJs(server, defer);
        const channel = await subscribe(client, 'fanout');
        return collect(channel, 'seq');
      }),
    );

    const sdk = serverSdk(server);
    for (let i = 0; i < BROADCASTS; i++) {
      const res = await sdk.trigger('fanout', 'seq', { i });
      assert.equal(res.status, 200);
    }

    const expected = Array.from({ length: BROADCASTS }, (_, i) => ({ i }));
    for (const [n, c] of collectors.entries()) {
      await c.waitFor(BROADCASTS, 8_000);
      assert.deepEqual(c.received, expected, `client ${n}`);
    }

    // Nothing extra arrives after the last one (a duplicate would land here).
    const marker = await sdk.trigger('fanout', 'seq', { i: 'end' });
    assert.equal(marker.status, 200);
    for (const [n, c] of collectors.entries()) {
      const all = await c.waitFor(BROADCASTS + 1);
      assert.equal(all.length, BROADCASTS + 1, `client ${n} got duplicates`);
      assert.deepEqual(all.at(-1), { i: 'end' });
    }
  });

  it('a client on either worker receives events on several channels', async ({ server, defer }) => {
    const clients = [];
    for (let i = 0; i < 6; i++) clients.push(await connectPusherJs(server, defer));
    const a = await Promise.all(clients.map(async (c) => collect(await subscribe(c, 'spread-a'), 'e')));
    const b = await Promise.all(clients.map(async (c) => collect(await subscribe(c, 'spread-b'), 'e')));
    const sdk = serverSdk(server);
    await sdk.trigger(['spread-a', 'spread-b'], 'e', { both: true });
    await sdk.triggerBatch([
      { channel: 'spread-b', name: 'e', data: { only: 'b' } },
      { channel: 'spread-a', name: 'e', data: { only: 'a' } },
    ]);
    for (const c of a) assert.deepEqual(await c.waitFor(2), [{ both: true }, { only: 'a' }]);
    for (const c of b) assert.deepEqual(await c.waitFor(2), [{ both: true }, { only: 'b' }]);
  });
});
