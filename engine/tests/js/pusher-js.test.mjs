// pusher-js 8.6.0 (the Node build) against ringcast, with events published through the Node
// server SDK `pusher` 5.3.4: the path every Laravel app using Echo takes.

import assert from 'node:assert/strict';
import { describe } from 'node:test';
import {
  collect,
  connectPusherJs,
  rawConnected,
  serverSdk,
  subscribe,
  useRingcast,
  within,
} from './helpers.mjs';

/** A data string of exactly `bytes` UTF-8 bytes mixing ASCII, escapes and multi-byte characters. */
function payloadOfBytes(bytes) {
  const unit = 'ringcast "quoted" \\ back\\slash / tab\t newline\n é ü 漢字 😀 ';
  let s = '';
  while (Buffer.byteLength(s + unit) <= bytes) s += unit;
  while (Buffer.byteLength(s) < bytes) s += 'x';
  return s;
}

describe('pusher-js client with the pusher server SDK', () => {
  const { it } = useRingcast({ workers: 1 });

  it('connects and gets a socket id of the form digits.digits', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    assert.equal(client.connection.state, 'connected');
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  });

  it('gives every connection a different socket id', async ({ server, defer }) => {
    const ids = new Set();
    for (let i = 0; i < 5; i++) {
      const client = await connectPusherJs(server, defer);
      ids.add(client.connection.socket_id);
    }
    assert.equal(ids.size, 5);
  });

  it('announces a positive activity_timeout and answers pusher:ping with pusher:pong', async ({
    server,
    defer,
  }) => {
    const { conn, hello, established } = await rawConnected(server, defer);
    assert.equal(typeof hello.data, 'string', 'connection_established data must be a JSON string');
    assert.match(established.socket_id, /^\d+\.\d+$/);
    assert.ok(
      Number.isInteger(established.activity_timeout) && established.activity_timeout > 0,
      `activity_timeout ${established.activity_timeout}`,
    );
    conn.send({ event: 'pusher:ping', data: {} });
    const pong = await conn.nextJson('pusher:pong');
    assert.equal(pong.event, 'pusher:pong');
  });

  it('confirms a public subscription and delivers a triggered event', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    const channel = await subscribe(client, 'news');
    const got = collect(channel, 'headline');
    const res = await serverSdk(server).trigger('news', 'headline', { title: 'ringcast is up', n: 1 });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    const [data] = await got.waitFor(1);
    assert.deepEqual(data, { title: 'ringcast is up', n: 1 });
  });

  it('delivers one trigger to several channels', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    const names = ['multi-a', 'multi-b', 'multi-c'];
    const collectors = [];
    for (const name of names) collectors.push(collect(await subscribe(client, name), 'tick'));
    const res = await serverSdk(server).trigger(names, 'tick', { at: 7 });
    assert.equal(res.status, 200);
    for (const c of collectors) assert.deepEqual(await c.waitFor(1), [{ at: 7 }]);
  });

  it('delivers every event of triggerBatch to its own channel', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    const first = collect(await subscribe(client, 'batch-one'), 'created');
    const second = collect(await subscribe(client, 'batch-two'), 'updated');
    const res = await serverSdk(server).triggerBatch([
      { channel: 'batch-one', name: 'created', data: { id: 1 } },
      { channel: 'batch-two', name: 'updated', data: { id: 2 } },
      { channel: 'batch-one', name: 'created', data: { id: 3 } },
    ]);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(typeof body, 'object');
    assert.deepEqual(await first.waitFor(2), [{ id: 1 }, { id: 3 }]);
    assert.deepEqual(await second.waitFor(1), [{ id: 2 }]);
  });

  it('leaves out the socket named in socket_id and delivers to the others', async ({
    server,
    defer,
  }) => {
    const excluded = await connectPusherJs(server, defer);
    const other = await connectPusherJs(server, defer);
    const onExcluded = collect(await subscribe(excluded, 'room'), 'said');
    const onOther = collect(await subscribe(other, 'room'), 'said');
    const sdk = serverSdk(server);

    await sdk.trigger('room', 'said', { text: 'not for you' }, { socket_id: excluded.connection.socket_id });
    assert.deepEqual(await onOther.waitFor(1), [{ text: 'not for you' }]);

    // Events to one connection keep their order, so once the excluded socket has the next event
    // it is certain that the first one was never sent to it.
    await sdk.trigger('room', 'said', { text: 'for everyone' });
    assert.deepEqual(await onExcluded.waitFor(1), [{ text: 'for everyone' }]);
    assert.deepEqual(await onOther.waitFor(2), [{ text: 'not for you' }, { text: 'for everyone' }]);
    assert.equal(onExcluded.received.length, 1);
  });

  it('stops delivering a channel after pusher-js unsubscribes from it', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    // pusher-js drops its channel object on unsubscribe, so watch the connection's raw messages:
    // they show what the server still sends.
    const raw = [];
    client.connection.bind('message', (m) => raw.push(m));
    const left = collect(await subscribe(client, 'leaving'), 'e');
    const kept = collect(await subscribe(client, 'staying'), 'e');
    const sdk = serverSdk(server);
    await sdk.trigger('leaving', 'e', { n: 1 });
    assert.deepEqual(await left.waitFor(1), [{ n: 1 }]);

    client.unsubscribe('leaving');
    // The server handles one socket's frames in order, so once the pong for a ping sent after
    // the unsubscribe is back, the unsubscribe has been processed.
    client.connection.send_event('pusher:ping', {});
    await within(
      new Promise((resolve) => client.connection.bind('message', (m) => m.event === 'pusher:pong' && resolve())),
      'pusher:pong after the unsubscribe',
    );
    await sdk.trigger('leaving', 'e', { n: 2 });
    await sdk.trigger('staying', 'e', { n: 3 });
    assert.deepEqual(await kept.waitFor(1), [{ n: 3 }]);
    const leavingEvents = raw.filter((m) => m.channel === 'leaving' && m.event === 'e').map((m) => m.data);
    assert.deepEqual(leavingEvents, [{ n: 1 }]);
  });

  it('delivers data strings byte for byte: unicode, quotes, escapes, a 9 KB payload', async ({
    server,
    defer,
  }) => {
    const client = await connectPusherJs(server, defer);
    const channel = await subscribe(client, 'exact');
    const got = collect(channel, 'raw');
    // pusher-js hands a data string that is not JSON to the callback unchanged, so these compare
    // exactly with what the publisher sent.
    const samples = [
      'plain text',
      'unicode: é ü ß 漢字 한국어 😀 \u2028\u2029 end',
      'quotes " and \\" and \' and a backslash \\ and {"not": json',
      'control \t tab \n newline \r return \u0001 \u001f',
      payloadOfBytes(9 * 1024),
    ];
    const sdk = serverSdk(server);
    for (const data of samples) await sdk.trigger('exact', 'raw', data);
    const received = await got.waitFor(samples.length);
    assert.equal(received.length, samples.length);
    for (let i = 0; i < samples.length; i++) {
      assert.equal(typeof received[i], 'string');
      assert.equal(Buffer.byteLength(received[i]), Buffer.byteLength(samples[i]), `sample ${i} length`);
      assert.equal(received[i], samples[i], `sample ${i}`);
    }
  });

  it('sends channel event data as the exact string the publisher posted', async ({ server, defer }) => {
    const { conn } = await rawConnected(server, defer);
    conn.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'wire' } });
    const ok = await conn.nextJson('pusher_internal:subscription_succeeded');
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
    assert.equal(ok.channel, 'wire');

    // A JSON text with odd but valid spacing and key order: a server that re-encodes it would
    // change the bytes.
    const posted = '{ "b" : 1,"a":"é\\u00e9 \\"q\\"" ,"n":[1.50, 2e3] }';
    await serverSdk(server).trigger('wire', 'App\\Events\\Exact', posted);
    const msg = await conn.nextJson('the channel event');
    assert.equal(msg.event, 'App\\Events\\Exact');
    assert.equal(msg.channel, 'wire');
    assert.equal(typeof msg.data, 'string');
    assert.equal(msg.data, posted);
  });

  it('rejects data over 10 KB with HTTP 413 and delivers nothing', async ({ server, defer }) => {
    const client = await connectPusherJs(server, defer);
    const got = collect(await subscribe(client, 'big'), 'blob');
    const sdk = serverSdk(server);
    await assert.rejects(
      () => sdk.trigger('big', 'blob', 'x'.repeat(10 * 1024 + 1)),
      (err) => err.status === 413,
    );
    await sdk.trigger('big', 'blob', 'small');
    assert.deepEqual(await within(got.waitFor(1), 'the small event'), ['small']);
  });
});
