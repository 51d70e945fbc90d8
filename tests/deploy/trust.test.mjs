// behindReverseProxy with trustProxy = 127.0.0.2: forged forwarded headers from 127.0.0.1 are
// ignored (logged client and scheme are the TCP peer's, cookie not Secure), the same headers
// from 127.0.0.2 are believed (client 203.0.113.9, https, Secure cookie).

import test from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, startServer, request, sessionCookie, requestLogs, until } from './lib.mjs';

const FORWARDED = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' };

test('forwarded headers are believed only from trustProxy addresses', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'trust');
  const srv = await startServer(t, {
    nodeId: 'a',
    dir,
    env: { MM_BEHIND_REVERSE_PROXY: 'true', MM_TRUST_PROXY: '127.0.0.2' },
  });
  const logLine = async (n) => (await until(() => {
    const l = requestLogs(srv.proc, '/trust-room');
    return l.length >= n && l;
  }, { what: `${n} request log line(s) for /trust-room` }))[n - 1];

  await t.test('from 127.0.0.1 (untrusted): headers ignored', async () => {
    const res = await request(`${srv.url}/trust-room`, { headers: FORWARDED, localAddress: '127.0.0.1' });
    assert.equal(res.status, 200);
    const log = await logLine(1);
    assert.equal(log.client, '127.0.0.1', log.line);
    assert.equal(log.scheme, 'http', log.line);
    const cookie = sessionCookie(res.cookies);
    assert.ok(cookie, `no session cookie: ${JSON.stringify(res.cookies)}`);
    assert.ok(!cookie.attrs.has('secure'), `untrusted X-Forwarded-Proto made the cookie Secure: ${cookie.raw}`);
  });

  await t.test('from 127.0.0.2 (trusted): client 203.0.113.9, scheme https, Secure cookie', async () => {
    const res = await request(`${srv.url}/trust-room`, { headers: FORWARDED, localAddress: '127.0.0.2' });
    assert.equal(res.status, 200);
    assert.equal(res.socket.localAddress, '127.0.0.2');
    const log = await logLine(2);
    assert.equal(log.client, '203.0.113.9', log.line);
    assert.equal(log.scheme, 'https', log.line);
    const cookie = sessionCookie(res.cookies);
    assert.ok(cookie, `no session cookie: ${JSON.stringify(res.cookies)}`);
    assert.ok(cookie.attrs.has('secure'), `trusted proxy said https but the cookie lacks Secure: ${cookie.raw}`);
    assert.ok(cookie.attrs.has('httponly'), cookie.raw);
  });
});
