// Long idle periods through nginx: the server's WebSocket pings keep a silent signaling
// connection alive through the proxy's read timeout (shortened here from the example's
// 3600 s to 2 s so the test is quick); without pings in time, nginx cuts it.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startServer, selfSignedCert, startNginx, wsConnect, sleep,
} from './lib.mjs';

async function idleThroughNginx(t, heartbeat) {
  const dir = tempDir(t, 'idle');
  const a = await startServer(t, {
    nodeId: 'a',
    env: {
      MM_BEHIND_REVERSE_PROXY: 'true',
      MM_HEARTBEAT_INTERVAL: String(heartbeat.interval),
      MM_HEARTBEAT_TIMEOUT: String(heartbeat.timeout),
    },
    dir,
  });
  const { cert, key } = selfSignedCert(dir);
  const nginx = await startNginx(t, dir, { upstreams: [a.port, a.port], cert, key, wsReadTimeout: '2s' });
  const c = await wsConnect(t, `wss://127.0.0.1:${nginx.httpsPort}/ws/idle-room`);
  const { res } = await c.join('Idle');
  assert.equal(res.ok, true, JSON.stringify(res));
  await sleep(6000); // three proxy read timeouts without a client frame
  return c;
}

test('server pings keep an idle WebSocket open through nginx', { timeout: 60000 }, async (t) => {
  const c = await idleThroughNginx(t, { interval: 500, timeout: 20000 });
  assert.ok(c.open, `the socket was closed: ${JSON.stringify(c.closeInfo)}`);
  const res = await c.request('changeDisplayName', { displayName: 'Still here' });
  assert.equal(res.ok, true, JSON.stringify(res));
});

test('control: with pings rarer than the proxy timeout, nginx closes the idle socket', { timeout: 60000 }, async (t) => {
  const c = await idleThroughNginx(t, { interval: 10000, timeout: 30000 });
  assert.ok(!c.open, 'nginx should have closed a socket idle for longer than its read timeout');
});
