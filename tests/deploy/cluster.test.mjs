// One meeting across instances, in headless Chromium with the real web client: three pages on
// three instances sharing a real redis-server; the same behind nginx with plain round-robin
// (deploy/nginx.example.conf without its ip_hash line); and kill -9 of the hosting instance
// behind nginx, after which every page is back in the meeting with media, by itself.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  tempDir, startServer, startRedis, randomSecret, selfSignedCert, startNginx, launchChromium,
  openParticipant, waitForMedia, requireChromium, until, request, sleep,
} from './lib.mjs';

const NAMES = ['Ana', 'Ben', 'Cem'];

async function cluster(t, dir, n = 3) {
  const redis = await startRedis(t, dir);
  const env = { MM_BEHIND_REVERSE_PROXY: 'true', MM_REDIS_URL: redis.url, MM_COOKIE_SECRET: randomSecret() };
  if (process.env.MM_TEST_SERVER_LOG) env.RUST_LOG = process.env.MM_TEST_SERVER_LOG;
  return Promise.all(Array.from({ length: n }, (_, i) => startServer(t, { nodeId: `n${i + 1}`, env, dir })));
}

const peerIdOf = (p) => until(() => p.page.evaluate(() => window.meeting?.state === 'joined' && window.meeting.peerId),
  { timeout: 20000, what: `${p.label} to join (window.meeting.state === 'joined')` })
  .catch((err) => { throw new Error(`${err.message}\n${p.console.slice(-20).join('\n')}`); });

/** Every page decodes video and receives audio from every other page's current peer. */
async function everyoneHearsEveryone(pages, ids) {
  await Promise.all(pages.flatMap((p, i) => ids
    .filter((_, j) => j !== i)
    .map((from) => waitForMedia(p, from, { timeout: 30000 }))));
}

async function health(instances) {
  return Promise.all(instances.map(async (i) => {
    try { return (await request(`${i.url}/health`)).json(); } catch { return null; }
  }));
}

function diag(instances, extra = '') {
  const n = process.env.MM_TEST_DEBUG ? 3000 : 12;
  return `\n${instances.map((i) => i.proc.tail(n)).join('\n')}${extra}`;
}

test('three Chromium pages on three instances sharing Redis are one meeting', { timeout: 120000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'cluster-direct');
  const nodes = await cluster(t, dir);
  const browser = await launchChromium(t);
  const pages = [];
  for (const [i, name] of NAMES.entries()) {
    const p = await openParticipant(browser, `${nodes[i].url}/spanning?displayName=${name}&autoJoin=1`, name);
    t.after(() => p.context.close().catch(() => {}));
    pages.push(p);
  }
  try {
    const ids = await Promise.all(pages.map(peerIdOf));
    await everyoneHearsEveryone(pages, ids);
    const h = await health(nodes);
    assert.deepEqual(h.map((x) => x.rooms).sort(), [0, 0, 1], `one host: ${JSON.stringify(h)}`);
    assert.equal(h.reduce((s, x) => s + x.relayedPeers, 0), 2, `two pages relayed: ${JSON.stringify(h)}`);
    // The participant lists agree: everyone knows the two others by name.
    for (const p of pages) {
      const names = await p.page.evaluate(() => [...window.meeting.peers.values()].map((x) => x.displayName).sort());
      assert.deepEqual(names, NAMES.filter((n) => n !== p.label), `${p.label}'s participants`);
    }
  } catch (err) {
    err.message += diag(nodes);
    throw err;
  }
});

test('behind nginx with plain round-robin, three pages are one meeting', { timeout: 120000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'cluster-rr');
  const nodes = await cluster(t, dir);
  const { cert, key } = selfSignedCert(dir);
  const nginx = await startNginx(t, dir, { upstreams: nodes.map((n) => n.port), cert, key, policy: 'round-robin' });
  const browser = await launchChromium(t);
  const pages = [];
  for (const name of NAMES) {
    const p = await openParticipant(browser, `${nginx.url}/roundrobin?displayName=${name}&autoJoin=1`, name);
    t.after(() => p.context.close().catch(() => {}));
    pages.push(p);
  }
  try {
    const ids = await Promise.all(pages.map(peerIdOf));
    await everyoneHearsEveryone(pages, ids);
    const h = await health(nodes);
    assert.equal(h.reduce((s, x) => s + x.rooms, 0), 1, `one host: ${JSON.stringify(h)}`);
    assert.equal(h.reduce((s, x) => s + x.peers, 0), 3, `three peers at the host: ${JSON.stringify(h)}`);
    // Round-robin spread the WebSockets: the pages that reached another instance were relayed.
    const upgrades = nodes.map((n) => n.proc.lines.filter((l) => / request /.test(l) && l.includes('path=/ws/roundrobin')).length);
    console.log(`round-robin: WebSocket upgrades per instance ${JSON.stringify(upgrades)}, relayed ${h.map((x) => x.relayedPeers)}`);
  } catch (err) {
    err.message += diag(nodes, `\n--- nginx error.log:\n${nginx.errorLog()}`);
    throw err;
  }
});

test('kill -9 of the hosting instance: the pages are back in the meeting with media, without a reload', { timeout: 180000 }, async (t) => {
  requireChromium();
  const dir = tempDir(t, 'cluster-kill');
  const nodes = await cluster(t, dir);
  const { cert, key } = selfSignedCert(dir);
  const nginx = await startNginx(t, dir, { upstreams: nodes.map((n) => n.port), cert, key, policy: 'round-robin' });
  const browser = await launchChromium(t);
  const pages = [];
  for (const name of NAMES) {
    const p = await openParticipant(browser, `${nginx.url}/survivor?displayName=${name}&autoJoin=1`, name);
    t.after(() => p.context.close().catch(() => {}));
    pages.push(p);
  }
  try {
    const before = await Promise.all(pages.map(peerIdOf));
    await everyoneHearsEveryone(pages, before);
    const h = await health(nodes);
    const host = h.findIndex((x) => x?.rooms === 1);
    assert.ok(host >= 0, `a host: ${JSON.stringify(h)}`);
    for (const p of pages) await p.page.evaluate(() => { window.__loads = (window.__loads || 0) + 1; });
    const start = Date.now();
    nodes[host].proc.child.kill('SIGKILL');
    // Each page reconnects by itself (new peer ids), through nginx, to live instances.
    const timeline = [];
    const watch = setInterval(async () => {
      const states = await Promise.all(pages.map((p) => p.page.evaluate(() => `${window.meeting?.state}/${window.meeting?.peerId?.slice(-4)}`).catch(() => '?')));
      timeline.push(`${((Date.now() - start) / 1000).toFixed(1)}s ${states.join(' ')}`);
    }, 500);
    t.after(() => clearInterval(watch));
    const after = await Promise.all(pages.map((p, i) => until(() => p.page.evaluate((old) => (
      window.meeting?.state === 'joined' && window.meeting.peerId !== old && window.meeting.peerId
    ), before[i]), { timeout: 60000, what: `${p.label} to rejoin` })));
    await everyoneHearsEveryone(pages, after);
    const took = (Date.now() - start) / 1000;
    clearInterval(watch);
    if (process.env.MM_TEST_DEBUG) console.log(timeline.join('\n'), pages.map((p) => p.console.slice(-60).join('\n')).join('\n'));
    console.log(`Chromium, kill -9 of the host (${nodes[host].nodeId}) to media again on every page: ${took.toFixed(2)} s`);
    // No page was reloaded: the marker set before the kill is still there.
    for (const p of pages) assert.equal(await p.page.evaluate(() => window.__loads), 1, `${p.label} was reloaded`);
    const h2 = await health(nodes.filter((_, i) => i !== host));
    assert.equal(h2.reduce((s, x) => s + x.rooms, 0), 1, `a live instance hosts the meeting: ${JSON.stringify(h2)}`);
  } catch (err) {
    err.message += diag(nodes, `\n--- nginx error.log:\n${nginx.errorLog()}`);
    throw err;
  }
});
