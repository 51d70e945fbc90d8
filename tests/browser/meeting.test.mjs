// End-to-end meeting tests: real server binary + headless Chromium peers joining through the web client.

import assert from 'node:assert/strict';
import { waitFor, snapshot, sleep } from './harness.mjs';
import { createSuite, roomName, receivesFrom, tileCount } from './suite.mjs';
import { threeWayMeeting } from './scenarios.mjs';

const suite = createSuite({ kinds: ['chromium'] });
const { server, e2e, join, closePeers } = suite;

e2e('three Chromium pages meet: media both ways, screen share, camera off/on, a page leaving', (t) =>
  threeWayMeeting(suite, t, { kinds: ['chromium', 'chromium', 'chromium'], tag: 'three', sharer: 0 }));

e2e('a peer without camera or microphone joins receive-only, then leaves with the button', async () => {
  const room = roomName('recvonly');
  const a = await join(room, 'Sender');
  const d = await join(room, 'Viewer', {
    initScript: () => {
      const fail = () => Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
      navigator.mediaDevices.getUserMedia = fail;
    },
  });
  const notice = await d.evaluate(() => window.meeting.notice);
  assert.match(notice, /receive-only/i, 'the viewer must see a receive-only notice');
  await waitFor('the viewer to decode the sender', () => receivesFrom(d, [a]), { timeoutMs: 30000 });
  await waitFor('the sender to list the viewer', async () => {
    const snap = await snapshot(a);
    return { ok: snap.peers.some((p) => p.id === d.peerId && p.displayName === 'Viewer'), detail: snap.peers };
  }, { timeoutMs: 10000 });
  const producers = await d.evaluate(() => window.meeting.producers);
  assert.deepEqual(producers, [], 'a receive-only peer must publish nothing');

  // Leaving with the button asks first; "Stay" keeps the meeting, "Leave" ends it: the viewer
  // ends up on the "left" screen, the sender drops it.
  await d.click('#leave-button');
  const asked = await d.evaluate(() => ({ open: document.getElementById('confirm-dialog').open, state: window.meeting.state }));
  assert.deepEqual(asked, { open: true, state: 'joined' }, 'Leave must ask for confirmation before leaving');
  await d.click('#confirm-cancel');
  const stayed = await d.evaluate(() => ({ open: document.getElementById('confirm-dialog').open, state: window.meeting.state }));
  assert.deepEqual(stayed, { open: false, state: 'joined' }, '"Stay" must close the question and keep the meeting');
  await d.click('#leave-button');
  await d.click('#confirm-ok');
  await waitFor('the viewer to be on the left screen after clicking Leave', async () => {
    const s = await d.evaluate(() => ({
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
      const states = await Promise.all([a, b].map((p) => p.evaluate(() => ({
        state: window.meeting.state,
        connection: document.getElementById('connection-state').dataset.state,
      }))));
      return { ok: states.every((s) => s.state === 'reconnecting' && s.connection === 'reconnecting'), detail: states };
    }, { timeoutMs: 10000 });
    // An outage is not everyone leaving: the others stay listed and tiled, greyed (issue 17, bug 4).
    const kept = await a.evaluate((id) => ({
      tile: document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`)?.classList.contains('stale'),
      listed: document.querySelector(`#participant-list li[data-peer-id="${id}"]`)?.classList.contains('stale'),
    }), b.peerId);
    assert.deepEqual(kept, { tile: true, listed: true }, `A must keep B's tile and list entry, greyed (class stale), while reconnecting`);

    await sleep(1000);
    await server.start();
    for (const p of [a, b]) {
      await waitFor(`${p.label} to rejoin`, async () => {
        const s = await p.evaluate(() => ({ state: window.meeting.state, peerId: window.meeting.peerId }));
        return { ok: s.state === 'joined', detail: s };
      }, { timeoutMs: 25000 });
      p.peerId = await p.evaluate(() => window.meeting.peerId);
    }
    await waitFor('A and B to receive each other again after the restart', async () => {
      const ra = await receivesFrom(a, [b]);
      const rb = await receivesFrom(b, [a]);
      return { ok: ra.ok && rb.ok, detail: [ra.detail, rb.detail] };
    }, { timeoutMs: 30000 });
    for (const p of [a, b]) {
      const after = await p.evaluate(() => ({
        stale: document.querySelectorAll('.stale').length,
        tiles: document.querySelectorAll('.tile[data-source="webcam"]').length,
        listed: document.querySelectorAll('#participant-list li').length,
        toasts: window.meeting.toasts.map((x) => x.text),
      }));
      assert.equal(after.stale, 0, `${p.label}: nothing stays greyed once reconnected`);
      assert.equal(after.tiles, 2, `${p.label}: one camera tile each, the stale ones replaced, not duplicated`);
      assert.equal(after.listed, 2, `${p.label}: two people listed`);
      assert.ok(after.toasts.includes('Reconnected'), `${p.label} must say "Reconnected"; toasts: ${JSON.stringify(after.toasts)}`);
    }
    if (expectReconnectNotification) {
      const seen = await Promise.all([a, b].map((p) => p.evaluate(() => window.meeting.log.some((l) => l.method === 'reconnect'))));
      assert.deepEqual(seen, [true, true], 'a draining server (drainTimeout 2 s) must send `reconnect` to both peers before it stops');
    }
    await closePeers(a, b);
  });
}

restartTest('crashes (SIGKILL)', 'crash', () => server.kill());
// SIGTERM: the server drains for drainTimeout (2 s here), then sends `reconnect` and exits.
restartTest('drains (SIGTERM) and asks them to reconnect', 'drain', () => server.stop(10000), { expectReconnectNotification: true });
