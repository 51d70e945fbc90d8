// SIGTERM drain: /health turns 503 "draining" at once, no new room opens (roomClosing), the
// running meeting continues until drainTimeout, then its peers are asked to reconnect and
// the process exits 0. A second SIGTERM exits at once.

import test from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, startServer, request, wsConnect, until, within } from './lib.mjs';

test('SIGTERM drains: 503, no new rooms, reconnect after drainTimeout, exit 0', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'drain');
  const srv = await startServer(t, { nodeId: 'a', dir, env: { MM_DRAIN_TIMEOUT: '3000' } });
  const peer = await wsConnect(t, `ws://127.0.0.1:${srv.port}/ws/r1`);
  const { res } = await peer.join('Drain Alice');
  assert.equal(res.ok, true, JSON.stringify(res));
  const before = (await request(`${srv.url}/health`)).json();
  assert.equal(before.peers, 1, JSON.stringify(before));

  const termAt = Date.now();
  srv.proc.signal('SIGTERM');

  await t.test('/health -> 503 "draining" within 1 s; /health/live stays 200', async () => {
    const health = await until(async () => {
      const r = await request(`${srv.url}/health`);
      return r.status === 503 && r;
    }, { timeout: 1000, interval: 50, what: '/health 503' });
    assert.ok(Date.now() - termAt < 1500);
    assert.equal(health.json().status, 'draining');
    const live = await request(`${srv.url}/health/live`);
    assert.equal(live.status, 200);
  });

  await t.test('the running meeting still works while draining', async () => {
    const r = await peer.request('changeDisplayName', { displayName: 'Drain Alice 2' });
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  await t.test('joining a NEW room while draining -> error roomClosing', async (t) => {
    const late = await wsConnect(t, `ws://127.0.0.1:${srv.port}/ws/r2-new`).catch((err) => {
      throw new Error(`expected welcome, then join -> error roomClosing (docs/protocol.md); got: ${err.message}`);
    });
    const { res } = await late.join('Late Bob');
    assert.equal(res.ok, false, `join of a new room while draining succeeded: ${JSON.stringify(res)}`);
    assert.equal(res.error?.code, 'roomClosing', JSON.stringify(res));
  });

  await t.test('after drainTimeout the peer gets "reconnect" and its socket closes', async () => {
    const note = await peer.notification('reconnect', { timeout: 8000 });
    const after = note.receivedAt - termAt;
    assert.ok(after >= 2500 && after <= 6000, `reconnect ${after} ms after SIGTERM (drainTimeout 3000)`);
    assert.equal(typeof note.data?.reason, 'string');
    const closed = await within(peer.closed, 3000);
    assert.ok(closed, 'socket still open 3 s after the reconnect notification');
  });

  await t.test('the process exits with code 0', async () => {
    const exit = await within(srv.proc.exited, 10000);
    assert.ok(exit, `still running 10 s after the drain deadline\n${srv.proc.tail()}`);
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, srv.proc.tail());
  });
});

test('a second SIGTERM exits at once, without waiting for the drain', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'drain2');
  const srv = await startServer(t, { nodeId: 'a', dir, env: { MM_DRAIN_TIMEOUT: '60000' } });
  // A joined peer keeps the drain from finishing by itself.
  const peer = await wsConnect(t, `ws://127.0.0.1:${srv.port}/ws/r1`);
  assert.equal((await peer.join('Stays')).res.ok, true);
  srv.proc.signal('SIGTERM');
  await until(async () => (await request(`${srv.url}/health`)).status === 503, { timeout: 2000, interval: 50, what: '/health 503 after the first SIGTERM' });
  assert.ok(srv.proc.running, 'exited after the first SIGTERM although a peer is still in a meeting (drainTimeout 60 s)');
  const secondAt = Date.now();
  srv.proc.signal('SIGTERM');
  const exit = await within(srv.proc.exited, 2000);
  assert.ok(exit, `still running 2 s after the second SIGTERM\n${srv.proc.tail()}`);
  assert.equal(exit.signal, null, `died of ${exit.signal} instead of exiting`);
  assert.ok(Date.now() - secondAt < 2000);
});
