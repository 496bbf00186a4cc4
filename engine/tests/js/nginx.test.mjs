// ringcast behind the nginx site that tuning/ ships: the template operators install
// (tuning/nginx/ringcast.conf.template and ringcast-tls.conf.template) is rendered with free
// ports and short timeouts, and real clients go through it.
//
// - pusher-js connects through nginx, and an event published through nginx with the pusher SDK
//   arrives (ringcast verifies the signature behind the proxy: a wrong secret gets 401);
// - the same with a path prefix (REVERB_SERVER_PATH=/ws, pusher-js `wsPath: '/ws'`);
// - the same over TLS terminated by nginx (wss:// and https://);
// - the timeout mechanism, with proxy_read_timeout shortened to seconds instead of waiting for
//   nginx's 60 s default: with ringcast's ping interval and the activity timeout below
//   proxy_read_timeout, clients stay connected for more than twice the read timeout; with pings
//   out of the way (long intervals) nginx does cut a silent connection after its read timeout
//   while a direct connection to ringcast stays open (the control that proves the mechanism).
//
// nginx must be installed (Debian's /usr/sbin/nginx; .ci/test installs it). A missing nginx is a
// failure, not a skip.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { collect, connectPusherJs, serverSdk, sleep, subscribe, withCleanups, within } from './helpers.mjs';
import { nginxBin, startNginx } from './nginx.mjs';
import { startRingcast } from './server.mjs';

const TEST_TIMEOUT_MS = 20_000;

// A missing nginx is a failure with the install hint, not a skip (the suites below would only
// report their tests as cancelled).
test('nginx is installed', () => {
  nginxBin();
});

/**
 * Runs one ringcast and one nginx (site rendered from `template` with `vars` and the ringcast
 * port as upstream) for the enclosing describe. Returns `it(name, fn)`, where fn gets
 * `{ server, nginx, defer }`; a failing test's error carries both processes' output.
 */
function useRingcastBehindNginx({ ringcast = {}, template, vars = {} }) {
  const stack = { server: null, nginx: null };
  before(async () => {
    stack.server = await startRingcast(ringcast);
    stack.nginx = await startNginx({
      template,
      vars: {
        RINGCAST_PATH: '',
        RINGCAST_PROXY_READ_TIMEOUT: '120s',
        ...vars,
        RINGCAST_UPSTREAM_PORT: stack.server.port,
      },
    });
  });
  after(async () => {
    if (stack.nginx) await stack.nginx.stop();
    if (stack.server) await stack.server.stop();
  });
  const it = (name, fn) =>
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      const { server, nginx } = stack;
      if (!server || !nginx) throw new Error('ringcast or nginx is not running (see the suite hook failure)');
      await withCleanups(
        { server, nginx },
        fn,
        () => `\n--- ringcast output ---\n${server.output()}\n--- nginx ---\n${nginx.output()}`,
      );
    });
  return { it };
}

/** pusher-js options that send the client to nginx instead of ringcast. */
function viaNginx(nginx, extra = {}) {
  return { wsHost: '127.0.0.1', wsPort: nginx.port, ...extra };
}

/** The pusher server SDK publishing through nginx (plain HTTP). */
function sdkViaNginx(server, nginx, overrides = {}) {
  return serverSdk(server, { host: '127.0.0.1', port: String(nginx.port), ...overrides });
}

/** Resolves with the first pusher-js state change away from `connected`. */
function leftConnected(client) {
  return new Promise((resolve) => {
    client.connection.bind('state_change', (s) => {
      if (s.previous === 'connected') resolve(s);
    });
  });
}

/**
 * A raw Pusher WebSocket (the `ws` package) at `url`. It never sends anything on its own; with
 * `answerPings` it replies to the server's `pusher:ping` with `pusher:pong`, as pusher-js does.
 */
function rawPusher(url, defer, { answerPings = true, wsOptions = {} } = {}) {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...wsOptions });
  defer(() => ws.terminate());
  const events = [];
  let pings = 0;
  let waiters = [];
  const notify = () => {
    waiters = waiters.filter((w) => {
      const hit = events.find(w.pred);
      if (hit) w.resolve(hit);
      return !hit;
    });
  };
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString('utf8'));
    if (msg.event === 'pusher:ping') {
      pings += 1;
      if (answerPings) ws.send(JSON.stringify({ event: 'pusher:pong', data: {} }));
      return;
    }
    events.push(msg);
    notify();
  });
  ws.on('error', () => {
    // `closed` reports the outcome.
  });
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8'), at: Date.now() }));
  });
  const conn = {
    ws,
    closed,
    events,
    pings: () => pings,
    /** Resolves with the first message matching `pred`. */
    waitFor(pred, what, ms) {
      const hit = events.find(pred);
      if (hit) return Promise.resolve(hit);
      return within(new Promise((resolve) => waiters.push({ pred, resolve })), what, ms);
    },
    async subscribe(channel) {
      ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { auth: '', channel } }));
      await conn.waitFor(
        (m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === channel,
        `subscription_succeeded on ${channel}`,
      );
    },
  };
  conn.established = within(
    new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered HTTP ${res.statusCode}`)));
      ws.once('close', (code) => reject(new Error(`closed (${code}) before pusher:connection_established`)));
      waiters.push({ pred: (m) => m.event === 'pusher:connection_established', resolve });
    }),
    `pusher:connection_established from ${url}`,
  );
  // A test that expects the upgrade to fail awaits this itself; never an unhandled rejection.
  conn.established.catch(() => {});
  return conn;
}

function pusherUrl(base, key, prefix = '') {
  return `${base}${prefix}/app/${encodeURIComponent(key)}?protocol=7&client=js&version=8.6.0&flash=false`;
}

describe('nginx site from tuning/: connect and publish through the proxy', () => {
  const { it } = useRingcastBehindNginx({
    ringcast: { workers: 2 },
    template: 'ringcast.conf.template',
  });

  it('GET /up through nginx answers {"health":"OK"}', async ({ nginx }) => {
    const res = await fetch(`${nginx.url}/up`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { health: 'OK' });
  });

  it('pusher-js connects through nginx and gets an event the SDK triggered through nginx', async ({
    server,
    nginx,
    defer,
  }) => {
    const client = await connectPusherJs(server, defer, viaNginx(nginx));
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
    const got = collect(await subscribe(client, 'proxied'), 'headline');
    const res = await sdkViaNginx(server, nginx).trigger('proxied', 'headline', { via: 'nginx', n: 1 });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(await got.waitFor(1), [{ via: 'nginx', n: 1 }]);
  });

  it('ringcast verifies the SDK signature behind nginx: a wrong secret gets 401', async ({ server, nginx }) => {
    await assert.rejects(
      () => sdkViaNginx(server, nginx, { secret: 'not-the-secret' }).trigger('proxied', 'x', {}),
      (err) => {
        assert.equal(err.status, 401, `status ${err.status}: ${err.message} ${err.body ?? ''}`);
        return true;
      },
    );
  });

  it('triggerBatch through nginx reaches clients on both workers', async ({ server, nginx, defer }) => {
    const collectors = [];
    for (let i = 0; i < 4; i++) {
      const client = await connectPusherJs(server, defer, viaNginx(nginx));
      collectors.push(collect(await subscribe(client, 'proxied-batch'), 'tick'));
    }
    const res = await sdkViaNginx(server, nginx).triggerBatch([
      { channel: 'proxied-batch', name: 'tick', data: JSON.stringify({ n: 1 }) },
      { channel: 'proxied-batch', name: 'tick', data: JSON.stringify({ n: 2 }) },
    ]);
    assert.equal(res.status, 200);
    for (const c of collectors) assert.deepEqual(await c.waitFor(2), [{ n: 1 }, { n: 2 }]);
  });
});

describe('nginx site from tuning/ with a path prefix (REVERB_SERVER_PATH=/ws)', () => {
  const { it } = useRingcastBehindNginx({
    ringcast: { workers: 1, env: { REVERB_SERVER_PATH: '/ws' } },
    template: 'ringcast.conf.template',
    vars: { RINGCAST_PATH: '/ws' },
  });

  // pusher 5.3.4 (Node) has no `path` option. Putting the prefix after the port in `host` makes
  // it request http://127.0.0.1:PORT/ws/apps/ID/events while signing /apps/ID/events: the same
  // request pusher-php-server sends with its `path` option (URL prefixed, signature without it).
  const sdkWithPrefix = (server, nginx, overrides = {}) =>
    serverSdk(server, { host: `127.0.0.1:${nginx.port}/ws`, port: undefined, ...overrides });

  it('GET /ws/up through nginx answers {"health":"OK"}', async ({ nginx }) => {
    const res = await fetch(`${nginx.url}/ws/up`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { health: 'OK' });
  });

  it('pusher-js with wsPath /ws connects through nginx and gets an event published to /ws/apps/...', async ({
    server,
    nginx,
    defer,
  }) => {
    const client = await connectPusherJs(server, defer, viaNginx(nginx, { wsPath: '/ws' }));
    const got = collect(await subscribe(client, 'prefixed'), 'headline');
    const res = await sdkWithPrefix(server, nginx).trigger('prefixed', 'headline', { prefix: '/ws' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(await got.waitFor(1), [{ prefix: '/ws' }]);
  });

  it('a publish to /ws/apps/... with a wrong secret gets 401 through nginx', async ({ server, nginx }) => {
    await assert.rejects(
      () => sdkWithPrefix(server, nginx, { secret: 'not-the-secret' }).trigger('prefixed', 'x', {}),
      (err) => {
        assert.equal(err.status, 401, `status ${err.status}: ${err.message} ${err.body ?? ''}`);
        return true;
      },
    );
  });

  it('the socket endpoint without the prefix is not proxied', async ({ server, nginx, defer }) => {
    const raw = rawPusher(pusherUrl(`ws://127.0.0.1:${nginx.port}`, server.app.key), defer);
    await assert.rejects(raw.established, /upgrade answered HTTP 404/);
  });
});

// Short timeouts instead of nginx's 60 s default: proxy_read_timeout 3s, and ringcast pinging a
// connection after 1 s of silence (REVERB_APP_PING_INTERVAL=1), announcing activity_timeout 1 so
// that pusher-js pings after 1 s of silence too.
const READ_TIMEOUT_S = 3;
describe('nginx proxy_read_timeout 3s with ringcast pinging every second', () => {
  const { it } = useRingcastBehindNginx({
    ringcast: {
      workers: 1,
      env: { REVERB_APP_PING_INTERVAL: '1', REVERB_APP_ACTIVITY_TIMEOUT: '1', REVERB_APP_PONG_TIMEOUT: '5' },
    },
    template: 'ringcast.conf.template',
    vars: { RINGCAST_PROXY_READ_TIMEOUT: `${READ_TIMEOUT_S}s` },
  });

  it('pusher-js and a raw client stay connected for more than twice the read timeout, then get an event', async ({
    server,
    nginx,
    defer,
  }) => {
    const client = await connectPusherJs(server, defer, viaNginx(nginx));
    const socketId = client.connection.socket_id;
    const dropped = leftConnected(client);
    let droppedState = null;
    dropped.then((s) => (droppedState = s));
    const got = collect(await subscribe(client, 'long-lived'), 'still-here');

    // A client that sends nothing but pongs: only ringcast's pings keep its tunnel busy.
    const raw = rawPusher(pusherUrl(`ws://127.0.0.1:${nginx.port}`, server.app.key), defer);
    await raw.established;
    await raw.subscribe('long-lived');
    let rawClosed = null;
    raw.closed.then((c) => (rawClosed = c));

    await sleep((2 * READ_TIMEOUT_S + 1) * 1000);

    assert.equal(rawClosed, null, `the raw client was closed: ${JSON.stringify(rawClosed)}`);
    assert.ok(raw.pings() >= 2, `ringcast pinged the silent client ${raw.pings()} time(s)`);
    assert.equal(droppedState, null, `pusher-js left 'connected': ${JSON.stringify(droppedState)}`);
    assert.equal(client.connection.state, 'connected');
    assert.equal(client.connection.socket_id, socketId, 'pusher-js reconnected (its socket id changed)');

    const res = await sdkViaNginx(server, nginx).trigger('long-lived', 'still-here', { after: '7s' });
    assert.equal(res.status, 200);
    assert.deepEqual(await got.waitFor(1), [{ after: '7s' }]);
    const ev = await raw.waitFor((m) => m.event === 'still-here', 'still-here on the raw client');
    assert.deepEqual(JSON.parse(ev.data), { after: '7s' });
    assert.doesNotMatch(nginx.errorLog(), /upstream timed out/);
  });
});

// The control: the same site with proxy_read_timeout 2s, but ringcast pinging only after 120 s
// and announcing activity_timeout 120 (so pusher-js would ping after 120 s). Nothing crosses the
// tunnel, so nginx cuts it, while a direct connection to ringcast stays open.
const CONTROL_READ_TIMEOUT_S = 2;
describe('control: nginx proxy_read_timeout 2s with pings far apart', () => {
  const { it } = useRingcastBehindNginx({
    ringcast: {
      workers: 1,
      env: { REVERB_APP_PING_INTERVAL: '120', REVERB_APP_ACTIVITY_TIMEOUT: '120' },
    },
    template: 'ringcast.conf.template',
    vars: { RINGCAST_PROXY_READ_TIMEOUT: `${CONTROL_READ_TIMEOUT_S}s` },
  });

  it('nginx closes a silent proxied socket after its read timeout; a direct one stays open', async ({
    server,
    nginx,
    defer,
  }) => {
    const proxied = rawPusher(pusherUrl(`ws://127.0.0.1:${nginx.port}`, server.app.key), defer);
    const direct = rawPusher(pusherUrl(server.wsUrl, server.app.key), defer);
    const client = await connectPusherJs(server, defer, viaNginx(nginx));
    const dropped = leftConnected(client);
    await proxied.established;
    await direct.established;
    const since = Date.now();

    const closed = await within(proxied.closed, 'nginx to close the silent proxied socket', 4 * CONTROL_READ_TIMEOUT_S * 1000);
    const elapsed = (closed.at - since) / 1000;
    assert.ok(
      elapsed >= CONTROL_READ_TIMEOUT_S - 0.5 && elapsed <= CONTROL_READ_TIMEOUT_S + 2,
      `closed after ${elapsed.toFixed(2)} s, expected about ${CONTROL_READ_TIMEOUT_S} s`,
    );
    // nginx drops the TCP connection without a close frame.
    assert.equal(closed.code, 1006);
    await within(dropped, 'pusher-js to lose its proxied connection', 3_000);
    assert.equal(direct.ws.readyState, WebSocket.OPEN, 'the direct connection must stay open');
    assert.equal(proxied.pings(), 0);
    assert.match(nginx.errorLog(), /upstream timed out .* while proxying upgraded connection/);
  });
});

describe('nginx TLS site from tuning/ (wss:// and https:// terminated by nginx)', () => {
  const tls = { dir: null, cert: null, key: null, ca: null, reject: undefined };
  // The certificate must exist before the site is rendered, so this hook is declared first.
  before(() => {
    tls.dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-tls-'));
    tls.cert = path.join(tls.dir, 'cert.pem');
    tls.key = path.join(tls.dir, 'key.pem');
    const r = spawnSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', tls.key, '-out', tls.cert,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (r.status !== 0) {
      throw new Error(`openssl could not make a test certificate (install Debian's openssl): ${r.error ?? ''}${r.stderr ?? ''}`);
    }
    tls.ca = readFileSync(tls.cert);
    // pusher-js (its Node build) offers no way to pass a CA: accept the self-signed certificate
    // for this suite only. The raw client and the SDK below verify it properly.
    tls.reject = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  });
  after(() => {
    if (tls.reject === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = tls.reject;
    if (tls.dir) rmSync(tls.dir, { recursive: true, force: true });
  });
  const { it } = useRingcastBehindNginx({
    ringcast: { workers: 1 },
    template: 'ringcast-tls.conf.template',
    vars: {
      get RINGCAST_TLS_CERT() {
        return tls.cert;
      },
      get RINGCAST_TLS_KEY() {
        return tls.key;
      },
    },
  });

  it('pusher-js over wss:// gets an event the SDK published over https://', async ({ server, nginx, defer }) => {
    const client = await connectPusherJs(server, defer, {
      wsHost: '127.0.0.1',
      wssPort: nginx.port,
      forceTLS: true,
      // pusher-js's 'ws' transport is the one that uses wss:// when forceTLS is set.
      enabledTransports: ['ws'],
    });
    const got = collect(await subscribe(client, 'secure'), 'headline');
    const sdk = serverSdk(server, {
      host: '127.0.0.1',
      port: String(nginx.port),
      useTLS: true,
      agent: new https.Agent({ ca: tls.ca }),
    });
    const res = await sdk.trigger('secure', 'headline', { tls: true });
    assert.equal(res.status, 200);
    assert.deepEqual(await got.waitFor(1), [{ tls: true }]);
  });

  it('a raw wss:// client verifying the certificate gets connection_established', async ({ server, nginx, defer }) => {
    const raw = rawPusher(pusherUrl(`wss://127.0.0.1:${nginx.port}`, server.app.key), defer, {
      wsOptions: { ca: tls.ca },
    });
    const hello = await raw.established;
    assert.match(JSON.parse(hello.data).socket_id, /^\d+\.\d+$/);
  });
});
