// Shared pieces of the client tests: one ringcast process per suite, real clients bound to it,
// and waits that fail with a message instead of hanging.
//
// Every wait has its own deadline (STEP_TIMEOUT_MS) well inside the per-test limit, so a missing
// event fails inside the test body, where the server's output is attached to the error.

import { after, before, test } from 'node:test';
import PusherClient from 'pusher-js';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { startRingcast } from './server.mjs';

export const TEST_TIMEOUT_MS = 20_000;
export const STEP_TIMEOUT_MS = 5_000;

/**
 * Declares before/after hooks that run one ringcast for the enclosing `describe`, and returns
 * `{ it }`: `it(name, async ({ server, defer }) => ...)` declares a test that gets the running
 * server and a `defer(fn)` for cleanups (run in reverse order, also when the test fails). A failing
 * test's error carries everything ringcast printed.
 */
export function useRingcast(opts = {}) {
  let server = null;
  before(async () => {
    server = await startRingcast(opts);
  });
  after(async () => {
    if (server) await server.stop();
  });
  const it = (name, fn) =>
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      if (!server) throw new Error('ringcast is not running (see the suite hook failure)');
      await withCleanups({ server }, fn, () => {
        const state = server.alive() ? '' : ' (the process has exited)';
        return `\n--- ringcast output${state} ---\n${server.output()}`;
      });
    });
  return { it };
}

/**
 * The body of every suite's `it`: runs `fn({ ...context, defer })`, where `defer(f)` registers a
 * cleanup; cleanups run in reverse order, also when `fn` fails, and a failing cleanup never hides
 * the test's own result. A failure's message gets `output()` appended (the processes' output).
 */
export async function withCleanups(context, fn, output) {
  const cleanups = [];
  const defer = (f) => cleanups.push(f);
  try {
    await fn({ ...context, defer });
  } catch (err) {
    if (err && typeof err === 'object') err.message += output();
    throw err;
  } finally {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch {
        // A cleanup failure must not hide the test's own result.
      }
    }
  }
}

/** Rejects with `what` after `ms` unless `promise` settles first. */
export function within(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** pusher-js options that point the Node build at a local ringcast over plain ws. */
export function pusherJsOptions(server, extra = {}) {
  return {
    wsHost: server.host,
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    ...extra,
  };
}

/**
 * A pusher-js client that has reached the `connected` state. It is disconnected by `defer`.
 */
export async function connectPusherJs(server, defer, { key = server.app.key, ...extra } = {}) {
  const client = new PusherClient(key, pusherJsOptions(server, extra));
  defer(() => client.disconnect());
  await within(
    new Promise((resolve, reject) => {
      client.connection.bind('connected', resolve);
      client.connection.bind('error', (err) =>
        reject(new Error(`pusher-js connection error: ${JSON.stringify(err)}`)),
      );
    }),
    'pusher-js to reach the connected state',
  );
  return client;
}

/** Subscribes a pusher-js client and waits for `pusher:subscription_succeeded`. */
export async function subscribe(client, channelName) {
  const channel = client.subscribe(channelName);
  await within(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (err) =>
        reject(new Error(`subscription to ${channelName} failed: ${JSON.stringify(err)}`)),
      );
    }),
    `pusher:subscription_succeeded on ${channelName}`,
  );
  return channel;
}

/** Records every `event` on a pusher-js channel and lets a test wait for a count of them. */
export function collect(channel, event) {
  const received = [];
  let waiters = [];
  channel.bind(event, (data) => {
    received.push(data);
    waiters = waiters.filter((w) => {
      if (received.length >= w.count) {
        w.resolve(received);
        return false;
      }
      return true;
    });
  });
  return {
    received,
    /** Resolves once at least `count` events arrived. */
    waitFor(count, ms = STEP_TIMEOUT_MS) {
      if (received.length >= count) return Promise.resolve(received);
      const p = new Promise((resolve) => waiters.push({ count, resolve }));
      return within(p, `${count} '${event}' event(s) on ${channel.name} (got ${received.length})`, ms);
    },
  };
}

/** The Node server SDK (`pusher` on npm) pointed at the local ringcast. */
export function serverSdk(server, overrides = {}) {
  return new PusherServer({
    appId: server.app.id,
    key: server.app.key,
    secret: server.app.secret,
    host: server.host,
    port: String(server.port),
    useTLS: false,
    timeout: STEP_TIMEOUT_MS,
    ...overrides,
  });
}

/**
 * A raw WebSocket (the `ws` package) to `/app/<key>` with the query pusher-js sends, for checks
 * that need the exact frames or the close code. Messages are queued; `next()` takes them in order.
 */
export function openRawPusher(server, defer, key = server.app.key) {
  const url = `${server.wsUrl}/app/${encodeURIComponent(key)}?protocol=7&client=js&version=8.6.0&flash=false`;
  return openRaw(url, defer);
}

/** A raw WebSocket to any URL with an ordered message queue and a close promise. */
export function openRaw(url, defer) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  defer(() => ws.terminate());
  const queue = [];
  let waiter = null;
  ws.on('message', (data, isBinary) => {
    queue.push({ text: isBinary ? null : data.toString('utf8'), data, isBinary });
    if (waiter) {
      const w = waiter;
      waiter = null;
      w();
    }
  });
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString('utf8') });
      if (waiter) {
        const w = waiter;
        waiter = null;
        w();
      }
    });
  });
  ws.on('error', () => {
    // The close event reports the outcome; an error without a handler would crash the runner.
  });
  const opened = within(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`WebSocket upgrade answered HTTP ${res.statusCode}`)),
      );
      ws.once('close', (code) => reject(new Error(`WebSocket closed (${code}) before it opened`)));
    }),
    `WebSocket ${url} to open`,
  );
  return {
    ws,
    opened,
    closed,
    queue,
    /** The next message's text, or a rejection when the socket closes or the wait times out. */
    async next(what = 'a message', ms = STEP_TIMEOUT_MS) {
      const deadline = Date.now() + ms;
      while (queue.length === 0) {
        if (ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${what}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await within(new Promise((resolve) => (waiter = resolve)), what, left).catch((err) => {
          waiter = null;
          throw err;
        });
      }
      return queue.shift();
    },
    /** The next message parsed as a Pusher envelope. */
    async nextJson(what, ms) {
      const msg = await this.next(what, ms);
      if (msg.isBinary) throw new Error(`expected a text frame while waiting for ${what}`);
      return JSON.parse(msg.text);
    },
    send(obj) {
      ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    },
  };
}

/**
 * Opens a raw Pusher connection and returns it once `pusher:connection_established` arrived,
 * with the decoded handshake data.
 */
export async function rawConnected(server, defer) {
  const conn = openRawPusher(server, defer);
  await conn.opened;
  const hello = await conn.nextJson('pusher:connection_established');
  if (hello.event !== 'pusher:connection_established') {
    throw new Error(`first frame was not pusher:connection_established: ${JSON.stringify(hello)}`);
  }
  return { conn, hello, established: JSON.parse(hello.data) };
}
