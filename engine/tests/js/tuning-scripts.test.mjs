// The operator scripts in tuning/ run against real things: check.sh inspects a running ringcast
// under each driver, and apply.sh applies the sysctl file idempotently (for real only inside a
// throw-away network namespace, so the machine running the tests keeps its settings).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRingcast } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const tuning = path.resolve(here, '..', '..', '..', 'tuning');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000, ...opts });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('tuning/check.sh on a running ringcast', () => {
  for (const driver of ['io_uring', 'epoll']) {
    test(`reports limits, listeners and the ${driver} driver`, { timeout: 20_000 }, async () => {
      const env = driver === 'epoll' ? { MONOIO_FORCE_LEGACY_DRIVER: '1' } : {};
      const server = await startRingcast({ workers: 2, env });
      try {
        const started = server.output().match(/\((\d+) workers, (io_uring|epoll)\)/);
        assert.ok(started, `no start-up line:\n${server.output()}`);
        const { code, out } = run(path.join(tuning, 'check.sh'), ['-p', String(server.pid)]);
        const why = `check.sh exited ${code}:\n${out}`;
        assert.ok(code === 0 || code === 1, why);
        assert.match(out, new RegExp(`== ringcast pid ${server.pid}:`), why);
        assert.match(out, /open files: \d+ in use, soft limit/, why);
        assert.match(out, /locked memory: soft/, why);
        const listeners = out.match(new RegExp(`listener 127\\.0\\.0\\.1:${server.port}: accept queue \\d+ of \\d+`, 'g'));
        assert.equal(listeners?.length, 2, `one SO_REUSEPORT listener per worker\n${why}`);
        assert.match(out, /ListenOverflows|ListenDrops/, why);
        assert.match(out, /kernel\.io_uring_disabled/, why);
        if (started[2] === 'io_uring') {
          assert.match(out, /io_uring: 2 ring\(s\) open/, why);
        } else {
          assert.match(out, /runs on epoll/, why);
        }
        if (driver === 'epoll') {
          assert.equal(started[2], 'epoll');
          assert.match(out, /MONOIO_FORCE_LEGACY_DRIVER=1/, why);
        }
      } finally {
        await server.stop();
      }
    });
  }
});

describe('tuning/apply.sh', () => {
  test('--dry-run prints every key before and after and writes nothing', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-apply-'));
    try {
      const dest = path.join(dir, '99-ringcast.conf');
      const { code, out } = run(path.join(tuning, 'apply.sh'), ['--dry-run'], {
        env: { ...process.env, RINGCAST_SYSCTL_DEST: dest },
      });
      assert.equal(code, 0, out);
      const keys = readFileSync(path.join(tuning, 'sysctl', '99-ringcast.conf'), 'utf8')
        .split('\n')
        .filter((l) => /^[a-z]/.test(l))
        .map((l) => l.split('=')[0].trim());
      assert.ok(keys.length >= 10, `sysctl file lists ${keys.length} keys`);
      for (const k of keys) assert.match(out, new RegExp(`^${k.replaceAll('.', '\\.')}\\s`, 'm'), out);
      assert.match(out, /would write/, out);
      assert.throws(() => readFileSync(dest));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const root = process.getuid?.() === 0;
  test(
    'applies for real and is idempotent (inside a private network namespace)',
    { skip: root ? false : 'needs root for unshare --net', timeout: 20_000 },
    () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-apply-'));
      try {
        // Only per-namespace keys, so that nothing outside the namespace changes.
        const conf = path.join(dir, 'ns.conf');
        writeFileSync(
          conf,
          [
            'net.core.somaxconn = 4096',
            'net.ipv4.tcp_max_syn_backlog = 8192',
            'net.ipv4.ip_local_port_range = 10240 65535',
            'net.ipv4.tcp_fin_timeout = 15',
            'net.ipv4.tcp_rmem = 4096 16384 4194304',
            'net.no_such_key_here = 1',
            '',
          ].join('\n'),
        );
        const dest = path.join(dir, 'installed.conf');
        const script = path.join(tuning, 'apply.sh');
        const { code, out } = run('unshare', ['--net', 'bash', '-c', `"$0" && echo SECOND && "$0"`, script], {
          env: { ...process.env, RINGCAST_SYSCTL_CONF: conf, RINGCAST_SYSCTL_DEST: dest },
        });
        assert.equal(code, 0, out);
        const [first, second] = out.split('SECOND');
        assert.match(first, /net\.ipv4\.ip_local_port_range\s+\S+ \S+\s+10240 65535\s+(changed|unchanged)/, out);
        assert.match(first, /net\.no_such_key_here .*skipped/, out);
        assert.match(second, /0 changed, 1 skipped, 0 failed/, out);
        assert.match(second, /is up to date/, out);
        const installed = readFileSync(dest, 'utf8');
        assert.match(installed, /^net\.ipv4\.ip_local_port_range = 10240 65535$/m);
        assert.match(installed, /^net\.core\.somaxconn = \d+$/m);
        assert.doesNotMatch(installed, /no_such_key/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
