import { startRingcast } from './server.mjs';
import PusherServer from 'pusher';
import net from 'node:net';
import { execSync } from 'node:child_process';
const server = await startRingcast({ workers: 2 });
const sdk = new PusherServer({ appId: server.app.id, key: server.app.key, secret: server.app.secret, host: server.host, port: String(server.port) });
const mode = process.argv[2];
const s = net.connect(server.port, server.host);
const t0 = Date.now();
let buf = Buffer.alloc(0);
function frame(text) { const p = Buffer.from(text); const mask = Buffer.from([1,2,3,4]); const h = p.length < 126 ? Buffer.from([0x81, 0x80 | p.length]) : Buffer.from([0x81, 0xfe, p.length >> 8, p.length & 255]); const m = Buffer.from(p.map((b, i) => b ^ mask[i % 4])); return Buffer.concat([h, mask, m]); }
function closeFrame(code) { const mask = Buffer.from([1,2,3,4]); const p = Buffer.from([code>>8, code&255]); return Buffer.concat([Buffer.from([0x88, 0x82]), mask, Buffer.from(p.map((b,i)=>b^mask[i%4]))]); }
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  const t = buf.toString('latin1');
  console.log(Date.now() - t0, 'DATA', JSON.stringify(d.toString('latin1')).slice(0, 200));
  const m = /"socket_id\\":\\"([0-9.]+)\\"/.exec(t);
  if (m && !s.signed) { s.signed = true; const a = sdk.authenticateUser(m[1], { id: '8' }); s.write(frame(JSON.stringify({ event: 'pusher:signin', data: a }))); setTimeout(() => sdk.terminateUserConnections('8'), 200); }
  if (d.includes(0x88) && mode === 'reply' && !s.replied) { s.replied = true; console.log('replying close'); s.write(closeFrame(4009)); }
});
s.on('end', () => console.log(Date.now() - t0, 'FIN from server'));
s.on('close', () => { console.log(Date.now() - t0, 'closed'); server.stop(); });
s.write(`GET /app/${server.app.key}?protocol=7&client=js&version=8.6.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
s.allowHalfOpen = true;
setTimeout(() => { console.log(execSync(`ss -tn | grep ${server.port} || true`).toString()); }, 1500);
setTimeout(() => { s.destroy(); server.stop(); }, 8000);
