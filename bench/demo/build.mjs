// The front end's bundle, built with esbuild the way Vite builds a Laravel app's
// resources/js: src/app.js and everything it imports (laravel-echo, pusher-js) become one
// browser script, with the VITE_REVERB_* values compiled in as `import.meta.env`.
//
// The demo server builds it in memory when it starts (it takes tens of milliseconds), so the
// ringcast host and port it was started with are the ones the page connects to.
// `npm run build` writes it to public/build/app.js to look at.

import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The bundle as a string.
 * @param {Record<string, string>} env the VITE_REVERB_* variables
 */
export async function bundle(env) {
  const result = await build({
    entryPoints: [path.join(here, 'src', 'app.js')],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: false,
    sourcemap: false,
    write: false,
    logLevel: 'silent',
    define: { 'import.meta.env': JSON.stringify(env) },
  });
  return result.outputFiles[0].text;
}

/** The VITE_REVERB_* variables for a ringcast at `host`:`port`, as a Laravel .env has them. */
export function viteEnv({ key, host, port, scheme = 'http' }) {
  return {
    VITE_REVERB_APP_KEY: key,
    VITE_REVERB_HOST: host,
    VITE_REVERB_PORT: String(port),
    VITE_REVERB_SCHEME: scheme,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = viteEnv({
    key: process.env.REVERB_APP_KEY || 'demo-key',
    host: process.env.REVERB_HOST || '127.0.0.1',
    port: process.env.REVERB_PORT || '8080',
    scheme: process.env.REVERB_SCHEME || 'http',
  });
  const out = path.join(here, 'public', 'build', 'app.js');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, await bundle(env));
  console.log(`wrote ${out}`);
}
