// Scaffolding for one test file: one server, one browser of each kind the file asks for
// (launched once, reused by every test of the file), participants that join through the web
// client, and the browser consoles plus server output printed when anything fails.

import { test, before, after } from 'node:test';
import crypto from 'node:crypto';
import { ServerProcess, checkPrerequisites, waitFor, snapshot, formatDiagnostics } from './harness.mjs';
import { launch } from './browsers.mjs';

export const roomName = (tag) => `e2e-${tag}-${crypto.randomBytes(4).toString('hex')}`;

/**
 * Registers before/after hooks and returns the helpers of a test file.
 * kinds: the browsers the file uses, e.g. ['chromium'] or ['firefox', 'chromium'].
 */
export function createSuite({ kinds = ['chromium'], serverEnv = {} } = {}) {
  const server = new ServerProcess({ env: serverEnv });
  const browsers = new Map(); // kind -> launched browser, for the whole file
  const open = []; // participants whose page is still open
  const everyone = []; // every participant ever opened, for diagnostics
  let failed = false;

  before(async () => {
    checkPrerequisites();
    await server.start();
    for (const kind of kinds) browsers.set(kind, await launch(kind));
  });

  after(async () => {
    if (failed) process.stderr.write(`${formatDiagnostics({ server, peers: everyone })}\n`);
    for (const p of open) await p.close().catch(() => {});
    for (const b of browsers.values()) await b.close().catch(() => {});
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
   * A subtest. Awaited subtests do not throw into their parent, so the failure is flagged
   * here; steps after a failed one fail at once instead of waiting on a broken meeting.
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

  function browser(kind = kinds[0]) {
    const b = browsers.get(kind);
    if (!b) throw new Error(`this test file did not launch ${kind} (kinds: ${kinds.join(', ')})`);
    return b;
  }

  /** Opens a page at `path` (e.g. "/room?x=1") without waiting for anything. */
  async function openPage(path, label, { kind = kinds[0], ...options } = {}) {
    const peer = await browser(kind).openPeer(`${server.baseUrl}${path}`, label, options);
    open.push(peer);
    everyone.push(peer);
    return peer;
  }

  /** Opens a page that joins `room` at once (autoJoin) and waits until it is in the meeting. */
  async function join(room, displayName, { kind = kinds[0], query = {}, ...options } = {}) {
    const q = new URLSearchParams({ displayName, autoJoin: '1', ...query });
    const peer = await openPage(`/${room}?${q}`, displayName, { kind, ...options });
    await waitJoined(peer);
    return peer;
  }

  async function waitJoined(peer, timeoutMs = 20000) {
    const joined = await waitFor(`${peer.label} (${peer.kind}) to join (window.meeting.state === 'joined')`, async () => {
      const s = await peer.evaluate(() => ({
        state: window.meeting?.state,
        peerId: window.meeting?.peerId,
        connection: document.getElementById('connection-state')?.dataset.state,
      }));
      return { ok: s.state === 'joined' && !!s.peerId && s.connection === 'connected', detail: s };
    }, { timeoutMs });
    peer.peerId = joined.detail.peerId;
    return peer;
  }

  async function closePeers(...list) {
    for (const p of list) {
      await p.close().catch(() => {});
      const i = open.indexOf(p);
      if (i >= 0) open.splice(i, 1);
    }
  }

  return { server, e2e, step, browser, openPage, join, waitJoined, closePeers, markFailed: () => { failed = true; } };
}

/** True when `peer` decodes video and receives audio of the given source from every peer in `from`. */
export async function receivesFrom(peer, from, { videoSource = 'webcam', audio = true } = {}) {
  const snap = await snapshot(peer);
  const missing = [];
  for (const other of from) {
    const mine = (snap.stats || []).filter((s) => s.peerId === other.peerId);
    const video = mine.some((s) => s.kind === 'video' && s.source === videoSource && s.framesDecoded > 0);
    const sound = mine.some((s) => s.kind === 'audio' && s.packetsReceived > 0);
    if (!video) missing.push(`${videoSource} video from ${other.label} (${other.kind})`);
    if (audio && !sound) missing.push(`audio from ${other.label} (${other.kind})`);
  }
  return { ok: missing.length === 0, detail: { on: `${peer.label} (${peer.kind})`, missing, state: snap.state, consumers: snap.consumers, stats: snap.stats } };
}

/** Waits until every page decodes video and receives audio from every other page. */
export async function waitAllReceive(all, timeoutMs = 30000) {
  for (const p of all) {
    const others = all.filter((o) => o !== p);
    await waitFor(`${p.label} (${p.kind}) to decode webcam video and receive audio from ${others.map((o) => `${o.label} (${o.kind})`).join(' and ')}`,
      () => receivesFrom(p, others), { timeoutMs });
  }
}

/** Number of grid tiles (and list entries, without `source`) for a peer. */
export async function tileCount(peer, peerId, source) {
  return peer.evaluate(
    ({ peerId, source }) => document.querySelectorAll(
      source ? `.tile[data-peer-id="${CSS.escape(peerId)}"][data-source="${source}"]` : `[data-peer-id="${CSS.escape(peerId)}"]`,
    ).length,
    { peerId, source },
  );
}

/** Total decoded frames of `from`'s camera on `peer`. */
export async function framesFrom(peer, from) {
  const snap = await snapshot(peer);
  return (snap.stats || []).filter((s) => s.peerId === from.peerId && s.kind === 'video' && s.source === 'webcam')
    .reduce((n, s) => n + s.framesDecoded, 0);
}
