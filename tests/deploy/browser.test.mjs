// A real meeting through each reverse proxy, with the shipped files and two instances sharing
// Redis: two headless Chromium participants open https://proxy/<room>?displayName=..&autoJoin=1
// and each decodes the other's video and receives its audio (window.meeting.inboundStats()),
// wherever the proxy sends their page and WebSocket.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startServer, startRedis, randomSecret, selfSignedCert, startNginx, startCaddy,
  launchChromium, openParticipant, waitForMedia, requireChromium, until, request,
} from './lib.mjs';

/** Two instances sharing one Redis, behind a proxy. */
async function twoInstances(t, dir) {
  const redis = await startRedis(t, dir);
  const env = { MM_BEHIND_REVERSE_PROXY: 'true', MM_REDIS_URL: redis.url, MM_COOKIE_SECRET: randomSecret() };
  return Promise.all([
    startServer(t, { nodeId: 'a', env, dir }),
    startServer(t, { nodeId: 'b', env, dir }),
  ]);
}

async function meetingThrough(t, proxyUrl, room, { instances }) {
  const browser = await launchChromium(t);
  const alice = await openParticipant(browser, `${proxyUrl}/${room}?displayName=Alice&autoJoin=1`, 'A');
  t.after(() => alice.context.close().catch(() => {}));
  assert.equal(alice.response?.status(), 200);
  // Bob's browser has its own cookies: the proxy may send him to either instance.
  const bob = await openParticipant(browser, `${proxyUrl}/${room}?displayName=Bob&autoJoin=1`, 'B');
  t.after(() => bob.context.close().catch(() => {}));
  assert.equal(bob.response?.status(), 200);

  const peerIdOf = (p) => until(() => p.page.evaluate(() => window.meeting?.state === 'joined' && window.meeting.peerId),
    { timeout: 15000, what: `${p.label} to join (window.meeting.state === 'joined')` })
    .catch((err) => { throw new Error(`${err.message}\n${p.console.slice(-20).join('\n')}`); });
  const [aliceId, bobId] = await Promise.all([peerIdOf(alice), peerIdOf(bob)]);
  assert.notEqual(aliceId, bobId);
  const [atAlice, atBob] = await Promise.all([
    waitForMedia(alice, bobId, { timeout: 30000 }),
    waitForMedia(bob, aliceId, { timeout: 30000 }),
  ]);
  assert.ok(atAlice.video.framesDecoded > 0 && atAlice.audio.packetsReceived > 0);
  assert.ok(atBob.video.framesDecoded > 0 && atBob.audio.packetsReceived > 0);
  // The meeting is hosted by one instance (both peers there), whichever instance Bob reached.
  const peers = await Promise.all(instances.map(async (i) => (await request(`${i.url}/health`)).json().peers));
  assert.deepEqual([...peers].sort(), [0, 2], `peers per instance: ${JSON.stringify(peers)}`);
}

test('browser meeting through nginx (deploy/nginx.example.conf)', { timeout: 90000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'browser-nginx');
  const [a, b] = await twoInstances(t, dir);
  const { cert, key } = selfSignedCert(dir);
  const nginx = await startNginx(t, dir, { upstreams: [a.port, b.port], cert, key });
  try {
    await meetingThrough(t, nginx.url, 'browser-nginx', { instances: [a, b] });
  } catch (err) {
    err.message += `\n${a.proc.tail(15)}\n${b.proc.tail(15)}\n--- nginx error.log:\n${nginx.errorLog()}`;
    throw err;
  }
});

test('browser meeting through Caddy (deploy/Caddyfile.example, tls internal)', { timeout: 90000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'browser-caddy');
  const [a, b] = await twoInstances(t, dir);
  const caddy = await startCaddy(t, dir, { upstreams: [a.port, b.port] });
  try {
    await meetingThrough(t, caddy.url, 'browser-caddy', { instances: [a, b] });
  } catch (err) {
    err.message += `\n${a.proc.tail(15)}\n${b.proc.tail(15)}\n${caddy.proc.tail(10)}`;
    throw err;
  }
});
