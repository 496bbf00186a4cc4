// Plumbing shared by the channel-feature tests (presence, private, encrypted, cache, sign-in,
// counts, several apps): ringcast started from a TOML config file, a raw Pusher client that keeps
// every frame it got so a test can count events, and small waits.
//
// The raw client (the `ws` package) is what makes "exactly once" checkable: pusher-js drops some
// duplicate events on its own (a `member_removed` for an unknown member), so counting through it
// would hide a server that sends an event twice.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { after, before, test } from 'node:test';
import { STEP_TIMEOUT_MS, TEST_TIMEOUT_MS, sleep, useRingcast, within } from './helpers.mjs';
import { APP, startRedis, startRingcast } from './server.mjs';

/** How long a test waits to be sure that something did NOT arrive. */
export const QUIET_MS = 400;

// ---------------------------------------------------------------------------------------------
// Config files

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (v && typeof v === 'object') {
    return `{ ${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)} = ${tomlValue(x)}`)
      .join(', ')} }`;
  }
  throw new Error(`cannot write ${typeof v} to TOML`);
}

/**
 * The TOML text of a ringcast config: top-level keys plus one `[[apps]]` table per app, and an
 * app's `webhooks` list as its `[[apps.webhooks]]` tables.
 */
export function toToml({ apps = [], ...top }) {
  const lines = [];
  for (const [k, v] of Object.entries(top)) if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`);
  for (const { webhooks = [], ...app } of apps) {
    lines.push('', '[[apps]]');
    for (const [k, v] of Object.entries(app)) if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`);
    for (const hook of webhooks) {
      lines.push('', '[[apps.webhooks]]');
      for (const [k, v] of Object.entries(hook)) if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const configDirs = [];
process.on('exit', () => {
  for (const d of configDirs) rmSync(d, { recursive: true, force: true });
});

/** Writes a config file (removed when the test process exits) and returns its absolute path. */
export function writeConfig(config) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-config-'));
  configDirs.push(dir);
  const file = path.join(dir, 'ringcast.toml');
  writeFileSync(file, toToml(config));
  return file;
}

/**
 * `useRingcast` for a server configured by a TOML file only. The first app should be the
 * default test app (`APP` plus settings) so that `server.app` and `serverSdk(server)` stay right;
 * the Reverb app variables that `startRingcast` sets are removed so they do not override it.
 */
export function useConfiguredRingcast({ workers = 2, ...config }) {
  const file = writeConfig(config);
  return useRingcast({
    workers,
    args: ['--config', file],
    env: { REVERB_APP_ID: undefined, REVERB_APP_KEY: undefined, REVERB_APP_SECRET: undefined },
  });
}

/**
 * Like `useConfiguredRingcast`, for a cluster: one Redis (`startRedis`) and `nodes` ringcast
 * processes on it, each on its own port with the same config file, joined through Laravel's
 * variables (`REVERB_SCALING_ENABLED=true`, `REDIS_HOST`, `REDIS_PORT`). Returns `{ it }`:
 * `it(name, async ({ nodes, redis, defer }) => ...)`, where `nodes[i]` is a server as
 * `startRingcast` returns it plus `node`, its cluster node id from its start-up line. A failing
 * test's error carries what every node printed.
 */
export function useCluster({ nodes: count = 3, workers = 2, env = {}, args = [], timeout = TEST_TIMEOUT_MS, ...config }) {
  const file = writeConfig(config);
  let redis = null;
  const nodes = [];
  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < count; i++) {
      const server = await startRingcast({
        workers,
        args: ['--config', file, ...args],
        env: {
          REVERB_APP_ID: undefined,
          REVERB_APP_KEY: undefined,
          REVERB_APP_SECRET: undefined,
          REVERB_SCALING_ENABLED: 'true',
          REDIS_HOST: '127.0.0.1',
          REDIS_PORT: String(redis.port),
          ...env,
        },
      });
      const m = /ringcast node ([0-9a-f]{16}) joined the cluster on (\S+)/.exec(server.output());
      server.node = m?.[1];
      server.joined = m?.[2];
      nodes.push(server);
    }
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });
  const it = (name, fn) =>
    test(name, { timeout }, async () => {
      if (nodes.length !== count) throw new Error('the cluster is not running (see the suite hook failure)');
      const cleanups = [];
      const defer = (f) => cleanups.push(f);
      try {
        await fn({ nodes, redis, defer });
      } catch (err) {
        if (err && typeof err === 'object') {
          const out = nodes
            .map((n, i) => `--- node ${i}${n.alive() ? '' : ' (exited)'} ---\n${n.output()}`)
            .join('\n');
          err.message = `${err.message}\n${out}`;
        }
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
    });
  return { it };
}

/** The default test app's credentials plus `settings`, for the `apps` list of a config. */
export function defaultApp(settings = {}) {
  return { id: APP.id, key: APP.key, secret: APP.secret, ...settings };
}

// ---------------------------------------------------------------------------------------------
// Server SDK

/** The `pusher` server SDK for `app` (default: the test app) at this ringcast. */
export function sdkFor(server, app = server.app, extra = {}) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: server.host,
    port: String(server.port),
    useTLS: false,
    timeout: STEP_TIMEOUT_MS,
    ...extra,
  });
}

/** Awaits an SDK call and returns `{status, body}` whether or not it succeeded. */
export async function apiCall(promise) {
  try {
    const res = await promise;
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, text };
  } catch (err) {
    if (err && typeof err.status === 'number') return { status: err.status, body: null, text: err.body };
    throw err;
  }
}

/** Awaits an SDK call that must answer 200 and returns its JSON body. */
export async function apiJson(promise, what = 'the API call') {
  const r = await apiCall(promise);
  if (r.status !== 200) throw new Error(`${what} answered ${r.status}: ${r.text}`);
  return r.body;
}

// ---------------------------------------------------------------------------------------------
// Waits

/** Calls `fn` until it returns a truthy value (which it resolves with) or `ms` pass. */
export async function eventually(fn, what, ms = STEP_TIMEOUT_MS, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(every);
  }
}

/** A promise and its resolve function. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

// ---------------------------------------------------------------------------------------------
// Raw Pusher client

/** Parses a frame's `data` the way the protocol sends it: a JSON string (decoded) or absent. */
export function dataOf(frame) {
  if (typeof frame.data !== 'string') return frame.data;
  try {
    return JSON.parse(frame.data);
  } catch {
    return frame.data;
  }
}

/**
 * A raw Pusher connection that records every frame. `frames` holds all parsed frames in arrival
 * order; `take(pred)` resolves with the first frame matching `pred` that no earlier `take`
 * returned; `count(pred)` counts every frame so far.
 */
export class RawPusher {
  constructor(server, defer, { key = server.app.key, headers = {}, query } = {}) {
    const q = query ?? 'protocol=7&client=js&version=8.6.0&flash=false';
    this.url = `${server.wsUrl}/app/${encodeURIComponent(key)}?${q}`;
    this.ws = new WebSocket(this.url, { perMessageDeflate: false, headers });
    defer(() => this.ws.terminate());
    this.frames = [];
    this.taken = new Set();
    this.watchers = [];
    this.socketId = null;
    this.upgradeStatus = null;
    this.ws.on('message', (data, isBinary) => {
      let frame;
      try {
        frame = JSON.parse(data.toString('utf8'));
      } catch {
        frame = { event: '(unparsable)', raw: data.toString('utf8'), isBinary };
      }
      this.frames.push(frame);
      this.notify();
    });
    this.ws.on('error', () => {
      // The close promise reports the outcome.
    });
    this.ws.on('unexpected-response', (_req, res) => {
      this.upgradeStatus = res.statusCode;
      this.ws.terminate();
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
        this.notify();
      });
    });
  }

  notify() {
    const ws = this.watchers;
    this.watchers = [];
    for (const w of ws) w();
  }

  /** Waits for `pusher:connection_established` and records the socket id. */
  async established() {
    const f = await this.take((m) => m.event === 'pusher:connection_established', 'pusher:connection_established');
    const data = dataOf(f);
    this.socketId = data.socket_id;
    this.activityTimeout = data.activity_timeout;
    return data;
  }

  /** Resolves with the first untaken frame matching `pred`. */
  async take(pred, what = 'a frame', ms = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = 0; i < this.frames.length; i++) {
        if (!this.taken.has(i) && pred(this.frames[i])) {
          this.taken.add(i);
          return this.frames[i];
        }
      }
      if (this.closeInfo) {
        throw new Error(
          `socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}; frames: ${this.dump()}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; frames: ${this.dump()}`);
      await within(new Promise((r) => this.watchers.push(r)), what, left).catch(() => {});
    }
  }

  /** Takes the next frame with this event (and channel, when given). */
  event(event, channel, ms) {
    return this.take(
      (m) => m.event === event && (channel === undefined || m.channel === channel),
      `${event}${channel ? ` on ${channel}` : ''}`,
      ms,
    );
  }

  /** How many frames so far match `pred`. */
  count(pred) {
    return this.frames.filter(pred).length;
  }

  /** The frames so far as text, for failure messages. */
  dump() {
    const s = JSON.stringify(this.frames);
    return s.length > 2000 ? `${s.slice(0, 2000)}...` : s;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Sends `pusher:subscribe` with the given auth fields. */
  subscribe(channel, { auth, channel_data } = {}) {
    const data = { channel };
    if (auth !== undefined) data.auth = auth;
    if (channel_data !== undefined) data.channel_data = channel_data;
    this.send({ event: 'pusher:subscribe', data });
  }

  /** Subscribes with a signature from `sdk.authorizeChannel` (presence: as `user`). */
  subscribeSigned(sdk, channel, user) {
    const presence = channel.startsWith('presence-') ? { user_id: String(user), user_info: { name: `User ${user}` } } : undefined;
    const a = sdk.authorizeChannel(this.socketId, channel, presence);
    this.subscribe(channel, { auth: a.auth, channel_data: a.channel_data });
  }

  /** Waits for `pusher_internal:subscription_succeeded` on `channel`; returns its decoded data. */
  async succeeded(channel, ms) {
    const f = await this.take(
      (m) =>
        (m.event === 'pusher_internal:subscription_succeeded' || m.event === 'pusher:subscription_error') &&
        m.channel === channel,
      `subscription_succeeded on ${channel}`,
      ms,
    );
    if (f.event !== 'pusher_internal:subscription_succeeded') {
      throw new Error(`subscription to ${channel} failed: ${JSON.stringify(f)}`);
    }
    return dataOf(f);
  }

  unsubscribe(channel) {
    this.send({ event: 'pusher:unsubscribe', data: { channel } });
  }

  /** Sends `pusher:ping` and waits for the `pusher:pong` (proof the connection is still served). */
  async roundTrip(ms) {
    this.send({ event: 'pusher:ping', data: {} });
    await this.event('pusher:pong', undefined, ms);
  }

  /** Drops the TCP connection without a close frame (a crashed tab, a lost network). */
  drop() {
    this.ws._socket?.destroy();
  }
}

/** A raw client that has received `pusher:connection_established`. */
export async function rawPusher(server, defer, opts) {
  const c = new RawPusher(server, defer, opts);
  await c.established();
  return c;
}

/** Opens `n` raw clients at once (so the kernel spreads them over the workers). */
export function rawPushers(server, defer, n, opts) {
  return Promise.all(Array.from({ length: n }, () => rawPusher(server, defer, opts)));
}

/** Frames of one event (and channel) so far, decoded. */
export function eventsOf(client, event, channel) {
  return client.frames
    .filter((m) => m.event === event && (channel === undefined || m.channel === channel))
    .map(dataOf);
}

/** A raw client of `server` subscribed to `channel` (signed for private and presence channels,
 * as `user` on presence ones), once `subscription_succeeded` arrived. */
export async function subscribedClient(server, defer, channel, user) {
  const c = await rawPusher(server, defer);
  if (channel.startsWith('private-') || channel.startsWith('presence-')) {
    c.subscribeSigned(sdkFor(server), channel, user);
  } else {
    c.subscribe(channel);
  }
  await c.succeeded(channel);
  return c;
}
