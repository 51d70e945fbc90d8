// TURN through a real coturn (Debian `coturn`) on loopback, with the REST shared-secret scheme
// ([turn] urls/secret): Chromium pages forced to relay (`?relay=1`, iceTransportPolicy "relay")
// send and receive media through it, on relay candidates; with a secret coturn does not know,
// the page says clearly that TURN refused its credentials, and no media flows.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  ServerProcess, checkPrerequisites, waitFor, formatDiagnostics, freePort, sleep,
} from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const SECRET = `coturn-${crypto.randomBytes(12).toString('hex')}`;
let coturn = null;
let browser = null;
const servers = [];
const peers = [];
let failed = false;

/** coturn on 127.0.0.1 with its own ports and a temp dir; resolves once it accepts TCP. */
async function startCoturn() {
  let bin;
  try {
    bin = execFileSync('sh', ['-c', 'command -v turnserver'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('turnserver not found: install it with `apt-get install -y coturn` (scripts/test does)');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-coturn-'));
  const port = await freePort();
  const relayMin = 50000 + Math.floor(Math.random() * 100) * 100;
  const conf = [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    `min-port=${relayMin}`,
    `max-port=${relayMin + 99}`,
    'use-auth-secret',
    `static-auth-secret=${SECRET}`,
    'realm=meet.test',
    'allow-loopback-peers',
    'no-tls',
    'no-dtls',
    'no-cli',
    'fingerprint',
    `log-file=${path.join(dir, 'turn.log')}`,
    `pidfile=${path.join(dir, 'turn.pid')}`,
    'simple-log',
    'verbose',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'turnserver.conf'), `${conf}\n`);
  const proc = spawn(bin, ['-c', path.join(dir, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const deadline = Date.now() + 15000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`coturn did not start (exit ${proc.exitCode}):\n${output}`);
    }
    await sleep(100);
  }
  return {
    port,
    url: `turn:127.0.0.1:${port}?transport=udp`,
    log: () => { try { return fs.readFileSync(path.join(dir, 'turn.log'), 'utf8').split('\n').slice(-60).join('\n'); } catch { return output; } },
    stop: () => {
      try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

before(async () => {
  checkPrerequisites();
  coturn = await startCoturn();
  browser = await launchChromium();
});

after(async () => {
  if (failed) {
    process.stderr.write(`${formatDiagnostics({ server: servers[0], peers })}\n`);
    for (const s of servers.slice(1)) process.stderr.write(`----- other server -----\n${s.log.text()}\n`);
    if (coturn) process.stderr.write(`----- coturn log -----\n${coturn.log()}\n`);
  }
  for (const p of peers) await p.close().catch(() => {});
  await browser?.close().catch(() => {});
  for (const s of servers) await s.stop();
  coturn?.stop();
});

async function startServer(secret) {
  const server = new ServerProcess({ env: { MM_TURN_URLS: coturn.url, MM_TURN_SECRET: secret } });
  servers.push(server);
  await server.start();
  return server;
}

/** Candidate types of the pair each peer connection of the page uses ({send, recv}). */
async function selectedCandidates(peer) {
  return peer.page.evaluate(async () => {
    const out = {};
    for (const [name, pc] of [['send', window.meeting.sendPc], ['recv', window.meeting.recvPc]]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      const local = pair && stats.get(pair.localCandidateId);
      out[name] = local ? `${local.candidateType}/${local.protocol}` : 'none';
    }
    return out;
  });
}

test('pages forced to relay have media both ways through coturn', { timeout: 120000 }, async () => {
  try {
    const server = await startServer(SECRET);
    const room = `turn-${crypto.randomBytes(4).toString('hex')}`;
    const a = await browser.openPeer(`${server.baseUrl}/${room}?displayName=A&autoJoin=1&relay=1`, 'A');
    const b = await browser.openPeer(`${server.baseUrl}/${room}?displayName=B&autoJoin=1&relay=1`, 'B');
    peers.push(a, b);
    for (const [me, other] of [[a, b], [b, a]]) {
      await waitFor(`${me.label} decodes ${other.label}'s video and receives its audio through TURN`, async () => {
        const stats = await me.page.evaluate(() => window.meeting.inboundStats());
        const video = stats.some((s) => s.kind === 'video' && s.framesDecoded > 5);
        const audio = stats.some((s) => s.kind === 'audio' && s.packetsReceived > 5);
        return { ok: video && audio, detail: stats };
      }, { timeoutMs: 60000 });
    }
    for (const p of [a, b]) {
      const used = await selectedCandidates(p);
      assert.deepEqual(used, { send: 'relay/udp', recv: 'relay/udp' }, `${p.label} sends and receives on relay candidates`);
      const notice = await p.page.evaluate(() => document.getElementById('meeting-notice').textContent);
      assert.ok(!/TURN/.test(notice), `no TURN complaint when TURN works: ${notice}`);
    }
  } catch (err) {
    failed = true;
    throw err;
  }
});

test('a secret coturn does not know fails with a clear message on the page', { timeout: 120000 }, async () => {
  try {
    const server = await startServer(`not-${SECRET}`);
    const room = `turn-bad-${crypto.randomBytes(4).toString('hex')}`;
    const c = await browser.openPeer(`${server.baseUrl}/${room}?displayName=C&autoJoin=1&relay=1`, 'C');
    const d = await browser.openPeer(`${server.baseUrl}/${room}?displayName=D&autoJoin=1&relay=1`, 'D');
    peers.push(c, d);
    for (const p of [c, d]) {
      await waitFor(`${p.label} says TURN refused its credentials`, async () => {
        const notice = await p.page.evaluate(() => document.getElementById('meeting-notice').textContent);
        return { ok: /TURN server .* refused this meeting's credentials \(401/.test(notice), detail: notice };
      }, { timeoutMs: 30000 });
    }
    const stats = await c.page.evaluate(() => window.meeting.inboundStats());
    assert.ok(!stats.some((s) => s.framesDecoded > 0 || s.packetsReceived > 0), `no media without TURN: ${JSON.stringify(stats)}`);
  } catch (err) {
    failed = true;
    throw err;
  }
});
