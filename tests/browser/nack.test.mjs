// Loss between the server and real browsers, repaired by NACK from the producer's shared
// history (src/sfu/history.rs, src/sfu/egress): a Chromium page publishes; a Chromium and a
// Firefox page subscribe while a random share of everything the server sends is dropped
// (nftables, on the output of the server's media ports). Each browser asks for the missing
// packets (RTCP NACK, from its own SSRCs), the server resends them over RTX, and the browser
// takes them: it asks for each lost packet about once. The Rust test tests/nack_loss.rs
// measures the residual loss with our client; this one is the browsers' own NACK and RTX code.
//
// Measured with the server not answering (a local experiment, 3 runs): the browsers asked
// 985 to 1,198 times for packets in 10 s (each lost packet again and again) and decoded 140
// to 200 frames of a stream instead of 222 to 242. Their own `packetsLost` is no measure of
// repair: without answers it stayed at 0.4 to 3.8 % (they move on to later keyframes and
// layers); it is printed, not asserted.

import assert from 'node:assert/strict';
import { sleep, snapshot } from './harness.mjs';
import { createSuite, roomName, waitAllReceive } from './suite.mjs';
import { dropUdpFrom } from './pictures.mjs';

const suite = createSuite({ kinds: ['chromium', 'firefox'] });
const { server, e2e, join, closePeers } = suite;

const LOSS_PERCENT = 10;
const LOSSY_MS = 10000;

/** `viewer`'s inbound video from `from`'s camera: the stats the browser reports. */
async function videoFrom(viewer, from) {
  const snap = await snapshot(viewer);
  const s = (snap.stats || []).find((x) => x.peerId === from.peerId && x.kind === 'video' && x.source === 'webcam');
  assert.ok(s, `${viewer.label} has inbound video stats for ${from.label}: ${JSON.stringify(snap.stats)}`);
  return s;
}

e2e(`browsers repair ${LOSS_PERCENT} % loss from the server through NACK, answered from the shared history`, async () => {
  const room = roomName('nack');
  const pub = await join(room, 'Pub', { kind: 'chromium' });
  const viewers = [await join(room, 'Chro', { kind: 'chromium' }), await join(room, 'Fox', { kind: 'firefox' })];
  await waitAllReceive([pub, ...viewers]);

  const before = new Map();
  for (const v of viewers) before.set(v, await videoFrom(v, pub));
  const m0 = await server.metrics();
  const undrop = dropUdpFrom({ min: server.rtcMin, max: server.rtcMax, percent: LOSS_PERCENT });
  let dropped;
  try {
    await sleep(LOSSY_MS);
  } finally {
    dropped = undrop();
  }
  // Time for the last NACKs and their answers.
  await sleep(1500);
  const m1 = await server.metrics();
  const delta = (name) => m1.get(name) - m0.get(name);

  const lines = [];
  const results = [];
  for (const v of viewers) {
    const a = before.get(v);
    const b = await videoFrom(v, pub);
    const received = b.packetsReceived - a.packetsReceived;
    const lost = b.packetsLost - a.packetsLost;
    const residual = (100 * lost) / Math.max(1, received + lost);
    const rtx = b.retransmittedPacketsReceived - a.retransmittedPacketsReceived;
    results.push({ v, nacks: b.nackCount - a.nackCount, frames: b.framesDecoded - a.framesDecoded, rtx });
    lines.push(`${v.label} (${v.kind}): ${received} video packets received, ${lost} lost after repair (its packetsLost, ${residual.toFixed(2)} %), ${b.nackCount - a.nackCount} NACKs sent, ${rtx} retransmissions received, ${b.framesDecoded - a.framesDecoded} frames decoded`);
  }
  process.stdout.write(`# ${dropped} datagrams from the server dropped (${LOSS_PERCENT} %) in ${LOSSY_MS / 1000} s; server: ${delta('mm_nacks_received_total')} packets asked for, ${delta('mm_resends_from_history_total')} resent from the history\n#   ${lines.join('\n#   ')}\n`);

  assert.ok(dropped > 100, `the rule dropped datagrams (${dropped})`);
  assert.equal(m1.get('mm_subscriber_rtcp_dropped_total'), 0, 'every NACK and report the browsers sent was read');
  const asked = delta('mm_nacks_received_total');
  const resent = delta('mm_resends_from_history_total');
  assert.ok(resent > 0 && resent >= 0.9 * asked, `the server resent what was asked for from the history (${resent} of ${asked})`);
  // A browser that did not get a retransmission, or could not use it, asks again (up to ten
  // times in libwebrtc): asking about once per lost packet shows the RTX packets were taken.
  assert.ok(asked < dropped / 2,
    `the browsers asked ${asked} times for packets while ${dropped} datagrams were dropped: they asked again and again, so the retransmissions did not repair the loss`);
  for (const r of results) {
    assert.ok(r.nacks > 0, `${r.v.label} (${r.v.kind}) sent NACKs`);
    assert.ok(r.frames > 0, `${r.v.label} (${r.v.kind}) kept decoding`);
    if (r.v.kind === 'chromium') {
      // Firefox does not report retransmittedPacketsReceived.
      assert.ok(r.rtx > 0, `${r.v.label} (${r.v.kind}) counted retransmissions received (${r.rtx})`);
    }
  }
  await closePeers(pub, ...viewers);
});
