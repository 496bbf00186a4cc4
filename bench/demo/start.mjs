// `npm start`: everything the demo needs, with one command.
//
// 1. installs the demo's packages from the lock file when they are missing (`npm ci`);
// 2. builds ringcast with cargo (or takes RINGCAST_BIN);
// 3. starts it with the dashboard on and the demo app (id 1001, key demo-key, secret demo-secret);
// 4. starts the demo web server (the page and /broadcasting/auth);
// 5. broadcasts sales and order updates at a human pace (`--no-simulate` to leave that to you).
//
// Ports: RINGCAST_PORT (8080) and DEMO_PORT (3000), on DEMO_HOST (127.0.0.1). Ctrl-C stops it all.
// Only Node's own modules are imported at the top, so this runs before `npm ci` has.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const host = process.env.DEMO_HOST || '127.0.0.1';
const ringcastPort = Number(process.env.RINGCAST_PORT || 8080);
const demoPort = Number(process.env.DEMO_PORT || 3000);
const simulated = !process.argv.includes('--no-simulate');

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${cmd} ${args.join(' ')} failed`);
    process.exit(1);
  }
}

if (!existsSync(path.join(here, 'node_modules', '.package-lock.json'))) {
  console.log('installing the demo packages (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund'], here);
}

// Built every time (a second when nothing changed), so the demo never runs a stale binary.
let bin = process.env.RINGCAST_BIN;
if (!bin) {
  console.log('building ringcast (cargo build --release -p ringcast)');
  run('cargo', ['build', '--release', '-p', 'ringcast'], root);
  const target = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target');
  bin = path.join(target, 'release', 'ringcast');
}

const { DEMO_APP, broadcaster, simulate } = await import('./trigger.mjs');
const { startDemo } = await import('./server.mjs');

const ringcast = spawn(bin, ['start', '--host', host, '--port', String(ringcastPort), '--dashboard'], {
  cwd: here,
  env: { ...process.env, REVERB_APP_ID: DEMO_APP.id, REVERB_APP_KEY: DEMO_APP.key, REVERB_APP_SECRET: DEMO_APP.secret },
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise((resolve, reject) => {
  let out = '';
  ringcast.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.includes('ringcast listening on')) resolve();
  });
  ringcast.on('exit', (code) => reject(new Error(`ringcast exited with ${code}`)));
}).catch((err) => {
  console.error(`${err.message} (is port ${ringcastPort} free? set RINGCAST_PORT)`);
  process.exit(1);
});

const demo = await startDemo({ app: DEMO_APP, reverb: { host, port: ringcastPort }, host, port: demoPort });
const stop = new AbortController();

console.log(`
  ringcast    ws://${host}:${ringcastPort}   (${bin})
  demo        ${demo.url}   sign in as Alice here and as Bob in a private window
  dashboard   http://${host}:${ringcastPort}/dashboard/   app id ${DEMO_APP.id}, key ${DEMO_APP.key}, secret ${DEMO_APP.secret}

  by hand     npm run trigger -- order 1 1011 shipped
              npm run trigger -- sale 42.50 Keyboard
  ${simulated ? 'a sale every few seconds and an order update now and then are broadcast (--no-simulate to stop that)' : 'nothing is broadcast by itself (--no-simulate)'}
  Ctrl-C stops everything.
`);

const env = { ...process.env, REVERB_HOST: host, REVERB_PORT: String(ringcastPort) };
if (simulated) simulate(broadcaster(env), { signal: stop.signal });

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  stop.abort();
  ringcast.kill('SIGTERM');
  await demo.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
ringcast.on('exit', (code) => {
  if (!stopping) {
    console.error(`ringcast exited (${code})`);
    shutdown();
  }
});
