// Webhooks as hosted Pusher sends them, checked by receivers that validate every request with
// both Pusher server SDKs (npm `pusher` webhook(), PyPI `pusher` validate_webhook) and refuse
// it with a wrong secret: each event type and its payload, the 3-second delay of
// channel_vacated / member_removed and its cancellation by a quick return, a channel filter
// and custom headers, subscription_count from a config that sets nothing else, batching,
// retries against a receiver that fails the first requests, a receiver that hangs while a
// fan-out completes, the environment form, the drain on SIGTERM, a SIGTERM with a receiver
// that never answers, and the one-line refusal of a bad setting.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sleep, useRingcast, within } from './helpers.mjs';
import { APP, startRingcast } from './server.mjs';
import {
  QUIET_MS,
  dataOf,
  defaultApp,
  eventually,
  rawPusher,
  sdkFor,
  subscribedClient,
  useConfiguredRingcast,
  writeConfig,
} from './support.mjs';
import { startReceiver } from './webhook-receiver.mjs';

const ALL = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss'];

const subscriber = subscribedClient;

const names = (events) => events.map((e) => `${e.name} ${e.channel}${e.user_id ? ` ${e.user_id}` : ''}`);

describe('webhooks of every event type, validated by both Pusher SDKs', async () => {
  const receiver = await startReceiver(APP);
  const counts = await startReceiver(APP);
  after(() => Promise.all([receiver.stop(), counts.stop()]));
  const { it } = useConfiguredRingcast({
    apps: [
      defaultApp({
        subscription_count: true,
        webhooks: [
          { url: receiver.url, event_types: ALL, headers: { 'X-Receiver-Token': 'tok-123' } },
          { url: counts.url, event_types: ['subscription_count'], filter: { prefix: 'counted-' } },
        ],
      }),
    ],
  });

  it('channel_occupied at once, channel_vacated 3 s after the last subscriber, signed and validated', async ({
    server,
    defer,
  }) => {
    const a = await subscriber(server, defer, 'room-1', null);
    const b = await subscriber(server, defer, 'room-1', null);
    await receiver.until((e) => e.some((x) => x.name === 'channel_occupied' && x.channel === 'room-1'), 'channel_occupied');
    a.ws.close();
    await sleep(QUIET_MS);
    const left = Date.now();
    b.drop();
    await receiver.until((e) => e.some((x) => x.name === 'channel_vacated' && x.channel === 'room-1'), 'channel_vacated', 8000);
    const vacated = receiver.named('channel_vacated', 'room-1')[0];
    assert.ok(vacated.at - left >= 2900, `vacated after ${vacated.at - left} ms, not before 3 s`);
    assert.deepEqual(names(receiver.events.filter((e) => e.channel === 'room-1')), [
      'channel_occupied room-1',
      'channel_vacated room-1',
    ]);
    const q = receiver.requests.at(-1);
    assert.equal(q.headers['x-pusher-key'], APP.key);
    assert.match(q.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
    assert.equal(q.headers['content-type'], 'application/json');
    assert.equal(q.headers['x-receiver-token'], 'tok-123', 'a configured header is sent');
    assert.equal(q.path, '/pusher/webhook');
    const body = JSON.parse(q.body);
    assert.ok(Math.abs(body.time_ms - Date.now()) < 10_000, `time_ms ${body.time_ms}`);
    assert.equal(body.events.length, 1, 'one event per request without batching');
    receiver.assertAllValid();
    assert.ok(receiver.requests.length >= 2);
  });

  it('member_added and member_removed per user, not per tab', async ({ server, defer }) => {
    const ch = 'presence-members';
    const tab1 = await subscriber(server, defer, ch, 'u1');
    const tab2 = await subscriber(server, defer, ch, 'u1');
    const other = await subscriber(server, defer, ch, 'u2');
    await receiver.until((e) => e.filter((x) => x.channel === ch).length >= 3, 'three webhooks');
    tab1.ws.close();
    await sleep(3500);
    assert.deepEqual(names(receiver.events.filter((e) => e.channel === ch)), [
      `channel_occupied ${ch}`,
      `member_added ${ch} u1`,
      `member_added ${ch} u2`,
    ]);
    tab2.ws.close();
    await receiver.until((e) => e.some((x) => x.name === 'member_removed' && x.channel === ch), 'member_removed', 8000);
    other.ws.close();
    await receiver.until((e) => e.some((x) => x.name === 'channel_vacated' && x.channel === ch), 'channel_vacated', 8000);
    assert.deepEqual(names(receiver.events.filter((e) => e.channel === ch)).slice(3), [
      `member_removed ${ch} u1`,
      `member_removed ${ch} u2`,
      `channel_vacated ${ch}`,
    ]);
    receiver.assertAllValid();
  });

  it('leaving and rejoining within 3 s sends nothing at all', async ({ server, defer }) => {
    const ch = 'presence-reload';
    const first = await subscriber(server, defer, ch, 'r1');
    await receiver.until((e) => e.some((x) => x.name === 'member_added' && x.channel === ch), 'member_added');
    // A page reload: the tab is gone, and a new connection joins as the same user 1 s later.
    first.drop();
    await sleep(1000);
    const again = await subscriber(server, defer, ch, 'r1');
    await sleep(4000);
    assert.deepEqual(names(receiver.events.filter((e) => e.channel === ch)), [
      `channel_occupied ${ch}`,
      `member_added ${ch} r1`,
    ]);
    again.ws.close();
    await receiver.until((e) => e.some((x) => x.name === 'channel_vacated' && x.channel === ch), 'channel_vacated', 8000);
    receiver.assertAllValid();
  });

  it('client_event with socket_id, and user_id on presence channels', async ({ server, defer }) => {
    const sdk = sdkFor(server);
    const a = await subscriber(server, defer, 'private-chat', null);
    a.subscribeSigned(sdk, 'presence-chat', 'alice');
    await a.succeeded('presence-chat');
    await subscriber(server, defer, 'private-chat', null);
    a.send({ event: 'client-typing', channel: 'private-chat', data: { on: true } });
    a.send({ event: 'client-typing', channel: 'presence-chat', data: 'plain' });
    await receiver.until((e) => e.filter((x) => x.name === 'client_event').length >= 2, 'two client_event webhooks');
    const [p, q] = receiver.named('client_event');
    assert.deepEqual(
      { ...p, at: undefined, hr: undefined, time_ms: undefined },
      { name: 'client_event', channel: 'private-chat', event: 'client-typing', data: '{"on":true}', socket_id: a.socketId, at: undefined, hr: undefined, time_ms: undefined },
    );
    assert.deepEqual(JSON.parse(p.data), { on: true });
    assert.equal(q.channel, 'presence-chat');
    assert.equal(q.data, 'plain');
    assert.equal(q.user_id, 'alice');
    assert.equal(q.socket_id, a.socketId);
    receiver.assertAllValid();
  });

  it('cache_miss once for subscribers that miss together, not for a hit', async ({ server, defer }) => {
    const ch = 'cache-prices';
    await Promise.all([1, 2, 3].map(() => subscriber(server, defer, ch, null)));
    await receiver.until((e) => e.some((x) => x.name === 'cache_miss'), 'cache_miss');
    await sleep(QUIET_MS);
    assert.equal(receiver.named('cache_miss', ch).length, 1, 'deduplicated');
    await sdkFor(server).trigger(ch, 'price', { v: 1 });
    await sleep(1100);
    const hit = await subscriber(server, defer, ch, null);
    await hit.event('price', ch);
    await sleep(QUIET_MS);
    assert.equal(receiver.named('cache_miss', ch).length, 1, 'a hit sends none');
    receiver.assertAllValid();
  });

  it('subscription_count goes to the webhook whose filter matches, with the count', async ({ server, defer }) => {
    const a = await subscriber(server, defer, 'counted-x', null);
    await subscriber(server, defer, 'counted-x', null);
    await subscriber(server, defer, 'uncounted-x', null);
    await counts.until((e) => e.length >= 2, 'two counts');
    a.ws.close();
    await counts.until((e) => e.length >= 3, 'a third count');
    assert.deepEqual(
      counts.events.map((e) => [e.name, e.channel, e.subscription_count]),
      [
        ['subscription_count', 'counted-x', 1],
        ['subscription_count', 'counted-x', 2],
        ['subscription_count', 'counted-x', 1],
      ],
    );
    assert.equal(receiver.named('subscription_count').length, 0, 'not asked for by the other webhook');
    counts.assertAllValid();
  });
});

// An app with a webhook of every event type and no other setting, written exactly so (only the
// receiver's port differs in the URL): it starts, its subscribers get no
// pusher_internal:subscription_count (the app does not ask for them), and its webhook gets every
// count all the same.
const EVERY_EVENT_APP = Object.freeze({ id: '1001', key: 'app-key', secret: 'app-secret' });
const EVERY_EVENT_TOML = `[[apps]]
id = "1001"
key = "app-key"
secret = "app-secret"

[[apps.webhooks]]
url = "http://127.0.0.1:9000/pusher/webhook"
event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss", "subscription_count"]
`;

describe('a webhook of every event type, with no other setting', async () => {
  const receiver = await startReceiver(EVERY_EVENT_APP);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-every-event-'));
  after(async () => {
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = path.join(dir, 'ringcast.toml');
  const toml = EVERY_EVENT_TOML.replace('http://127.0.0.1:9000/pusher/webhook', receiver.url);
  assert.notEqual(toml, EVERY_EVENT_TOML, 'the receiver takes the example URL\'s place');
  writeFileSync(file, toml);
  const { it } = useRingcast({
    workers: 2,
    args: ['--config', file],
    env: { REVERB_APP_ID: undefined, REVERB_APP_KEY: undefined, REVERB_APP_SECRET: undefined },
  });

  it('starts, and every count reaches the webhook while subscribers get no count events', async ({ server, defer }) => {
    const ch = 'counted-room';
    const a = await rawPusher(server, defer, { key: EVERY_EVENT_APP.key });
    a.subscribe(ch);
    await a.succeeded(ch);
    const b = await rawPusher(server, defer, { key: EVERY_EVENT_APP.key });
    b.subscribe(ch);
    await b.succeeded(ch);
    const counts = () => receiver.named('subscription_count', ch).length;
    await eventually(() => counts() >= 2, 'two subscription_count webhooks');
    b.ws.close();
    await eventually(() => counts() >= 3, 'a third subscription_count webhook');
    a.ws.close();
    await receiver.until((e) => e.some((x) => x.name === 'channel_vacated' && x.channel === ch), 'channel_vacated', 8000);
    await sleep(QUIET_MS);
    assert.deepEqual(
      receiver.events.filter((e) => e.channel === ch).map((e) => `${e.name}${e.subscription_count ? ` ${e.subscription_count}` : ''}`),
      ['channel_occupied', 'subscription_count 1', 'subscription_count 2', 'subscription_count 1', 'channel_vacated'],
    );
    for (const c of [a, b]) {
      assert.equal(c.count((m) => m.event === 'pusher_internal:subscription_count'), 0, 'no count event to a subscriber');
    }
    receiver.assertAllValid();
  });
});

describe('batching', async () => {
  const receiver = await startReceiver(APP);
  after(() => receiver.stop());
  // One worker owns every channel, so the events are decided in the order of the subscriptions.
  const { it } = useConfiguredRingcast({
    workers: 1,
    apps: [defaultApp({ webhooks: [{ url: receiver.url, event_types: ['channel_occupied'], timeout_ms: 60_000, batch: { enabled: true, window_ms: 300, max_events: 5 } }] })],
  });

  it('gathers waiting events into requests of at most max_events, in order', async ({ server, defer }) => {
    // The receiver holds its answers until every event is queued: whatever the first request
    // gathered in its window, each request after it finds at least max_events waiting.
    receiver.hold = true;
    const c = await rawPusher(server, defer);
    const channels = Array.from({ length: 12 }, (_, i) => `batch-${i}`);
    for (const ch of channels) c.subscribe(ch);
    // A subscription succeeds after its owner decided (and queued) its channel_occupied.
    for (const ch of channels) await c.succeeded(ch);
    receiver.release();
    await receiver.until((e) => e.length >= 12, 'twelve channel_occupied');
    const sizes = receiver.requests.map((q) => JSON.parse(q.body).events.length);
    assert.ok(sizes.every((n) => n >= 1 && n <= 5), `requests of ${sizes}: at most max_events each`);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 12, `requests of ${sizes}`);
    assert.ok(sizes.length >= 3, `requests of ${sizes}`);
    assert.ok(sizes.slice(1, -1).every((n) => n === 5), `requests of ${sizes}: each between the first and the last is full`);
    assert.deepEqual(receiver.events.map((e) => e.channel), channels, 'each once, in the order decided');
    receiver.assertAllValid();
    // Alone in its window, an event waits for the window and goes by itself.
    const before = receiver.requests.length;
    const t = Date.now();
    c.subscribe('batch-late');
    await receiver.until((e) => e.length >= 13, 'the late one');
    assert.equal(receiver.requests.length, before + 1);
    assert.ok(receiver.events.at(-1).at - t >= 250, 'held for the window');
  });
});

describe('retries and a hanging receiver', async () => {
  const receiver = await startReceiver(APP);
  // A receiver that never answers, behind a webhook whose timeout outlasts the test: its
  // sender stays inside one request, and the receiver sees that request still open.
  const stuck = await startReceiver(APP);
  stuck.hang = true;
  after(() => Promise.all([receiver.stop(), stuck.stop()]));
  const { it } = useConfiguredRingcast({
    workers: 2,
    client_events_per_second: 1000,
    // The stuck sender is still in its request when the server stops: it is left behind then.
    shutdown_timeout: 2,
    apps: [
      defaultApp({
        accept_client_events_from: 'all',
        webhooks: [
          { url: receiver.url, event_types: ['channel_occupied', 'client_event'], timeout_ms: 500 },
          { url: stuck.url, event_types: ['client_event'], timeout_ms: 60_000 },
        ],
      }),
    ],
  });

  it('a receiver that fails its first 3 requests gets every event, once and in order', async ({ server, defer }) => {
    receiver.failNext = 3;
    const c = await rawPusher(server, defer);
    for (const i of [1, 2, 3, 4]) c.subscribe(`retry-${i}`);
    await receiver.until((e) => e.length >= 4, 'four events', 15_000);
    assert.deepEqual(
      receiver.events.map((e) => e.channel).sort(),
      ['retry-1', 'retry-2', 'retry-3', 'retry-4'],
      'each once',
    );
    const statuses = receiver.requests.map((q) => q.status);
    assert.deepEqual(statuses, [500, 500, 500, 200, 200, 200, 200]);
    // Backoff: 0.5 s, 1 s, 2 s between the four attempts of the first request.
    const at = receiver.requests.map((q) => q.at);
    assert.ok(at[3] - at[0] >= 3000, `retried after ${at[3] - at[0]} ms`);
    receiver.assertAllValid();
  });

  it('a hanging receiver times out and is retried, and a fan-out completes while a webhook request hangs', async ({ server, defer }) => {
    const sdk = sdkFor(server);
    const subs = await Promise.all(Array.from({ length: 20 }, () => rawPusher(server, defer)));
    for (const s of subs) s.subscribeSigned(sdk, 'private-fan', null);
    await Promise.all(subs.map((s) => s.succeeded('private-fan')));
    const whisperer = subs[0];
    /** Publishes `n` events one after the other and returns deliveries per second. */
    async function fanout(n, tag) {
      const t0 = Date.now();
      for (let i = 0; i < n; i++) {
        // A whisper per publish: a client_event webhook for the receiver each time.
        whisperer.send({ event: 'client-tick', channel: 'private-fan', data: { i, tag } });
        await sdk.trigger('private-fan', 'tick', { i, tag });
      }
      await eventually(
        () => subs.every((s) => s.count((m) => m.event === 'tick' && dataOf(m).tag === tag) === n),
        `${n} ticks on every subscriber`,
      );
      return (n * subs.length * 1000) / (Date.now() - t0);
    }
    const ticks = (tag) => receiver.named('client_event').filter((e) => JSON.parse(e.data).tag === tag);
    const calm = await fanout(100, 'calm');
    await eventually(() => ticks('calm').length === 100, 'the calm whispers', 10_000);
    // The stuck receiver got the first whisper's webhook and has not answered it.
    const [open] = await eventually(() => stuck.hanging().length > 0 && stuck.hanging(), 'a request hanging at the stuck receiver');
    receiver.hang = true;
    const hungAt = receiver.requests.length;
    const started = Date.now();
    const stormy = await fanout(100, 'hung');
    // Every subscriber got every tick while that request, made before the fan-out began, was
    // still waiting for its answer: the workers never wait for a webhook.
    assert.ok(open.at <= started, 'the request was made before the fan-out began');
    assert.ok(open.open, 'a webhook request was still hanging when the fan-out finished');
    assert.deepEqual(stuck.hanging(), [open], 'one request at a time: the sender waits in it');
    await eventually(() => receiver.requests.length >= hungAt + 2, 'the sender to time out and retry', 5000);
    receiver.hang = false;
    await eventually(() => ticks('hung').length === 100, 'every whisper once the receiver answers again', 15_000);
    await sleep(QUIET_MS);
    const hung = ticks('hung').map((e) => JSON.parse(e.data).i);
    assert.deepEqual(hung, Array.from({ length: 100 }, (_, i) => i), 'in order, none lost or twice');
    const gaps = receiver.requests.slice(hungAt, hungAt + 2).map((q) => q.at);
    assert.ok(gaps[1] - gaps[0] >= 900, `timeout (500 ms) then backoff (500 ms): ${gaps[1] - gaps[0]} ms`);
    receiver.assertAllValid();
    stuck.assertAllValid();
    console.log(`fan-out deliveries/s: ${calm.toFixed(0)} with the receiver answering, ${stormy.toFixed(0)} while it hangs`);
  });
});

test('the environment form, and the drain on SIGTERM sends the departures before the process exits', { timeout: 30_000 }, async () => {
  const receiver = await startReceiver(APP);
  const server = await startRingcast({
    workers: 2,
    env: { RINGCAST_WEBHOOK_URL: receiver.url, RINGCAST_WEBHOOK_EVENTS: 'channel_occupied,channel_vacated,member_removed' },
  });
  const cleanups = [];
  const defer = (f) => cleanups.push(f);
  try {
    await subscriber(server, defer, 'presence-drain', 'd1');
    await receiver.until((e) => e.length >= 1, 'channel_occupied');
    server.signal('SIGTERM');
    const exit = await within(server.exited(), 'ringcast to exit after SIGTERM', 20_000);
    assert.deepEqual(exit, { code: 0, signal: null }, server.output());
    // Sent by the stopping process: nobody is left to send them after it.
    assert.deepEqual(names(receiver.events), [
      'channel_occupied presence-drain',
      'member_removed presence-drain d1',
      'channel_vacated presence-drain',
    ]);
    receiver.assertAllValid();
  } finally {
    for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {});
    await server.stop();
    await receiver.stop();
  }
});

test('SIGTERM with a receiver that never answers: the process exits and logs every event it could not send', { timeout: 30_000 }, async () => {
  const stuck = await startReceiver(APP);
  stuck.hang = true;
  const config = writeConfig({
    // The webhook's default timeout (4 s) outlasts the shutdown's 2 s.
    apps: [defaultApp({ webhooks: [{ url: stuck.url, event_types: ['channel_occupied'] }] })],
  });
  const server = await startRingcast({
    workers: 2,
    args: ['--config', config],
    env: {
      REVERB_APP_ID: undefined,
      REVERB_APP_KEY: undefined,
      REVERB_APP_SECRET: undefined,
      RINGCAST_SHUTDOWN_TIMEOUT: '2',
      RINGCAST_LOG_FORMAT: 'json',
    },
  });
  const cleanups = [];
  const defer = (f) => cleanups.push(f);
  try {
    const c = await rawPusher(server, defer);
    const channels = ['stuck-1', 'stuck-2', 'stuck-3', 'stuck-4', 'stuck-5'];
    for (const ch of channels) c.subscribe(ch);
    for (const ch of channels) await c.succeeded(ch);
    await eventually(() => stuck.hanging().length === 1, 'the first request to hang');
    server.signal('SIGTERM');
    const exit = await within(server.exited(), 'ringcast to exit after SIGTERM', 20_000);
    assert.deepEqual(exit, { code: 0, signal: null }, server.output());
    // What it could not send is logged with its number of events: all five.
    const lost = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((l) => /^webhook (events not sent before the shutdown deadline|request given up)$/.test(l.fields?.message));
    assert.ok(lost.length > 0, server.output());
    assert.ok(lost.every((l) => l.level === 'WARN' && l.fields.url === stuck.url), JSON.stringify(lost));
    assert.equal(
      lost.reduce((n, l) => n + l.fields.events, 0),
      channels.length,
      `every event counted once as not sent: ${JSON.stringify(lost)}`,
    );
    stuck.assertAllValid();
  } finally {
    for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {});
    await server.stop();
    await stuck.stop();
  }
});

test('a bad webhook setting stops start-up with one line', { timeout: 20_000 }, async () => {
  const cases = [
    [{ config: { apps: [defaultApp({ webhooks: [{ url: 'ftp://example.com/x', event_types: ['channel_occupied'] }] })] } }, `ringcast: webhooks[0].url of app "${APP.id}" must be an http:// or https:// URL with a host, got "ftp://example.com/x"`],
    [{ config: { apps: [defaultApp({ webhooks: [{ url: 'http://127.0.0.1:1/', event_types: ['channel_ocupied'] }] })] } }, `ringcast: webhooks[0].event_types of app "${APP.id}" must be one of channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, subscription_count, got "channel_ocupied"`],
    [{ env: { RINGCAST_WEBHOOK_URL: 'not a url' } }, `ringcast: webhooks[0].url of app "${APP.id}" (RINGCAST_WEBHOOK_URL) must be`],
    [{ env: { RINGCAST_WEBHOOK_URL: 'http://127.0.0.1:1/', RINGCAST_WEBHOOK_EVENTS: 'member_added,nope' } }, `(RINGCAST_WEBHOOK_EVENTS) must be one of`],
  ];
  for (const [{ config, env }, line] of cases) {
    const args = config ? ['--config', writeConfig(config)] : [];
    const envs = config ? { REVERB_APP_ID: undefined, REVERB_APP_KEY: undefined, REVERB_APP_SECRET: undefined } : env;
    const err = await startRingcast({ args, env: envs }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err, `started with ${JSON.stringify(config ?? env)}`);
    const out = err.message.split('--- ringcast output ---\n')[1] ?? '';
    assert.ok(out.includes(line), `expected ${line} in:\n${out}`);
    assert.match(err.message, /code 2/, "a configuration error exits with 2");
    const lines = out.trim().split('\n').filter((l) => l && !l.startsWith('['));
    assert.equal(lines.length, 1, `one line: ${out}`);
  }
});
