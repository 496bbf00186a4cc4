// A restart without downtime of one node of a two-node cluster (Debian's redis-server on a free
// loopback port with persistence off, nodes joined through REVERB_SCALING_ENABLED, REDIS_HOST
// and REDIS_PORT, as in cluster.test.mjs).
//
// pusher-js clients on both nodes are members of one presence channel (user 3 has a tab on
// each node) while a publisher posts to it steadily through the other node and a connect loop
// opens WebSockets to the node that restarts. `ringcast restart --port` starts a new process
// there, which joins the cluster as a new node id; once it serves, the old process closes its
// clients with 4200, its leaves reach Redis and it says goodbye (its node id and every key of
// it leave Redis). Then:
//
// - the restarted node's clients come back (the test prints how long they were away and fails
//   only if one never does), see every publish made while they were connected to either
//   process, none twice, and reach the `connected` state without `unavailable` in between;
// - the other node's clients are untouched: every accepted publish, once, in order, and no
//   `member_removed` for a user who still has a connection somewhere;
// - the query API of either node ends with the four members, each once, and every pusher-js
//   client sees the same four;
// - no connection to the restarted node's port is refused or reset.
//
// As in engine/tests/restart.rs, the test sets `net.ipv4.tcp_migrate_req = 1` (what
// `tuning/apply.sh` sets) when it is 0 and it can: without it, connections waiting in the old
// process's accept queue when it stops listening are reset rather than moved to the new one.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { before, describe } from 'node:test';
import { promisify } from 'node:util';
import Pusher from 'pusher-js';
import WebSocket from 'ws';
import { sleep, within } from './helpers.mjs';
import { ringcastBin } from './server.mjs';
import { QUIET_MS, apiJson, dataOf, defaultApp, eventually, sdkFor, useCluster } from './support.mjs';

const ROOM = 'presence-restart-room';
/** Users on the node that restarts, and on the other one: user 3 is on both. */
const RESTARTED_USERS = ['1', '2', '3'];
const OTHER_USERS = ['3', '4'];
const ALL_USERS = ['1', '2', '3', '4'];
/** How long the restart, and each client's return, may take before the test fails. */
const LIVENESS_MS = 30_000;
const TEST_MS = 120_000;
const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

/** The node ids a node's output announced, in order (a restarted node announces two). */
function announcedNodes(server) {
  return [...server.output().matchAll(/ringcast node ([0-9a-f]{16}) joined the cluster/g)].map((m) => m[1]);
}

/**
 * A pusher-js client of `node`, member `user` of ROOM (signed by the SDK, as Laravel's
 * broadcasting route does), that records its life: the `tick` numbers it got per connection
 * (`epochs`), its state changes, the errors pusher-js reported (a close's code), when each
 * subscription succeeded, and the member events of others.
 */
function member(node, defer, user) {
  const signer = sdkFor(node);
  const client = new Pusher(node.app.key, {
    wsHost: node.host,
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) =>
        callback(null, signer.authorizeChannel(socketId, channelName, { user_id: user, user_info: { name: `User ${user}` } })),
    },
  });
  defer(() => client.disconnect());
  const m = { user, client, epochs: [], states: [], errors: [], subscribed: [], added: [], removed: [], lastError: null };
  client.connection.bind('state_change', ({ current }) => m.states.push(current));
  client.connection.bind('connected', () => m.epochs.push([]));
  client.connection.bind('error', (err) => {
    // A close is reported twice: as a PusherError with its code, and as the WebSocketError
    // that wraps it. Anything else is kept as its description.
    const code = err?.data?.code ?? err?.error?.data?.code;
    m.errors.push(code ?? `${err?.type}: ${err?.error?.message ?? JSON.stringify(err?.error ?? err)}`);
    m.lastError = Date.now();
  });
  m.channel = client.subscribe(ROOM);
  m.channel.bind('pusher:subscription_succeeded', () => m.subscribed.push(Date.now()));
  m.channel.bind('pusher:subscription_error', (err) => m.errors.push(`subscription_error ${JSON.stringify(err)}`));
  m.channel.bind('pusher:member_added', (x) => m.added.push(x.id));
  m.channel.bind('pusher:member_removed', (x) => m.removed.push(x.id));
  m.channel.bind('tick', (d) => m.epochs.at(-1).push(d.n));
  /** The states since the first `connected` (the first `connecting` may come before the binding). */
  m.since = () => m.states.slice(m.states.indexOf('connected'));
  m.ids = () => {
    const ids = [];
    m.channel.members.each((x) => ids.push(x.id));
    return ids.sort();
  };
  return m;
}

/**
 * Opens WebSockets to `node` one after another until `stop.done`, counting into `out`: each
 * must be answered with `pusher:connection_established`, or `pusher:error` 4200 by a process
 * that just stopped accepting. Anything else (a refused or reset connection, no answer) is
 * recorded in `out.failures`.
 */
async function connectLoop(node, stop, out) {
  const url = `${node.wsUrl}/app/${node.app.key}?protocol=7&client=js&version=8.6.0&flash=false`;
  while (!stop.done) {
    out.attempts++;
    const result = await new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const done = (r) => {
        clearTimeout(timer);
        ws.terminate();
        resolve(r);
      };
      const timer = setTimeout(() => done('no answer within 10 s'), 10_000);
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString('utf8'));
        if (frame.event === 'pusher:connection_established') done('established');
        else if (frame.event === 'pusher:error' && dataOf(frame)?.code === 4200) done('4200');
        else done(`first frame ${data}`);
      });
      ws.on('unexpected-response', (_req, res) => done(`HTTP ${res.statusCode}`));
      ws.on('error', (err) => done(err.code ?? err.message));
      ws.on('close', (code) => done(`closed (${code}) before a frame`));
    });
    if (result === '4200') out.told4200++;
    else if (result !== 'established') out.failures.push(result);
    await sleep(5);
  }
}

/**
 * Posts `tick` 1, 2, 3, ... to ROOM through `node`, each once the last was answered, until
 * `stop.done`; records into `out.accepted` and `out.failures`.
 */
async function publisher(node, stop, out) {
  const sdk = sdkFor(node);
  for (let n = 1; !stop.done; n++) {
    try {
      await apiJson(sdk.trigger(ROOM, 'tick', { n }), `publish ${n}`);
      out.accepted.push(n);
    } catch (err) {
      // The other node never refuses: a failure fails the test (and the number is not reused).
      out.failures.push(`${n}: ${err.message ?? err}`);
    }
    await sleep(10);
  }
}

/** Whether `xs` is `from, from + 1, ..., to`. */
function contiguous(xs) {
  return xs.every((x, i) => i === 0 || x === xs[i - 1] + 1);
}

describe('a node of a cluster restarted without downtime', () => {
  before(() => {
    if (readFileSync(MIGRATE_REQ, 'utf8').trim() !== '0') return;
    try {
      writeFileSync(MIGRATE_REQ, '1');
    } catch (err) {
      throw new Error(`${MIGRATE_REQ} is 0 and cannot be set (${err.message}): run tuning/apply.sh or the test as root`);
    }
  });
  const { it } = useCluster({
    nodes: 2,
    workers: 2,
    timeout: TEST_MS,
    env: { RINGCAST_SHUTDOWN_TIMEOUT: '5' },
    apps: [defaultApp()],
  });

  it('its clients come back, the other node loses nothing, and the members end right on both', async ({
    nodes,
    redis,
    defer,
  }) => {
    const [restarted, other] = nodes;
    const oldNode = restarted.node;
    const mine = RESTARTED_USERS.map((u) => member(restarted, defer, u));
    const theirs = OTHER_USERS.map((u) => member(other, defer, u));
    const everyone = [...mine, ...theirs];
    await eventually(() => everyone.every((m) => m.subscribed.length === 1), 'every client to join the room', LIVENESS_MS);
    await eventually(
      () => everyone.every((m) => m.ids().join() === ALL_USERS.join()),
      'every client to see the four members',
      LIVENESS_MS,
    );

    const stop = { done: false };
    const loopStop = { done: false };
    const published = { accepted: [], failures: [] };
    const loop = { attempts: 0, told4200: 0, failures: [] };
    const publishing = publisher(other, stop, published);
    const connecting = connectLoop(restarted, loopStop, loop);
    await sleep(1000);

    // What the other node's clients saw of the members from here on.
    const seenBefore = new Map(theirs.map((m) => [m, { added: m.added.length, removed: m.removed.length }]));
    const asked = Date.now();
    const before = { published: published.accepted.length, attempts: loop.attempts };
    const { stdout } = await within(
      promisify(execFile)(ringcastBin(), ['restart', '--port', String(restarted.port), '--timeout', '30']),
      '`ringcast restart` to return',
      LIVENESS_MS + 5_000,
    );
    assert.match(stdout, /^ringcast restarted: pid \[\d+\] -> pid \[\d+\]/);
    await eventually(() => mine.every((m) => m.subscribed.length === 2), "the restarted node's clients to resubscribe", LIVENESS_MS);
    const away = mine.map((m) => m.subscribed[1] - m.lastError);
    const back = mine.map((m) => m.subscribed[1] - asked);
    console.log(
      `the restarted node's clients resubscribed ${back.join(', ')} ms after \`ringcast restart\` began, ` +
        `${away.join(', ')} ms after their 4200`,
    );
    // The old process leaves the cluster (its drained leaves, then its goodbye) before it
    // prints that it handed over and becomes the supervisor.
    await eventually(() => restarted.output().includes('ringcast handed over to pid'), 'the old process to hand over', LIVENESS_MS);
    const during = { published: published.accepted.length, attempts: loop.attempts };
    // The publisher and the connect loop went on through the hand-over, and after it.
    await eventually(
      () => published.accepted.length > during.published + 20 && loop.attempts > during.attempts + 20,
      'publishes and connections after the hand-over',
      LIVENESS_MS,
    );
    stop.done = true;
    await publishing;
    loopStop.done = true;
    await connecting;
    const { accepted, failures } = published;
    console.log(
      `${accepted.length} publishes accepted by the other node (${during.published - before.published} while the node restarted); ` +
        `${loop.attempts} connections to the restarted node (${during.attempts - before.attempts} while it restarted, ${loop.told4200} told 4200)`,
    );
    assert.deepEqual(failures, [], 'the other node accepted every publish');
    assert.ok(before.published > 0 && during.published > before.published, `publishes before and during the restart: ${JSON.stringify({ before, during })}`);
    assert.ok(during.attempts > before.attempts, `connections during the restart: ${JSON.stringify({ before, during })}`);
    const last = accepted.at(-1);
    await eventually(() => everyone.every((m) => m.epochs.at(-1).at(-1) === last), 'every client to get the last publish', LIVENESS_MS);
    await sleep(QUIET_MS);

    // No connection to the restarted node was refused, reset or left unanswered.
    assert.deepEqual(loop.failures, [], 'every connection was established (or told 4200)');

    // The other node's clients: every accepted publish once, in order, on their one connection.
    for (const m of theirs) {
      assert.deepEqual(m.since(), ['connected'], `user ${m.user} on the other node kept its connection`);
      assert.deepEqual(m.epochs[0], accepted, `user ${m.user} on the other node got every accepted publish once, in order`);
      assert.deepEqual(m.errors, [], `user ${m.user} on the other node was sent no error`);
      assert.ok(!m.removed.includes('3') && !m.removed.includes('4'), `user ${m.user} saw no one leave who stayed: ${m.removed}`);
    }
    // The restarted node's clients: one connection to each process, nothing twice, and while
    // connected to either, nothing missing.
    for (const m of mine) {
      assert.equal(m.epochs.length, 2, `user ${m.user}: one connection to each process (states ${m.states})`);
      assert.ok(m.errors.length > 0 && m.errors.every((c) => c === 4200), `user ${m.user} was closed with 4200, and nothing else: ${m.errors}`);
      assert.deepEqual(
        m.since(),
        ['connected', 'connecting', 'connected'],
        `user ${m.user}: connected, then straight back (never unavailable)`,
      );
      const all = m.epochs.flat();
      assert.ok(
        all.every((n, i) => i === 0 || n > all[i - 1]),
        `user ${m.user}: in order, none twice: ${JSON.stringify(m.epochs)}`,
      );
      assert.equal(m.epochs[0][0], 1, `user ${m.user} got the first publish`);
      for (const [e, got] of m.epochs.entries()) {
        assert.ok(contiguous(got), `user ${m.user} lost a publish while connected (connection ${e}): ${JSON.stringify(got)}`);
      }
    }
    // Both nodes answer with the four members, each once, and so does every client.
    for (const [i, n] of nodes.entries()) {
      const users = await apiJson(sdkFor(n).get({ path: `/channels/${ROOM}/users` }));
      assert.deepEqual(users.users.map((u) => u.id).sort(), ALL_USERS, `the member list on node ${i}`);
      const info = await apiJson(sdkFor(n).get({ path: `/channels/${ROOM}`, params: { info: 'user_count' } }));
      assert.deepEqual(info, { occupied: true, user_count: 4 }, `the channel on node ${i}`);
    }
    for (const m of everyone) assert.deepEqual(m.ids(), ALL_USERS, `the members user ${m.user} sees`);
    // Users 1 and 2 had their only connections on the restarted node: the other node's
    // clients may see each leave and come back (the old process's leave reached Redis before
    // the new one's join) or nothing (the join came first), never one without the other.
    for (const m of theirs) {
      const from = seenBefore.get(m);
      const added = m.added.slice(from.added);
      const removed = m.removed.slice(from.removed);
      for (const u of ['1', '2']) {
        const n = (xs) => xs.filter((x) => x === u).length;
        assert.equal(n(added), n(removed), `user ${m.user} saw user ${u} leave and come back as often: +${added} -${removed}`);
      }
      console.log(`user ${m.user} on the other node saw, during the restart, members leave: [${removed}], join: [${added}]`);
    }

    // The new process is a new node; the old one left the cluster with nothing of it behind.
    const ids = announcedNodes(restarted);
    assert.equal(ids.length, 2, `two start-up lines on the restarted node: ${ids}`);
    const newNode = ids[1];
    assert.notEqual(newNode, oldNode);
    const registered = (await redis.cli('SMEMBERS', 'reverb:nodes')).trim().split('\n').sort();
    assert.deepEqual(registered, [newNode, other.node].sort(), 'the node set: the new process and the other node');
    const leftovers = (await redis.cli('--scan', '--pattern', `reverb:*${oldNode}*`)).trim();
    assert.equal(leftovers, '', "nothing of the old process's node id is left in Redis");
    assert.ok(restarted.alive(), 'the process that was started stays, as the supervisor');
  });
});
