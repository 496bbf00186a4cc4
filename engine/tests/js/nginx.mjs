// Runs Debian's nginx with a site rendered from tuning/nginx/*.conf.template, for the tests that
// put nginx between the clients and ringcast.
//
// The site template is the file operators install; the test only fills in its ${RINGCAST_*}
// placeholders (ports, path prefix, timeouts, certificate) exactly as envsubst would. nginx runs in
// the foreground (`daemon off;`) from a temporary prefix that holds its nginx.conf, pid file, logs
// and temp directories, so it needs no system configuration and leaves nothing behind.
//
// nginx is required, not optional: when it is missing the error says how to install it
// (.ci/test installs it before the client tests).

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TUNING_NGINX_DIR = path.resolve(here, '..', '..', '..', 'tuning', 'nginx');

const READY_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;

/** The nginx binary: NGINX_BIN, or Debian's /usr/sbin/nginx. Throws a clear error if missing. */
export function nginxBin() {
  const bin = process.env.NGINX_BIN || '/usr/sbin/nginx';
  if (!existsSync(bin)) {
    throw new Error(
      `nginx not found at ${bin}: these tests need Debian's nginx ` +
        '(`apt-get install -y nginx-light`, which .ci/test runs when nginx is missing), ' +
        'or NGINX_BIN pointing at an nginx binary',
    );
  }
  return bin;
}

/**
 * The text of `tuning/nginx/<template>` with every `${NAME}` of `vars` substituted, as
 * `envsubst '$NAME ...'` would. Fails if a ${RINGCAST_*} placeholder is left unfilled.
 */
export function renderSite(template, vars) {
  const text = readFileSync(path.join(TUNING_NGINX_DIR, template), 'utf8');
  const out = text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (whole, name) =>
    Object.hasOwn(vars, name) ? String(vars[name]) : whole,
  );
  // Only non-comment lines matter to nginx.
  const code = out
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n');
  const left = code.match(/\$\{RINGCAST_[A-Z0-9_]*\}/g);
  if (left) throw new Error(`${template}: no value for ${[...new Set(left)].join(', ')}`);
  return out;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(port, deadline, isAlive) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!isAlive()) throw new Error('nginx exited before it listened');
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts nginx with `tuning/nginx/<template>` rendered with `vars` plus a free
 * RINGCAST_LISTEN_PORT (and RINGCAST_SERVER_NAME 127.0.0.1 unless given), and resolves once it
 * accepts connections.
 */
export async function startNginx({ template = 'ringcast.conf.template', vars = {} } = {}) {
  const bin = nginxBin();
  const port = await freePort();
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'ringcast-nginx-'));
  // As root, nginx's workers run as `nobody` and must reach the temp directories.
  chmodSync(prefix, 0o755);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(prefix, 'tmp', d), { recursive: true });

  const site = renderSite(template, {
    RINGCAST_SERVER_NAME: '127.0.0.1',
    ...vars,
    RINGCAST_LISTEN_PORT: port,
  });
  const sitePath = path.join(prefix, 'site.conf');
  writeFileSync(sitePath, site);
  const confPath = path.join(prefix, 'nginx.conf');
  const errorLog = path.join(prefix, 'error.log');
  writeFileSync(
    confPath,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${prefix}/nginx.pid;`,
      `error_log ${errorLog} info;`,
      'events { worker_connections 1024; }',
      'http {',
      `    access_log ${prefix}/access.log;`,
      `    client_body_temp_path ${prefix}/tmp/body;`,
      `    proxy_temp_path ${prefix}/tmp/proxy;`,
      `    fastcgi_temp_path ${prefix}/tmp/fastcgi;`,
      `    uwsgi_temp_path ${prefix}/tmp/uwsgi;`,
      `    scgi_temp_path ${prefix}/tmp/scgi;`,
      `    include ${sitePath};`,
      '}',
      '',
    ].join('\n'),
  );
  const argv = ['-c', confPath, '-p', prefix, '-e', errorLog];

  const check = spawnSync(bin, ['-t', ...argv], { encoding: 'utf8', timeout: READY_TIMEOUT_MS });
  if (check.status !== 0) {
    const out = `${check.stdout ?? ''}${check.stderr ?? ''}`;
    rmSync(prefix, { recursive: true, force: true });
    throw new Error(`nginx -t rejected the rendered ${template}:\n${out}\n--- site ---\n${site}`);
  }

  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => (output += c.toString('utf8')));
  child.stderr.on('data', (c) => (output += c.toString('utf8')));
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.on('error', (err) => {
    output += `\n[spawn error: ${err.message}]`;
  });

  const readLog = () => {
    try {
      return readFileSync(errorLog, 'utf8');
    } catch {
      return '';
    }
  };

  const nginx = {
    port,
    prefix,
    site,
    url: `http://127.0.0.1:${port}`,
    /** What nginx printed, plus the tail of its error log. */
    output() {
      const end = exited ? `\n[nginx exited: code ${exited.code}, signal ${exited.signal}]` : '';
      return `${output}${end}\n--- nginx error.log (tail) ---\n${readLog().split('\n').slice(-40).join('\n')}`;
    },
    errorLog: readLog,
    alive: () => exited === null,
    /** Fast shutdown (SIGTERM), SIGKILL after a few seconds; removes the prefix. */
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
        }, STOP_TIMEOUT_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };

  try {
    await waitForPort(port, Date.now() + READY_TIMEOUT_MS, nginx.alive);
  } catch (err) {
    const out = nginx.output();
    await nginx.stop();
    err.message += `\n${out}`;
    throw err;
  }
  return nginx;
}
