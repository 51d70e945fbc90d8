// Small operator-facing edges from issue 16, against the real binary: HEAD of a room page
// answers as GET; request logs name the host of an HTTP/2 request (no Host header there);
// an empty MM_NODE_ID counts as unset.

import test from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { tempDir, startServer, selfSignedCert, request, requestLogs, until } from './lib.mjs';

test('HEAD /<room>, / and /static answer as GET (status and type, no body)', { timeout: 30000 }, async (t) => {
  const srv = await startServer(t, { nodeId: 'a', dir: tempDir(t, 'head') });
  for (const path of ['/some-room', '/']) {
    const get = await request(`${srv.url}${path}`);
    const head = await request(`${srv.url}${path}`, { method: 'HEAD' });
    assert.equal(get.status, 200, path);
    assert.equal(head.status, 200, `HEAD ${path}: ${head.status}`);
    assert.equal(head.headers['content-type'], get.headers['content-type'], path);
    assert.equal(head.body, '', `HEAD ${path} sent a body`);
  }
  const asset = (await request(`${srv.url}/some-room`)).body.match(/src="(\/static\/[^"]+)"/)?.[1];
  assert.ok(asset, 'the room page names no /static/ script');
  assert.equal((await request(`${srv.url}${asset}`, { method: 'HEAD' })).status, 200, asset);
  // An invalid room name is 404 for both.
  assert.equal((await request(`${srv.url}/.hidden`, { method: 'HEAD' })).status, 404);
});

test('request logs of an HTTP/2 request name the host (from :authority)', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'h2');
  const { cert, key } = selfSignedCert(dir);
  const srv = await startServer(t, {
    nodeId: 'a', dir, scheme: 'https', env: { MM_HTTP_ONLY: 'false', MM_TLS_CERT: cert, MM_TLS_KEY: key },
  });
  const session = http2.connect(`https://127.0.0.1:${srv.port}`, { rejectUnauthorized: false });
  t.after(() => session.close());
  const status = await new Promise((resolve, reject) => {
    const req = session.request({ ':path': '/h2-room', ':method': 'GET' });
    req.on('response', (h) => resolve(h[':status']));
    req.on('error', reject);
    req.resume();
    req.end();
  });
  assert.equal(status, 200);
  const logs = await until(() => requestLogs(srv.proc, '/h2-room').length > 0 && requestLogs(srv.proc, '/h2-room'),
    { timeout: 5000, what: 'the request log line of /h2-room' });
  assert.equal(logs[0].host, `127.0.0.1:${srv.port}`, logs[0].line);
});

test('an empty MM_NODE_ID counts as unset: a random node id, not ""', { timeout: 30000 }, async (t) => {
  const srv = await startServer(t, { dir: tempDir(t, 'nodeid'), env: { MM_NODE_ID: '' } });
  const health = (await request(`${srv.url}/health`)).json();
  assert.match(health.nodeId, /^n-[0-9a-f]+$/, JSON.stringify(health));
});
