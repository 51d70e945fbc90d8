// Meeting scenarios written once and run with any mix of browsers: a test file says which
// browser each participant uses, the body is the same for Chromium, Firefox and mixed rooms.

import assert from 'node:assert/strict';
import { waitFor, snapshot } from './harness.mjs';
import { roomName, receivesFrom, waitAllReceive, tileCount, framesFrom } from './suite.mjs';

/**
 * Three participants (browser kinds given in `kinds`, e.g. ['firefox', 'chromium', 'firefox'])
 * meet: each decodes the others' camera and receives their audio; the first one's camera goes
 * off and on again; `sharer` (an index, or null) shares its screen and the others decode it;
 * the last one closes its page and the two others drop it and keep receiving each other;
 * the server refused none of the RTCP the browsers sent.
 */
export async function threeWayMeeting(suite, t, { kinds, tag, sharer = 0 }) {
  const { join, step, closePeers } = suite;
  const room = roomName(tag);
  const names = ['A', 'B', 'C'];
  const all = [];
  for (let i = 0; i < 3; i++) all.push(await join(room, names[i], { kind: kinds[i] }));
  const [a, b, c] = all;
  assert.equal(new Set(all.map((p) => p.peerId)).size, 3, 'each page must get its own peerId');

  await step(t, 'every page decodes video and receives audio from the two others', async () => {
    await waitAllReceive(all);
    for (const p of all) {
      const snap = await snapshot(p);
      for (const o of all.filter((x) => x !== p)) {
        assert.ok(snap.peers.some((x) => x.id === o.peerId && x.displayName === o.label),
          `${p.label}'s participant list must contain ${o.label} (${o.peerId}); has ${JSON.stringify(snap.peers)}`);
        assert.equal(await tileCount(p, o.peerId, 'webcam'), 1, `${p.label} must show exactly one camera tile for ${o.label}`);
      }
    }
  });

  if (sharer !== null) {
    const s = all[sharer];
    const viewers = all.filter((x) => x !== s);
    await step(t, `${s.label} (${s.kind}) shares its screen and the others decode it; stopping removes the tile`, async () => {
      await s.click('#screen-button');
      await waitFor(`${s.label} to be sharing (meeting.sharing and a screen producer)`, async () => {
        const st = await s.evaluate(() => ({ sharing: window.meeting.sharing, producers: window.meeting.producers }));
        return { ok: st.sharing && st.producers.some((p) => p.source === 'screen'), detail: st };
      }, { timeoutMs: 10000 });
      for (const v of viewers) {
        await waitFor(`${v.label} (${v.kind}) to decode a screen video consumer from ${s.label}`,
          () => receivesFrom(v, [s], { videoSource: 'screen', audio: false }), { timeoutMs: 30000 });
        assert.equal(await tileCount(v, s.peerId, 'screen'), 1, `${v.label} must show one screen tile for ${s.label}`);
        assert.equal(await tileCount(v, s.peerId, 'webcam'), 1, `${v.label} must still show ${s.label}'s camera tile while it shares`);
      }
      await s.click('#screen-button');
      for (const v of viewers) {
        await waitFor(`${s.label}'s screen tile to disappear on ${v.label} after it stops sharing`, async () => {
          const n = await tileCount(v, s.peerId, 'screen');
          return { ok: n === 0, detail: { screenTiles: n } };
        }, { timeoutMs: 10000 });
      }
      // Sharing again reuses the stopped transceiver (publish lists the old mid again).
      await s.evaluate(() => window.meeting.startScreenShare());
      await waitFor(`${viewers[0].label} to decode ${s.label}'s second screen share`, async () => {
        const r = await receivesFrom(viewers[0], [s], { videoSource: 'screen', audio: false });
        const n = await tileCount(viewers[0], s.peerId, 'screen');
        return { ok: r.ok && n === 1, detail: { ...r.detail, screenTiles: n } };
      }, { timeoutMs: 30000 });
      await s.evaluate(() => window.meeting.stopScreenShare());
    });
  }

  await step(t, `camera off shows ${a.label}'s avatar on the others, camera on shows video again`, async () => {
    const before = new Map();
    for (const v of [b, c]) before.set(v, await framesFrom(v, a));
    await a.click('#cam-button');
    for (const v of [b, c]) {
      await waitFor(`${a.label}'s tile on ${v.label} (${v.kind}) to switch to the avatar (class video-off) and the list to say cam off`, async () => {
        const s = await v.evaluate((id) => ({
          tileOff: document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`)?.classList.contains('video-off'),
          camState: document.querySelector(`#participant-list li[data-peer-id="${id}"] .state-cam`)?.dataset.on,
        }), a.peerId);
        return { ok: s.tileOff === true && s.camState === 'false', detail: s };
      }, { timeoutMs: 10000 });
      before.set(v, await framesFrom(v, a));
    }
    await a.click('#cam-button');
    for (const v of [b, c]) {
      await waitFor(`${a.label}'s video to show and decode again on ${v.label} (${v.kind}) after the camera is back on`, async () => {
        const frames = await framesFrom(v, a);
        const tileOff = await v.evaluate((id) => document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`)?.classList.contains('video-off'), a.peerId);
        return { ok: tileOff === false && frames > before.get(v) + 10, detail: { before: before.get(v), frames, tileOff } };
      }, { timeoutMs: 20000 });
    }
  });

  await step(t, `when ${c.label} (${c.kind}) closes its page, its tile disappears on the others`, async () => {
    await closePeers(c);
    for (const p of [a, b]) {
      await waitFor(`${c.label}'s tile and list entry (data-peer-id=${c.peerId}) to disappear on ${p.label}`, async () => {
        const n = await tileCount(p, c.peerId);
        const snap = await snapshot(p);
        return { ok: n === 0 && !snap.peers.some((x) => x.id === c.peerId), detail: { elements: n, peers: snap.peers } };
      }, { timeoutMs: 10000 });
    }
    await waitFor(`${a.label} and ${b.label} to keep receiving each other after ${c.label} left`, async () => {
      const ra = await receivesFrom(a, [b]);
      const rb = await receivesFrom(b, [a]);
      return { ok: ra.ok && rb.ok, detail: [ra.detail.missing, rb.detail.missing] };
    }, { timeoutMs: 10000 });
  });

  await step(t, 'the server read every report, NACK and keyframe request the browsers sent', async () => {
    // Each browser sends RTCP from several SSRCs (Firefox: one per receiving m-line); a
    // refused packet is feedback lost (a picture that never recovers, a NACK never answered).
    const m = await suite.server.metrics();
    assert.equal(m.get('mm_subscriber_rtcp_dropped_total'), 0,
      `SRTCP from subscribers refused (mm_subscriber_rtcp_dropped_total); PLIs read: ${m.get('mm_plis_received_total')}`);
  });

  await closePeers(a, b);
}
