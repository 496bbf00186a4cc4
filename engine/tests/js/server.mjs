// Starts a real `ringcast` process for one test file and stops it afterwards.
//
// The binary comes from RINGCAST_BIN (set by .ci/test) or, when that is unset, from the
// workspace's target/release/ringcast. Every server gets a free loopback port and its own app
// credentials through the Reverb environment variables, exactly as an operator would configure
// it. Everything the process prints is kept so that a failing test can show it.

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const workspaceRoot = path.resolve(here, '..', '..', '..');

export const APP = Object.freeze({
  id: '424242',
  key: 'ringcast-test-key',
  secret: 'ringcast-test-secret',
});

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** The ringcast binary under test. */
export function ringcastBin() {
  const bin = process.env.RINGCAST_BIN || path.join(workspaceRoot, 'target', 'release', 'ringcast');
  if (!existsSync(bin)) {
    throw new Error(
      `ringcast binary not found at ${bin}: run \`cargo build --release -p ringcast\` or set RINGCAST_BIN`,
    );
  }
  return bin;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawns `ringcast start --host 127.0.0.1 --port <free> [--workers N] [extraArgs...]` and resolves
 * once it prints `ringcast listening on 127.0.0.1:<port>`.
 *
 * @param {object} [opts]
 * @param {number} [opts.workers] value for --workers (omitted when undefined)
 * @param {Record<string,string>} [opts.env] extra environment variables
 * @param {string[]} [opts.args] extra command-line arguments
 */
export async function startRingcast({ workers, env = {}, args = [] } = {}) {
  const bin = ringcastBin();
  const port = await freePort();
  const host = '127.0.0.1';
  const argv = ['start', '--host', host, '--port', String(port)];
  if (workers !== undefined) argv.push('--workers', String(workers));
  argv.push(...args);

  // A fresh working directory, so no `.env` file next to the tests changes the configuration.
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'ringcast-test-'));
  const child = spawn(bin, argv, {
    cwd,
    env: {
      ...process.env,
      REVERB_APP_ID: APP.id,
      REVERB_APP_KEY: APP.key,
      REVERB_APP_SECRET: APP.secret,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let output = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      rmSync(cwd, { recursive: true, force: true });
      resolve(exited);
    });
  });

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`ringcast did not print its ready line within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    const expected = `ringcast listening on ${host}:${port}`;
    const onData = (chunk) => {
      output += chunk.toString('utf8');
      if (output.includes(expected)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => {
      output += chunk.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exitPromise.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`ringcast exited before it was ready (code ${code}, signal ${signal})`));
    });
  });

  const server = {
    host,
    port,
    pid: child.pid,
    app: APP,
    wsUrl: `ws://${host}:${port}`,
    httpUrl: `http://${host}:${port}`,
    /** Everything the process printed so far, plus how it ended if it did. */
    output() {
      const end = exited ? `\n[ringcast exited: code ${exited.code}, signal ${exited.signal}]` : '';
      return `${output}${end}`;
    },
    /** Whether the process is still running. */
    alive() {
      return exited === null;
    },
    /** Sends `sig` (SIGKILL, SIGSTOP, SIGCONT, ...) to the process. */
    signal(sig) {
      if (!exited) child.kill(sig);
    },
    /** Resolves with how the process ended, once it has. */
    exited() {
      return exitPromise;
    },
    /** SIGTERM, then SIGKILL if it has not exited within a few seconds. */
    async stop() {
      if (exited) return exited;
      // A process a test froze (SIGSTOP) handles SIGTERM only once it runs again.
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      const result = await exitPromise;
      clearTimeout(timer);
      return result;
    },
  };

  try {
    await ready;
  } catch (err) {
    await server.stop();
    err.message += `\n--- ringcast output ---\n${server.output()}`;
    throw err;
  }
  return server;
}

/**
 * Starts Debian's `redis-server` on a loopback port (a free one, or `port`) with persistence off
 * (`--save '' --appendonly no`), as the cluster tests need, and resolves once it accepts
 * connections. `cli(...args)` runs `redis-cli` against it and resolves with its output;
 * `monitor()` starts `redis-cli monitor` and returns `{lines, stop}`; `signal(sig)` signals the
 * process (SIGSTOP, SIGCONT); `crash()` kills it with SIGKILL and `restart()` starts a new, empty
 * one on the same port.
 */
export async function startRedis({ port: wanted } = {}) {
  const bin = process.env.REDIS_SERVER_BIN || 'redis-server';
  const port = wanted ?? (await freePort());
  let proc = await spawnRedis(bin, port);
  const cliBin = process.env.REDIS_CLI_BIN || 'redis-cli';
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return proc.child.pid;
    },
    output: () => proc.output(),
    cli(...args) {
      return new Promise((resolve, reject) => {
        execFile(cliBin, ['-p', String(port), ...args], (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
    },
    monitor() {
      const m = spawn(cliBin, ['-p', String(port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const lines = [];
      let rest = '';
      m.stdout.on('data', (chunk) => {
        const text = rest + chunk.toString('utf8');
        const parts = text.split('\n');
        rest = parts.pop();
        lines.push(...parts);
      });
      return { lines, stop: () => m.kill('SIGTERM') };
    },
    signal(sig) {
      if (!proc.exited()) proc.child.kill(sig);
    },
    async crash() {
      if (proc.exited()) return proc.exited();
      proc.child.kill('SIGKILL');
      return proc.exitPromise;
    },
    async restart() {
      await this.crash();
      proc = await spawnRedis(bin, port);
    },
    async stop() {
      if (proc.exited()) return proc.exited();
      proc.child.kill('SIGCONT');
      proc.child.kill('SIGTERM');
      return proc.exitPromise;
    },
  };
}

/** One `redis-server` process on `port`, once it accepts connections. */
async function spawnRedis(bin, port) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ringcast-redis-'));
  const child = spawn(bin, ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      rmSync(dir, { recursive: true, force: true });
      resolve(exited);
    });
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), READY_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin} (apt-get install redis-server): ${err.message}`));
    });
    exitPromise.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited: ${output}`));
    });
  });
  return { child, exitPromise, exited: () => exited, output: () => output };
}
