// ICE over TCP: browsers that cannot reach the server over UDP (a firewall) still join,
// through the passive TCP candidate every media worker offers on its UDP port. The
// "firewall" here: Chromium's policy against non-proxied UDP, and the server's UDP
// candidates removed from every SDP the page applies.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ServerProcess, checkPrerequisites, waitFor, formatDiagnostics } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const server = new ServerProcess();
let browser = null;
const peers = [];
let failed = false;

before(async () => {
  checkPrerequisites();
  await server.start();
  // No UDP for WebRTC at all: only TCP candidates are gathered and used.
  browser = await launchChromium({ args: ['--force-webrtc-ip-handling-policy=disable_non_proxied_udp'] });
});

after(async () => {
  if (failed) process.stderr.write(`${formatDiagnostics({ server, peers })}\n`);
  for (const p of peers) await p.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server.stop();
});

/** Runs in the page before its scripts: the server's UDP candidates never reach ICE. */
function blockServerUdp() {
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (desc, ...rest) {
    if (desc && desc.sdp) {
      const sdp = desc.sdp
        .split('\r\n')
        .filter((line) => !/^a=candidate:\S+ \d+ udp /i.test(line))
        .join('\r\n');
      desc = { type: desc.type, sdp };
    }
    return apply.call(this, desc, ...rest);
  };
}

/** Protocol of the candidate pair each peer connection of the page actually uses. */
async function selectedProtocols(peer) {
  return peer.evaluate(async () => {
    const out = [];
    for (const pc of [window.meeting.sendPc, window.meeting.recvPc]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      const local = pair && stats.get(pair.localCandidateId);
      out.push(local ? local.protocol : 'none');
    }
    return out;
  });
}

test('peers without UDP meet over ICE-TCP', { timeout: 120000 }, async () => {
  try {
    const room = `tcp-${crypto.randomBytes(4).toString('hex')}`;
    for (const name of ['A', 'B']) {
      peers.push(await browser.openPeer(`${server.baseUrl}/${room}?displayName=${name}&autoJoin=1`, name, {
        initScript: blockServerUdp,
      }));
    }
    for (const [me, other] of [[peers[0], peers[1]], [peers[1], peers[0]]]) {
      await waitFor(`${me.label} decodes ${other.label}'s video and receives its audio over TCP`, async () => {
        const stats = await me.evaluate(() => window.meeting.inboundStats());
        const video = stats.some((s) => s.kind === 'video' && s.framesDecoded > 0);
        const audio = stats.some((s) => s.kind === 'audio' && s.packetsReceived > 0);
        return { ok: video && audio, detail: stats };
      });
      const protocols = await selectedProtocols(me);
      assert.deepEqual(protocols, ['tcp', 'tcp'], `${me.label}'s send and recv connections run over TCP`);
    }
  } catch (err) {
    failed = true;
    throw err;
  }
});
