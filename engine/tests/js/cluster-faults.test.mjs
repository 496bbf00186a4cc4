// A cluster when things fail: ringcast nodes on one Debian redis-server (started on a free
// loopback port with persistence off), each suite with its own Redis and nodes, and a node
// timeout of a few seconds (RINGCAST_NODE_TIMEOUT) so that the reaper acts within the test.
//
// - A node killed with SIGKILL: the survivors remove its presence members (member_removed to
//   their own members, only for users it alone had), its subscriptions and its connections,
//   within the node timeout, and the query API answers without it on every node.
// - A node frozen (SIGSTOP) for longer than its lease: reaped as dead; when it runs again it
//   registers from scratch, its members come back as new joins, nothing it sent while it was
//   away resurrects anything, and its clients stay connected.
// - Redis killed and started again empty under steady publishing through two nodes: no
//   client is disconnected, each node's own subscribers keep getting what is posted to it,
//   and once Redis is back every subscriber has every accepted event exactly once and in
//   each publisher's order; subscriptions, members and counts are back in Redis.
// - Redis dropping every connection (CLIENT KILL) and keeping its data: the nodes reconnect and
//   send what they held, each operation applied once, with nothing to re-assert.
// - Redis frozen (SIGSTOP) while a publisher floods a node: the node holds what Redis must
//   carry within its buffer (RINGCAST_CLUSTER_BUFFER_BYTES), answers 503 with a JSON body
//   beyond it, its memory stays bounded, and once Redis runs again every accepted event
//   reaches every subscriber exactly once.
// - Redis not there at start-up: the node stops with one line naming the Redis and exit code 1
//   (the behaviour the README's "Scaling out" documents), instead of serving alone.
// - A Redis that wants a password (an ACL user, and the default user's requirepass) and a
//   database other than 0: nodes configured either way (REDIS_URL with user, password and /3;
//   REDIS_PASSWORD and REDIS_DB) join one cluster whose keys are all in database 3, and a wrong
//   password stops a node with one line that does not show it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sleep } from './helpers.mjs';
import { APP, freePort, ringcastBin, startRedis, startRingcast } from './server.mjs';
import { apiCall, apiJson, dataOf, defaultApp, eventsOf, eventually, rawPusher, sdkFor, useCluster } from './support.mjs';

/** Seconds a silent node lives before it is reaped, in these suites. */
const NODE_TIMEOUT = 4;
const FAULT_TEST_MS = 120_000;

/** Raw clients on `node`, subscribed to `channel` (signed as `user` on a presence channel). */
async function subscribers(node, defer, channel, n, user) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await rawPusher(node, defer);
    if (user === undefined) c.subscribe(channel);
    else c.subscribeSigned(sdkFor(node), channel, user);
    await c.succeeded(channel);
    out.push(c);
  }
  return out;
}

/** User ids of a presence channel, asked of `node`. */
async function users(node, channel) {
  const r = await apiJson(sdkFor(node).get({ path: `/channels/${channel}/users` }));
  return r.users.map((u) => u.id).sort();
}

/** The cluster-wide subscription count of `channel`, asked of `node`. */
async function subscriptions(node, channel) {
  const r = await apiJson(sdkFor(node).get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } }));
  return r.subscription_count ?? 0;
}

/** Resident memory of process `pid` in bytes. */
function rss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/** Keys of the cluster (prefix `reverb`) that name node `id`. */
async function keysOf(redis, id) {
  const out = await redis.cli('--scan', '--pattern', `reverb:*${id}*`);
  return out.trim().split('\n').filter(Boolean);
}

const faultCluster = (extra = {}) =>
  useCluster({
    nodes: 3,
    workers: 2,
    timeout: FAULT_TEST_MS,
    env: { RINGCAST_NODE_TIMEOUT: String(NODE_TIMEOUT), ...extra.env },
    apps: [defaultApp()],
    ...extra,
  });

describe('a node killed with SIGKILL', () => {
  const { it } = faultCluster();

  it('is reaped within the node timeout: its members leave, its counts and connections go, once', async ({
    nodes,
    redis,
    defer,
  }) => {
    const [a, b, c] = nodes;
    const room = 'presence-fault-kill';
    const plain = 'fault-kill-plain';
    const [watcher] = await subscribers(a, defer, room, 1, 1);
    await subscribers(c, defer, room, 2, 2); // user 2: only on the node that dies
    await subscribers(b, defer, room, 1, 3); // user 3: on b and on the node that dies
    await subscribers(c, defer, room, 1, 3);
    const [listener] = await subscribers(a, defer, plain, 1);
    await subscribers(c, defer, plain, 3);
    await eventually(async () => (await users(b, room)).join() === '1,2,3', 'three members on every node');
    assert.equal(await subscriptions(b, plain), 4);

    const killedAt = Date.now();
    c.signal('SIGKILL');
    await c.exited();
    const gone = await watcher.event('pusher_internal:member_removed', room, (NODE_TIMEOUT + 3) * 1000);
    const after = (Date.now() - killedAt) / 1000;
    console.log(`a SIGKILLed node's member was removed on the others ${after.toFixed(1)} s after the kill (node timeout ${NODE_TIMEOUT} s)`);
    assert.deepEqual(JSON.parse(gone.data), { user_id: '2' });
    assert.ok(after <= NODE_TIMEOUT + 1, `reaped within the node timeout: ${after} s`);
    for (const n of [a, b]) {
      assert.deepEqual(await users(n, room), ['1', '3'], 'user 3 is still on b');
      assert.equal(await subscriptions(n, plain), 1, "only a's subscriber is left");
    }
    await sleep(1500);
    assert.equal(
      watcher.count((f) => f.event === 'pusher_internal:member_removed'),
      1,
      'member_removed once, and never for a user another node has',
    );
    const nodeSet = (await redis.cli('SMEMBERS', 'reverb:nodes')).trim().split('\n').sort();
    assert.deepEqual(nodeSet, [a.node, b.node].sort());
    assert.deepEqual(await keysOf(redis, c.node), [], 'nothing of the dead node is left in Redis');
    const conns = await apiJson(sdkFor(b).get({ path: '/connections' }));
    assert.equal(conns.connections, 3, "a's two and b's one");
    // The survivors still serve each other.
    await apiJson(sdkFor(b).trigger(plain, 'after', { ok: true }));
    await listener.event('after', plain);
  });
});

describe('a node frozen for longer than its lease', () => {
  const { it } = faultCluster();

  it('is reaped, then registers from scratch when it runs again, with its clients still connected', async ({
    nodes,
    defer,
  }) => {
    const [a, b, c] = nodes;
    const room = 'presence-fault-frozen';
    const plain = 'fault-frozen-plain';
    const [watcher] = await subscribers(a, defer, room, 1, 1);
    const [frozenMember] = await subscribers(c, defer, room, 1, 4);
    const [frozenListener] = await subscribers(c, defer, plain, 1);
    await subscribers(b, defer, plain, 1);
    await watcher.event('pusher_internal:member_added', room);

    c.signal('SIGSTOP');
    defer(() => c.signal('SIGCONT'));
    const gone = await watcher.event('pusher_internal:member_removed', room, (NODE_TIMEOUT + 3) * 1000);
    assert.deepEqual(JSON.parse(gone.data), { user_id: '4' });
    assert.deepEqual(await users(a, room), ['1']);
    assert.equal(await subscriptions(b, plain), 1);
    // Published while it is frozen: lost for its clients (its inbox went with it).
    await apiJson(sdkFor(a).trigger(plain, 'while-away', {}));

    c.signal('SIGCONT');
    const back = await watcher.event('pusher_internal:member_added', room, 10_000);
    assert.deepEqual(JSON.parse(back.data), { user_id: '4', user_info: { name: 'User 4' } });
    await eventually(async () => (await users(b, room)).join() === '1,4', 'user 4 listed again');
    await eventually(async () => (await subscriptions(a, plain)) === 2, 'its subscription counted again');
    await apiJson(sdkFor(a).trigger(plain, 'after', { n: 1 }));
    await frozenListener.event('after', plain);
    assert.equal(frozenMember.closeInfo, undefined, 'its clients stay connected');
    assert.equal(frozenListener.closeInfo, undefined, 'its clients stay connected');
    await sleep(1500);
    assert.equal(watcher.count((f) => f.event === 'pusher_internal:member_added'), 2, 'joined, and back once');
    assert.equal(watcher.count((f) => f.event === 'pusher_internal:member_removed'), 1);
    assert.match(c.output(), /registering again/);
  });
});

describe('Redis restarted empty under steady publishing', () => {
  const { it } = faultCluster();

  it('loses nothing and repeats nothing for the clients that stayed, and the facts come back', async ({
    nodes,
    redis,
    defer,
  }) => {
    const [a, b, c] = nodes;
    const ch = 'fault-stream';
    const room = 'presence-fault-restart';
    const subs = [];
    for (const n of nodes) subs.push(...(await subscribers(n, defer, ch, 2)));
    const [member] = await subscribers(b, defer, room, 1, 7);
    const [watcher] = await subscribers(a, defer, room, 1, 8);
    assert.equal(await subscriptions(c, ch), 6);

    // Two publishers, through a and through b, each posting its next event once the last was
    // answered (a 503 is retried, as Laravel's queue does).
    let running = true;
    const accepted = [[], []];
    let refused = 0;
    const publisher = async (p, node) => {
      const sdk = sdkFor(node);
      for (let i = 0; running; ) {
        const r = await apiCall(sdk.trigger(ch, 'seq', { p, i }));
        if (r.status === 200) {
          accepted[p].push(i);
          i++;
        } else {
          assert.equal(r.status, 503, r.text);
          refused++;
          await sleep(20);
        }
      }
    };
    const publishers = [publisher(0, a), publisher(1, b)];
    await sleep(1000);
    const beforeCrash = accepted[0].length;
    await redis.crash();
    await sleep(1000);
    // While Redis is away each node still serves its own subscribers.
    const onA = eventsOf(subs[0], 'seq', ch).filter((e) => e.p === 0).length;
    await eventually(
      () => eventsOf(subs[0], 'seq', ch).filter((e) => e.p === 0).length > onA + 5,
      "a's subscribers getting what is posted to a while Redis is down",
    );
    assert.ok(accepted[0].length > beforeCrash, 'the API accepts while Redis is down');
    await redis.restart();
    await sleep(3000);
    running = false;
    await Promise.all(publishers);
    const total = accepted[0].length + accepted[1].length;
    console.log(`Redis restarted under publishing: ${total} events accepted (${refused} answered 503 and retried)`);

    for (const [i, s] of subs.entries()) {
      await eventually(
        () => eventsOf(s, 'seq', ch).length >= total,
        `every accepted event on subscriber ${i}`,
        20_000,
      );
    }
    await sleep(1000);
    for (const [i, s] of subs.entries()) {
      const got = eventsOf(s, 'seq', ch);
      assert.equal(got.length, total, `subscriber ${i}: no duplicates`);
      for (const p of [0, 1]) {
        const seq = got.filter((e) => e.p === p).map((e) => e.i);
        assert.deepEqual(seq, accepted[p], `subscriber ${i}: publisher ${p}'s events, each once, in order`);
      }
      assert.equal(s.closeInfo, undefined, `subscriber ${i} stayed connected`);
    }
    assert.equal(member.closeInfo, undefined);
    assert.equal(watcher.closeInfo, undefined);
    for (const n of nodes) assert.match(n.output(), /re-asserting .*data_lost=true/, 'each node re-asserted');
    // The facts are back in the empty Redis: counts, members, and a new joiner sees them.
    for (const n of nodes) {
      assert.equal(await subscriptions(n, ch), 6, 'the six subscriptions');
      assert.deepEqual(await users(n, room), ['7', '8']);
    }
    const [late] = await subscribers(c, defer, room, 1, 9);
    const members = late.frames.find((f) => f.event === 'pusher_internal:subscription_succeeded');
    assert.deepEqual(Object.keys(JSON.parse(members.data).presence.hash).sort(), ['7', '8', '9']);
    assert.equal(
      watcher.count((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === '7'),
      0,
      'no member is announced again',
    );
  });
});

describe('Redis dropping every connection and keeping its data', () => {
  const { it } = faultCluster({ nodes: 2 });

  it('is a blip: what was held goes out once, nothing is re-asserted, nothing repeats', async ({
    nodes,
    redis,
    defer,
  }) => {
    const [a, b] = nodes;
    const ch = 'fault-blip';
    const subs = [...(await subscribers(a, defer, ch, 2)), ...(await subscribers(b, defer, ch, 2))];
    let running = true;
    const accepted = [[], []];
    const publisher = async (p, node) => {
      const sdk = sdkFor(node);
      for (let i = 0; running; ) {
        const r = await apiCall(sdk.trigger(ch, 'seq', { p, i }));
        if (r.status === 200) accepted[p].push(i++);
        else await sleep(20);
      }
    };
    const publishers = [publisher(0, a), publisher(1, b)];
    for (let k = 0; k < 3; k++) {
      await sleep(700);
      await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    }
    await sleep(1500);
    running = false;
    await Promise.all(publishers);
    const total = accepted[0].length + accepted[1].length;
    for (const s of subs) await eventually(() => eventsOf(s, 'seq', ch).length >= total, 'every accepted event', 20_000);
    await sleep(1000);
    for (const [i, s] of subs.entries()) {
      const got = eventsOf(s, 'seq', ch);
      assert.equal(got.length, total, `subscriber ${i}: no duplicates`);
      for (const p of [0, 1]) {
        assert.deepEqual(got.filter((e) => e.p === p).map((e) => e.i), accepted[p], `subscriber ${i}, publisher ${p}`);
      }
    }
    for (const n of nodes) {
      assert.match(n.output(), /reconnected to Redis/);
      assert.doesNotMatch(n.output(), /re-asserting/, 'Redis kept everything: nothing to re-assert');
    }
    assert.equal(await subscriptions(b, ch), 4);
  });
});

describe('Redis frozen while a publisher floods a node', () => {
  const BUFFER = 2 << 20;
  // Once Redis runs again the other node gets the whole backlog at once, and its subscriber is
  // sent all of it in one go: its out-queue must hold that much (beside its kernel send buffer)
  // or it is closed with 4100, as any client sent more than it can take.
  const { it } = faultCluster({
    nodes: 2,
    env: { RINGCAST_CLUSTER_BUFFER_BYTES: String(BUFFER), RINGCAST_MAX_OUTBOUND_BYTES: String(4 * BUFFER) },
  });

  it('holds within its buffer, answers 503 with a JSON body beyond it, and delivers every accepted event once Redis runs', async ({
    nodes,
    redis,
    defer,
  }) => {
    const [a, b] = nodes;
    const ch = 'fault-flood';
    const [here] = await subscribers(a, defer, ch, 1);
    const [there] = await subscribers(b, defer, ch, 1);
    const baseline = rss(a.pid);
    redis.signal('SIGSTOP');
    defer(() => redis.signal('SIGCONT'));
    const payload = 'x'.repeat(8000);
    const sdk = sdkFor(a);
    const accepted = [];
    let refused = null;
    let refusals = 0;
    let peak = baseline;
    const until = Date.now() + 8000;
    let next = 0;
    const worker = async () => {
      while (Date.now() < until) {
        const i = next++;
        const r = await apiCall(sdk.trigger(ch, 'big', { i, payload }));
        if (r.status === 200) accepted.push(i);
        else {
          assert.equal(r.status, 503, r.text);
          refused = r;
          refusals++;
        }
        peak = Math.max(peak, rss(a.pid));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    console.log(
      `Redis frozen: ${accepted.length} events of 8 KB accepted, ${refusals} answered 503; node RSS ${(baseline / 2 ** 20).toFixed(1)} MiB before, ${(peak / 2 ** 20).toFixed(1)} MiB at most (buffer ${BUFFER / 2 ** 20} MiB)`,
    );
    assert.ok(refused, 'the API answers 503 beyond the buffer');
    const body = JSON.parse(refused.text);
    assert.equal(typeof body.error, 'string', `a JSON body: ${refused.text}`);
    assert.equal(body.code, 503);
    assert.ok(accepted.length * 8000 >= BUFFER / 2, 'the buffer was used before refusing');
    assert.ok(peak - baseline < 48 * 2 ** 20, `memory stays bounded: ${peak - baseline} bytes more`);

    redis.signal('SIGCONT');
    for (const [who, s] of [
      ['here', here],
      ['there', there],
    ]) {
      await eventually(() => eventsOf(s, 'big', ch).length >= accepted.length, `every accepted event ${who}`, 30_000);
    }
    await sleep(1000);
    const want = [...accepted].sort((x, y) => x - y);
    for (const s of [here, there]) {
      const got = eventsOf(s, 'big', ch).map((e) => e.i);
      assert.equal(got.length, accepted.length, 'no duplicates');
      assert.deepEqual([...got].sort((x, y) => x - y), want, 'the accepted events, each once');
    }
  });
});

/**
 * Runs `ringcast start` with the test app and `env` until it exits by itself (within `ms`, else
 * it is killed and the test fails); resolves with its exit code and everything it printed.
 */
async function startUntilExit(env, ms = 15_000) {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'ringcast-test-'));
  const child = spawn(ringcastBin(), ['start', '--host', '127.0.0.1', '--port', String(await freePort())], {
    cwd,
    env: { ...process.env, REVERB_APP_ID: APP.id, REVERB_APP_KEY: APP.key, REVERB_APP_SECRET: APP.secret, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code, signal] = await new Promise((resolve) => child.on('exit', (...a) => resolve(a)));
  clearTimeout(timer);
  rmSync(cwd, { recursive: true, force: true });
  assert.equal(signal, null, `ringcast did not stop by itself within ${ms} ms:\n${output}`);
  return { code, output };
}

describe('Redis unreachable at start-up', () => {
  test('a node with scaling on stops with one line naming the Redis, and exit code 1', { timeout: 30_000 }, async () => {
    const port = await freePort(); // nothing listens there
    const { code, output } = await startUntilExit({
      REVERB_SCALING_ENABLED: 'true',
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(port),
    });
    assert.equal(code, 1, output);
    const lines = output.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${output}`);
    assert.match(lines[0], new RegExp(`^ringcast: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/0: .*refused`, 'i'));
  });
});

describe('a Redis with a password, an ACL user and database 3', () => {
  const USER = 'ringcast-acl';
  const USER_PW = 'acl-pw-7f3e';
  const DEFAULT_PW = 'default-pw-91c4';
  let redis = null;
  const nodes = [];
  /** `redis-cli` against database `db`, as the ACL user. */
  const cli = (db, ...args) => redis.cli('--user', USER, '--pass', USER_PW, '--no-auth-warning', '-n', String(db), ...args);
  before(async () => {
    redis = await startRedis();
    await redis.cli('ACL', 'SETUSER', USER, 'on', `>${USER_PW}`, '~*', '&*', '+@all');
    await redis.cli('CONFIG', 'SET', 'requirepass', DEFAULT_PW);
    const common = { REVERB_SCALING_ENABLED: 'true', REDIS_HOST: undefined, REDIS_PORT: undefined };
    // One node names the ACL user, its password and the database in REDIS_URL; the other the
    // default user's password and the database in Laravel's separate variables.
    nodes.push(await startRingcast({ workers: 2, env: { ...common, REDIS_URL: `redis://${USER}:${USER_PW}@127.0.0.1:${redis.port}/3` } }));
    nodes.push(
      await startRingcast({
        workers: 2,
        env: { ...common, REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port), REDIS_PASSWORD: DEFAULT_PW, REDIS_DB: '3' },
      }),
    );
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  test('nodes join one cluster whose keys are in database 3, and never print a password', { timeout: 30_000 }, async () => {
    assert.equal(nodes.length, 2, 'both nodes started');
    const cleanups = [];
    const defer = (f) => cleanups.push(f);
    try {
      const ids = nodes.map((n) => /ringcast node ([0-9a-f]{16}) joined the cluster on (\S+)/.exec(n.output()));
      assert.ok(ids[0] && ids[1], nodes.map((n) => n.output()).join('\n'));
      assert.equal(ids[0][2], `redis://${USER}@127.0.0.1:${redis.port}/3`);
      assert.equal(ids[1][2], `redis://[password]@127.0.0.1:${redis.port}/3`);
      for (const n of nodes) {
        assert.doesNotMatch(n.output(), new RegExp(`${USER_PW}|${DEFAULT_PW}`), 'no password in the output');
      }
      // One cluster: a publish through the node of the default user reaches a subscriber of
      // the node of the ACL user.
      const ch = 'redis-auth-db';
      const sub = await rawPusher(nodes[0], defer);
      sub.subscribe(ch);
      await sub.succeeded(ch);
      await apiJson(sdkFor(nodes[1]).trigger(ch, 'hello', { n: 1 }));
      assert.deepEqual(dataOf(await sub.event('hello', ch)), { n: 1 });
      // Every key is in database 3, none in database 0.
      const members = (await cli(3, 'SMEMBERS', 'reverb:nodes')).trim().split('\n').sort();
      assert.deepEqual(members, [ids[0][1], ids[1][1]].sort());
      const keys = (await cli(3, '--scan', '--pattern', 'reverb:*')).trim().split('\n');
      assert.ok(keys.includes(`reverb:subs:${APP.id}:${ch}`), `the subscription's keys in database 3: ${keys}`);
      assert.equal((await cli(0, 'DBSIZE')).trim(), '0', 'nothing in database 0');
    } finally {
      for (const f of cleanups.reverse()) await f();
    }
  });

  test('a wrong password stops a node with one line that does not show it, and exit code 1', { timeout: 30_000 }, async () => {
    const WRONG = 'not-the-pw-5d2a';
    for (const env of [
      { REDIS_URL: `redis://${USER}:${WRONG}@127.0.0.1:${redis.port}/3` },
      { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port), REDIS_PASSWORD: WRONG, REDIS_DB: '3' },
    ]) {
      const { code, output } = await startUntilExit({ REVERB_SCALING_ENABLED: 'true', ...env });
      assert.equal(code, 1, output);
      const lines = output.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${output}`);
      assert.match(lines[0], new RegExp(`^ringcast: cannot reach Redis at redis://(${USER}|\\[password\\])@127\\.0\\.0\\.1:${redis.port}/3: `));
      assert.ok(!output.includes(WRONG), `the password is not shown: ${output}`);
    }
  });
});
