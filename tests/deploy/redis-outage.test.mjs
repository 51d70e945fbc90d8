// Redis goes away under a running meeting: /health turns 503 "degraded" (redis unreachable)
// within 5 s while /health/live stays 200, the meeting goes on (media keeps flowing between
// two Chromium participants, signaling requests still succeed), and /health recovers by
// itself within 5 s once Redis is back on the same port.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startRedis, startServer, request, wsConnect, randomSecret, until, sleep, within,
  launchChromium, openParticipant, waitForMedia, requireChromium, sessionCookie,
} from './lib.mjs';

const received = async (p, fromPeerId) => {
  const stats = await p.page.evaluate(() => window.meeting.inboundStats());
  const mine = stats.filter((s) => s.peerId === fromPeerId);
  const sum = (kind, key) => mine.filter((s) => s.kind === kind).reduce((n, s) => n + (s[key] || 0), 0);
  return { audio: sum('audio', 'packetsReceived'), video: sum('video', 'packetsReceived'), frames: sum('video', 'framesDecoded') };
};

test('Redis outage: health degrades, the meeting goes on, health recovers', { timeout: 90000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'redis-outage');
  let redis = await startRedis(t, dir);
  const redisPort = redis.port;
  const srv = await startServer(t, {
    nodeId: 'a',
    dir,
    env: { MM_REDIS_URL: redis.url, MM_COOKIE_SECRET: randomSecret() },
  });
  const room = 'outage-room';

  // Two browsers and one signaling-only peer in the same meeting.
  const browser = await launchChromium(t);
  const alice = await openParticipant(browser, `${srv.url}/${room}?displayName=Alice&autoJoin=1`, 'A');
  const bob = await openParticipant(browser, `${srv.url}/${room}?displayName=Bob&autoJoin=1`, 'B');
  t.after(() => Promise.all([alice.context.close(), bob.context.close()]).catch(() => {}));
  const peerIdOf = (p) => until(() => p.page.evaluate(() => window.meeting?.state === 'joined' && window.meeting.peerId),
    { timeout: 15000, what: `${p.label} joined` });
  const [aliceId, bobId] = await Promise.all([peerIdOf(alice), peerIdOf(bob)]);
  await Promise.all([waitForMedia(alice, bobId), waitForMedia(bob, aliceId)]);

  const session = await request(`${srv.url}/api/session`);
  const cookie = sessionCookie(session.cookies);
  assert.ok(cookie, 'no session cookie before the outage');
  const carol = await wsConnect(t, `ws://127.0.0.1:${srv.port}/ws/${room}`, { headers: { cookie: cookie.pair } });
  assert.equal((await carol.join('Carol')).res.ok, true);

  await t.test('before: /health 200, redis ok', async () => {
    const h = await request(`${srv.url}/health`);
    assert.equal(h.status, 200, h.body);
    assert.equal(h.json().redis, 'ok');
    assert.equal(h.json().peers, 3);
  });

  const exit = await redis.proc.stop(5000);
  assert.equal(exit.signal === null || exit.signal === 'SIGTERM', true, `redis did not stop: ${JSON.stringify(exit)}`);
  const stoppedAt = Date.now();

  await t.test('within 5 s: /health 503 degraded, redis unreachable; /health/live 200', async () => {
    const h = await until(async () => {
      const r = await request(`${srv.url}/health`);
      return r.status === 503 && r;
    }, { timeout: 5000, interval: 100, what: '/health 503 after Redis stopped' });
    assert.ok(Date.now() - stoppedAt <= 5500);
    const body = h.json();
    assert.equal(body.status, 'degraded');
    assert.equal(body.redis, 'unreachable');
    const live = await request(`${srv.url}/health/live`);
    assert.equal(live.status, 200);
    assert.equal(live.json().status, 'alive');
  });

  await t.test('the meeting goes on: media keeps flowing both ways', async () => {
    const before = [await received(alice, bobId), await received(bob, aliceId)];
    await sleep(3000);
    const after = [await received(alice, bobId), await received(bob, aliceId)];
    for (const [i, who] of ['Alice', 'Bob'].entries()) {
      assert.ok(after[i].audio > before[i].audio, `${who}: audio packets stalled ${JSON.stringify(before[i])} -> ${JSON.stringify(after[i])}`);
      assert.ok(after[i].video > before[i].video, `${who}: video packets stalled ${JSON.stringify(before[i])} -> ${JSON.stringify(after[i])}`);
      assert.ok(after[i].frames > before[i].frames, `${who}: no new frames decoded`);
    }
    for (const p of [alice, bob]) {
      assert.equal(await p.page.evaluate(() => window.meeting.state), 'joined', `${p.label} left the meeting`);
    }
  });

  await t.test('the meeting goes on: sockets open, changeDisplayName succeeds', async () => {
    assert.ok(carol.open, `Carol's socket closed: ${JSON.stringify(carol.closeInfo)}`);
    const r = await carol.request('changeDisplayName', { displayName: 'Carol (no Redis)' });
    assert.equal(r.ok, true, JSON.stringify(r));
    const seen = await until(() => alice.page.evaluate((name) => [...window.meeting.peers.values()].some((p) => p.displayName === name), 'Carol (no Redis)'),
      { timeout: 5000, what: 'Alice to see Carol\'s new name' }).catch(() => false);
    assert.ok(seen, 'Alice did not get peerUpdated for Carol');
  });

  await t.test('during the outage a new visitor still gets the meeting page', async () => {
    const r = await request(`${srv.url}/${room}`);
    assert.equal(r.status, 200, `GET /${room} without Redis -> ${r.status} ${r.body.slice(0, 200)}`);
  });

  await t.test('during the outage a participant with a session cookie can (re)join', async (t) => {
    const again = await wsConnect(t, `ws://127.0.0.1:${srv.port}/ws/${room}`, { headers: { cookie: cookie.pair }, timeout: 5000 })
      .catch((err) => { throw new Error(`reconnect with the session cookie failed during the Redis outage: ${err.message}`); });
    const { res } = await again.join('Carol again');
    assert.equal(res.ok, true, JSON.stringify(res));
    again.terminate();
  });

  await t.test('Redis back on the same port: /health 200 within 5 s, same process', async () => {
    redis = await startRedis(t, dir, redisPort);
    const backAt = Date.now();
    const h = await until(async () => {
      const r = await request(`${srv.url}/health`);
      return r.status === 200 && r;
    }, { timeout: 5000, interval: 100, what: '/health 200 after Redis came back' });
    assert.ok(Date.now() - backAt <= 5500);
    assert.equal(h.json().redis, 'ok');
    assert.equal(h.json().status, 'ok');
    assert.ok(srv.proc.running);
    assert.ok(carol.open, 'Carol\'s socket closed');
  });

  await t.test('sessions work again within 5 s once /health says ok', async () => {
    const start = Date.now();
    let last;
    const ok = await until(async () => {
      last = await request(`${srv.url}/api/session`, { timeout: 1500 }).catch((e) => e);
      return !(last instanceof Error) && last.status === 200;
    }, { timeout: 5000, interval: 200, what: 'GET /api/session -> 200' }).catch(() => false);
    assert.ok(ok, `GET /api/session still failing ${Date.now() - start} ms after /health reported redis ok: ${last instanceof Error ? last.message : `${last.status} ${last.body}`}`);
  });
});
