// End-to-end meeting tests: real server binary + headless Chromium peers joining through the web client.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  ServerProcess, checkPrerequisites, launchChromium, openPeer, waitFor, snapshot, formatDiagnostics, sleep,
} from './harness.mjs';

const server = new ServerProcess();
let browser = null;
const peers = []; // participants whose browser context is still open
const everyone = []; // every participant ever opened, for diagnostics
let failed = false;

const roomName = (tag) => `e2e-${tag}-${crypto.randomBytes(4).toString('hex')}`;

before(async () => {
  checkPrerequisites();
  await server.start();
  browser = await launchChromium();
});

after(async () => {
  if (failed) process.stderr.write(`${formatDiagnostics({ server, peers: everyone })}\n`);
  for (const p of peers) await p.context.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server.stop();
});

/** Runs a test body; any failure makes after() print the browser consoles and server output. */
function e2e(name, body, options = {}) {
  test(name, { timeout: 180000, ...options }, async (t) => {
    try {
      await body(t);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

/**
 * A subtest of an e2e test. Awaited subtests do not throw into their parent, so the failure is
 * flagged here; steps after a failed one fail at once instead of waiting on a broken meeting.
 */
const brokenBy = new WeakMap(); // parent test context -> name of the step that failed
function step(t, name, body) {
  return t.test(name, async () => {
    if (brokenBy.has(t)) throw new Error(`not attempted: the earlier step "${brokenBy.get(t)}" failed`);
    try {
      await body();
    } catch (err) {
      failed = true;
      brokenBy.set(t, name);
      throw err;
    }
  });
}

async function closePeers(...list) {
  for (const p of list) {
    await p.context.close().catch(() => {});
    const i = peers.indexOf(p);
    if (i >= 0) peers.splice(i, 1);
  }
}

async function join(room, displayName, options) {
  const url = `${server.baseUrl}/${room}?displayName=${encodeURIComponent(displayName)}&autoJoin=1`;
  const peer = await openPeer(browser, url, displayName, options);
  peers.push(peer);
  everyone.push(peer);
  const joined = await waitFor(`${displayName} to join (window.meeting.state === 'joined')`, async () => {
    const s = await peer.page.evaluate(() => ({
      state: window.meeting?.state,
      peerId: window.meeting?.peerId,
      connection: document.getElementById('connection-state')?.dataset.state,
    }));
    return { ok: s.state === 'joined' && !!s.peerId && s.connection === 'connected', detail: s };
  }, { timeoutMs: 20000 });
  peer.peerId = joined.detail.peerId;
  return peer;
}

/** True when `peer` decodes video and receives audio of the given source from every peer in `from`. */
async function receivesFrom(peer, from, { videoSource = 'webcam', audio = true } = {}) {
  const snap = await snapshot(peer);
  const missing = [];
  for (const other of from) {
    const mine = snap.stats.filter((s) => s.peerId === other.peerId);
    const video = mine.some((s) => s.kind === 'video' && s.source === videoSource && s.framesDecoded > 0);
    const sound = mine.some((s) => s.kind === 'audio' && s.packetsReceived > 0);
    if (!video) missing.push(`${videoSource} video from ${other.label}`);
    if (audio && !sound) missing.push(`audio from ${other.label}`);
  }
  return { ok: missing.length === 0, detail: { on: peer.label, missing, state: snap.state, consumers: snap.consumers, stats: snap.stats } };
}

async function tileCount(peer, peerId, source) {
  return peer.page.evaluate(
    ({ peerId, source }) => document.querySelectorAll(
      source ? `[data-peer-id="${CSS.escape(peerId)}"][data-source="${source}"]` : `[data-peer-id="${CSS.escape(peerId)}"]`,
    ).length,
    { peerId, source },
  );
}

e2e('three peers see and hear each other', async (t) => {
  const room = roomName('three');
  const a = await join(room, 'A');
  const b = await join(room, 'B');
  const c = await join(room, 'C');
  const all = [a, b, c];
  assert.equal(new Set(all.map((p) => p.peerId)).size, 3, 'each page must get its own peerId');

  await step(t, 'every page decodes video and receives audio from the two others', async () => {
    for (const p of all) {
      const others = all.filter((o) => o !== p);
      await waitFor(`${p.label} to decode webcam video and receive audio from ${others.map((o) => o.label).join(' and ')}`,
        () => receivesFrom(p, others), { timeoutMs: 30000 });
      const snap = await snapshot(p);
      for (const o of others) {
        assert.ok(snap.peers.some((x) => x.id === o.peerId && x.displayName === o.label),
          `${p.label}'s participant list must contain ${o.label} (${o.peerId}); has ${JSON.stringify(snap.peers)}`);
        assert.equal(await tileCount(p, o.peerId, 'webcam'), 1, `${p.label} must show exactly one camera tile for ${o.label}`);
      }
    }
  });

  await step(t, 'when C closes its page, its tile disappears on A and B', async () => {
    await closePeers(c);
    for (const p of [a, b]) {
      await waitFor(`C's tile and list entry (data-peer-id=${c.peerId}) to disappear on ${p.label}`, async () => {
        const n = await tileCount(p, c.peerId);
        const snap = await snapshot(p);
        return { ok: n === 0 && !snap.peers.some((x) => x.id === c.peerId), detail: { elements: n, peers: snap.peers } };
      }, { timeoutMs: 10000 });
    }
    // The remaining two still exchange media.
    await waitFor('A and B to keep receiving each other after C left', async () => {
      const ra = await receivesFrom(a, [b]);
      const rb = await receivesFrom(b, [a]);
      return { ok: ra.ok && rb.ok, detail: [ra.detail.missing, rb.detail.missing] };
    }, { timeoutMs: 10000 });
  });

  await step(t, 'A shares its screen and B decodes it; stopping removes the tile', async () => {
    await a.page.click('#screen-button');
    await waitFor('A to be sharing (meeting.sharing and a screen producer)', async () => {
      const s = await a.page.evaluate(() => ({ sharing: window.meeting.sharing, producers: window.meeting.producers }));
      return { ok: s.sharing && s.producers.some((p) => p.source === 'screen'), detail: s };
    }, { timeoutMs: 10000 });
    await waitFor('B to decode a screen video consumer from A', () => receivesFrom(b, [a], { videoSource: 'screen', audio: false }),
      { timeoutMs: 30000 });
    assert.equal(await tileCount(b, a.peerId, 'screen'), 1, 'B must show one screen tile (data-source="screen") for A');
    assert.equal(await tileCount(b, a.peerId, 'webcam'), 1, 'B must still show A\'s camera tile while A shares');

    await a.page.click('#screen-button');
    await waitFor('A\'s screen tile to disappear on B after A stops sharing', async () => {
      const n = await tileCount(b, a.peerId, 'screen');
      return { ok: n === 0, detail: { screenTiles: n } };
    }, { timeoutMs: 10000 });

    // Sharing again reuses the stopped transceiver (publish lists the old mid again).
    await a.page.evaluate(() => window.meeting.startScreenShare());
    await waitFor('B to decode A\'s second screen share', async () => {
      const r = await receivesFrom(b, [a], { videoSource: 'screen', audio: false });
      const n = await tileCount(b, a.peerId, 'screen');
      return { ok: r.ok && n === 1, detail: { ...r.detail, screenTiles: n } };
    }, { timeoutMs: 30000 });
    await a.page.evaluate(() => window.meeting.stopScreenShare());
  });

  await step(t, 'camera off shows A\'s avatar on B, camera on shows video again', async () => {
    await a.page.click('#cam-button');
    await waitFor('A\'s tile on B to switch to the avatar (class video-off) and the list to say cam off', async () => {
      const s = await b.page.evaluate((id) => ({
        tileOff: document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`)?.classList.contains('video-off'),
        camState: document.querySelector(`#participant-list li[data-peer-id="${id}"] .state-cam`)?.dataset.on,
      }), a.peerId);
      return { ok: s.tileOff === true && s.camState === 'false', detail: s };
    }, { timeoutMs: 10000 });
    const before = (await snapshot(b)).stats.filter((s) => s.peerId === a.peerId && s.kind === 'video' && s.source === 'webcam')
      .reduce((n, s) => n + s.framesDecoded, 0);
    await a.page.click('#cam-button');
    await waitFor('A\'s video to show and decode again on B after the camera is back on', async () => {
      const snap = await snapshot(b);
      const frames = snap.stats.filter((s) => s.peerId === a.peerId && s.kind === 'video' && s.source === 'webcam')
        .reduce((n, s) => n + s.framesDecoded, 0);
      const tileOff = await b.page.evaluate((id) => document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`)?.classList.contains('video-off'), a.peerId);
      return { ok: tileOff === false && frames > before + 10, detail: { before, frames, tileOff } };
    }, { timeoutMs: 20000 });
  });

  await closePeers(a, b);
});

e2e('a peer without camera or microphone joins receive-only, then leaves with the button', async () => {
  const room = roomName('recvonly');
  const a = await join(room, 'Sender');
  const d = await join(room, 'Viewer', {
    initScript: () => {
      const fail = () => Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
      navigator.mediaDevices.getUserMedia = fail;
    },
  });
  const notice = await d.page.evaluate(() => window.meeting.notice);
  assert.match(notice, /receive-only/i, 'the viewer must see a receive-only notice');
  await waitFor('the viewer to decode the sender', () => receivesFrom(d, [a]), { timeoutMs: 30000 });
  await waitFor('the sender to list the viewer', async () => {
    const snap = await snapshot(a);
    return { ok: snap.peers.some((p) => p.id === d.peerId && p.displayName === 'Viewer'), detail: snap.peers };
  }, { timeoutMs: 10000 });
  const producers = await d.page.evaluate(() => window.meeting.producers);
  assert.deepEqual(producers, [], 'a receive-only peer must publish nothing');

  // Leaving with the button: the viewer ends up on the "left" screen, the sender drops it.
  await d.page.click('#leave-button');
  await waitFor('the viewer to be on the left screen after clicking Leave', async () => {
    const s = await d.page.evaluate(() => ({
      state: window.meeting.state,
      leftScreen: !document.getElementById('left-screen').hidden,
      connection: document.getElementById('connection-state').dataset.state,
    }));
    return { ok: s.state === 'closed' && s.leftScreen, detail: s };
  }, { timeoutMs: 5000 });
  await waitFor('the sender to drop the viewer after it left', async () => {
    const n = await tileCount(a, d.peerId);
    const snap = await snapshot(a);
    return { ok: n === 0 && !snap.peers.some((p) => p.id === d.peerId), detail: { elements: n, peers: snap.peers } };
  }, { timeoutMs: 10000 });
  await closePeers(a, d);
});

/** Both peers lose the server, show "reconnecting", and rejoin by themselves once it is back. */
function restartTest(how, tag, stopServer, { expectReconnectNotification = false } = {}) {
  e2e(`peers reconnect on their own after the server ${how}`, async (t) => {
    const room = roomName(tag);
    const a = await join(room, `A-${tag}`);
    const b = await join(room, `B-${tag}`);
    await waitFor('A and B to receive each other', async () => {
      const ra = await receivesFrom(a, [b]);
      const rb = await receivesFrom(b, [a]);
      return { ok: ra.ok && rb.ok, detail: [ra.detail, rb.detail] };
    }, { timeoutMs: 30000 });

    const stoppedAt = Date.now();
    await stopServer();
    const exit = server.exits.at(-1);
    t.diagnostic(`server stopped in ${Date.now() - stoppedAt} ms (code ${exit?.code}, signal ${exit?.signal})`);
    await waitFor('both pages to show the reconnecting state', async () => {
      const states = await Promise.all([a, b].map((p) => p.page.evaluate(() => ({
        state: window.meeting.state,
        connection: document.getElementById('connection-state').dataset.state,
      }))));
      return { ok: states.every((s) => s.state === 'reconnecting' && s.connection === 'reconnecting'), detail: states };
    }, { timeoutMs: 10000 });
    const remoteTiles = await a.page.evaluate(() => document.querySelectorAll('.tile:not([data-self])').length);
    assert.equal(remoteTiles, 0, 'remote tiles must be cleared while reconnecting');

    await sleep(1000);
    await server.start();
    for (const p of [a, b]) {
      await waitFor(`${p.label} to rejoin`, async () => {
        const s = await p.page.evaluate(() => ({ state: window.meeting.state, peerId: window.meeting.peerId }));
        return { ok: s.state === 'joined', detail: s };
      }, { timeoutMs: 25000 });
      p.peerId = await p.page.evaluate(() => window.meeting.peerId);
    }
    await waitFor('A and B to receive each other again after the restart', async () => {
      const ra = await receivesFrom(a, [b]);
      const rb = await receivesFrom(b, [a]);
      return { ok: ra.ok && rb.ok, detail: [ra.detail, rb.detail] };
    }, { timeoutMs: 30000 });
    if (expectReconnectNotification) {
      const seen = await Promise.all([a, b].map((p) => p.page.evaluate(() => window.meeting.log.some((l) => l.method === 'reconnect'))));
      assert.deepEqual(seen, [true, true], 'a draining server (drainTimeout 2 s) must send `reconnect` to both peers before it stops');
    }
    await closePeers(a, b);
  });
}

restartTest('crashes (SIGKILL)', 'crash', () => server.kill());
// SIGTERM: the server drains for drainTimeout (2 s here), then sends `reconnect` and exits.
restartTest('drains (SIGTERM) and asks them to reconnect', 'drain', () => server.stop(10000), { expectReconnectNotification: true });
