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

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe } from 'node:test';
import { sleep } from './helpers.mjs';
import { apiCall, apiJson, defaultApp, eventsOf, eventually, rawPusher, sdkFor, useCluster } from './support.mjs';

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
  const { it } = faultCluster({
    nodes: 2,
    env: { RINGCAST_CLUSTER_BUFFER_BYTES: String(BUFFER) },
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
