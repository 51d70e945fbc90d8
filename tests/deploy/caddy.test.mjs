// deploy/Caddyfile.example (with `tls internal`) in front of two instances: the meeting page
// over https with a Secure session cookie, signaling through Caddy, /health through Caddy.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startServer, startCaddy, request, sessionCookie, wsConnect, requestLogs, until,
} from './lib.mjs';

test('Caddy (deploy/Caddyfile.example, tls internal) in front of two instances', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t, 'caddy');
  const env = { MM_BEHIND_REVERSE_PROXY: 'true' };
  const [a, b] = await Promise.all([
    startServer(t, { nodeId: 'a', env, dir }),
    startServer(t, { nodeId: 'b', env, dir }),
  ]);
  const caddy = await startCaddy(t, dir, { upstreams: [a.port, b.port] });
  const logsFor = (p) => [...requestLogs(a.proc, p), ...requestLogs(b.proc, p)];

  await t.test('GET https://caddy/caddy-room: 200 html, cookie Secure; HttpOnly; SameSite=Lax', async () => {
    const res = await request(`${caddy.url}/caddy-room`);
    assert.equal(res.status, 200, `${res.status} ${res.body.slice(0, 300)}\n${caddy.proc.tail(10)}`);
    assert.match(res.headers['content-type'] ?? '', /text\/html/);
    assert.match(res.body, /<html|<!doctype/i);
    const cookie = sessionCookie(res.cookies);
    assert.ok(cookie, `no session cookie in ${JSON.stringify(res.cookies)}`);
    const line = await until(() => logsFor('/caddy-room')[0], { what: 'a request log line for /caddy-room' });
    const logs = line.line;
    assert.ok(cookie.attrs.has('httponly'), cookie.raw);
    assert.equal(String(cookie.map.samesite).toLowerCase(), 'lax', cookie.raw);
    assert.equal(cookie.map.path, '/', cookie.raw);
    assert.ok(cookie.attrs.has('secure'), `cookie through Caddy over https lacks Secure: ${cookie.raw}\n${logs}`);
    assert.equal(line.scheme, 'https', logs);
    assert.equal(line.client, '127.0.0.1', logs);
  });

  await t.test('wss://caddy/ws/caddy-room: welcome, then join ok', async (t) => {
    const c = await wsConnect(t, `wss://127.0.0.1:${caddy.httpsPort}/ws/caddy-room`);
    const { welcome, res } = await c.join('Caddy Bob');
    assert.equal(welcome.data?.protocolVersion, 1);
    assert.equal(res.ok, true, `join failed: ${JSON.stringify(res)}`);
    assert.equal(res.data?.roomId, 'caddy-room');
    // The signaling socket stays usable through Caddy (a request after join).
    const rename = await c.request('changeDisplayName', { displayName: 'Caddy Bobby' });
    assert.equal(rename.ok, true, JSON.stringify(rename));
    const line = await until(() => logsFor('/ws/caddy-room')[0], { what: 'a request log line for /ws/caddy-room' });
    assert.equal(line.scheme, 'https', line.line);
  });

  await t.test('GET https://caddy/health -> 200 JSON', async () => {
    const res = await request(`${caddy.url}/health`);
    assert.equal(res.status, 200, res.body);
    const body = res.json();
    assert.equal(body.status, 'ok');
    assert.ok(['a', 'b'].includes(body.nodeId), `nodeId ${body.nodeId}`);
    assert.equal(body.redis, 'disabled');
  });
});
