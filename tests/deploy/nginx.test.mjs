// deploy/nginx.example.conf in front of two instances (a, b) sharing one Redis: health,
// http->https redirect, signaling WebSocket through nginx, sessions shared between
// instances, and the session cookie's attributes when the user came over https.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startRedis, startServer, selfSignedCert, startNginx, request, sessionCookie,
  wsConnect, randomSecret, requestLogs, until,
} from './lib.mjs';

test('nginx (deploy/nginx.example.conf) in front of two instances sharing Redis', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t, 'nginx');
  const redis = await startRedis(t, dir);
  const secret = randomSecret();
  const common = {
    MM_BEHIND_REVERSE_PROXY: 'true',
    MM_REDIS_URL: redis.url,
    MM_COOKIE_SECRET: secret,
  };
  const [a, b] = await Promise.all([
    startServer(t, { nodeId: 'a', env: common, dir }),
    startServer(t, { nodeId: 'b', env: common, dir }),
  ]);
  const { cert, key } = selfSignedCert(dir);
  const nginx = await startNginx(t, dir, { upstreams: [a.port, b.port], cert, key });
  const diag = () => `\n${a.proc.tail(15)}\n${b.proc.tail(15)}\n--- nginx error.log:\n${nginx.errorLog()}`;

  await t.test('GET https://nginx/health -> 200 JSON from instance a or b', async () => {
    const res = await request(`${nginx.url}/health`);
    assert.equal(res.status, 200, `status ${res.status}: ${res.body}${diag()}`);
    const body = res.json();
    assert.equal(body.status, 'ok');
    assert.ok(['a', 'b'].includes(body.nodeId), `nodeId ${body.nodeId}`);
    assert.equal(body.redis, 'ok');
    assert.equal(typeof body.version, 'string');
    assert.equal(typeof body.uptimeSeconds, 'number');
  });

  await t.test('http://nginx/x -> 301 to https, path kept', async () => {
    const res = await request(`http://127.0.0.1:${nginx.httpPort}/x`);
    assert.equal(res.status, 301);
    assert.match(res.headers.location ?? '', /^https:\/\/127\.0\.0\.1(:\d+)?\/x$/);
  });

  await t.test('wss://nginx/ws/room1: welcome, then join ok', async (t) => {
    const c = await wsConnect(t, `wss://127.0.0.1:${nginx.httpsPort}/ws/room1`);
    const { welcome, res } = await c.join('Nginx Alice');
    assert.equal(welcome.data?.protocolVersion, 1);
    assert.equal(res.ok, true, `join failed: ${JSON.stringify(res)}`);
    assert.equal(typeof res.data?.peerId, 'string');
    assert.equal(res.data?.roomId, 'room1');
    // The instance believed nginx's forwarded headers for the upgrade.
    const line = await until(() => [...requestLogs(a.proc, '/ws/room1'), ...requestLogs(b.proc, '/ws/room1')][0],
      { what: 'a request log line for /ws/room1' });
    assert.equal(line.scheme, 'https', `log: ${line.line}`);
    assert.equal(line.client, '127.0.0.1', `log: ${line.line}`);
    assert.equal(line.status, '101', `log: ${line.line}`);
  });

  await t.test('a session made on a (http, direct) is known to b with the same Redis and secret', async () => {
    const first = await request(`${a.url}/api/session`);
    assert.equal(first.status, 200, first.body);
    const s1 = first.json();
    assert.equal(s1.new, true);
    assert.equal(s1.createdOn, 'a');
    assert.equal(s1.servedBy, 'a');
    const cookie = sessionCookie(first.cookies);
    assert.ok(cookie, `no ${'multiparty-meeting.sid'} cookie in ${JSON.stringify(first.cookies)}`);
    assert.ok(!cookie.attrs.has('secure'), `plain-http cookie must not be Secure: ${cookie.raw}`);

    const second = await request(`${b.url}/api/session`, { headers: { cookie: cookie.pair } });
    assert.equal(second.status, 200, second.body);
    const s2 = second.json();
    assert.equal(s2.user, s1.user, `b sees another user: ${JSON.stringify(s2)}`);
    assert.equal(s2.new, false);
    assert.equal(s2.createdOn, 'a');
    assert.equal(s2.servedBy, 'b');
  });

  await t.test('the cookie set through nginx (https) is Secure; HttpOnly; SameSite=Lax', async () => {
    const res = await request(`${nginx.url}/nginx-room`);
    assert.equal(res.status, 200, res.body.slice(0, 200));
    assert.match(res.headers['content-type'] ?? '', /text\/html/);
    const cookie = sessionCookie(res.cookies);
    assert.ok(cookie, `no session cookie in ${JSON.stringify(res.cookies)}`);
    const logs = (await until(() => {
      const l = [...requestLogs(a.proc, '/nginx-room'), ...requestLogs(b.proc, '/nginx-room')];
      return l.length && l;
    }, { what: 'a request log line for /nginx-room' })).map((l) => l.line);
    assert.ok(cookie.attrs.has('httponly'), cookie.raw);
    assert.equal(String(cookie.map.samesite).toLowerCase(), 'lax', cookie.raw);
    assert.equal(cookie.map.path, '/', cookie.raw);
    assert.equal(cookie.map['max-age'], '604800', cookie.raw);
    assert.ok(cookie.attrs.has('secure'),
      `cookie through nginx over https lacks Secure: ${cookie.raw}\ninstance log: ${logs.join('\n')}`);
  });
});
