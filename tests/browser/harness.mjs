// Test harness for the browser e2e tests: starts the server binary, polls for a condition and
// collects diagnostics. The browsers themselves are in browsers.mjs.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineLog } from './log.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SERVER_BIN = process.env.MM_BIN
  ? path.resolve(process.env.MM_BIN)
  : path.resolve(here, '../../target/debug/multiparty-meeting');
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Fails (never skips) with a build hint when the server binary is missing. */
export function checkPrerequisites() {
  const problems = [];
  if (!fs.existsSync(SERVER_BIN)) {
    problems.push(`server binary not found at ${SERVER_BIN}: build it with \`cargo build\` in the repository root, or point MM_BIN at it`);
  }
  if (problems.length) throw new Error(`browser e2e prerequisites missing:\n  - ${problems.join('\n  - ')}`);
}

/**
 * The server under test. start() picks the HTTP port once (kept across restart() so that
 * clients can reconnect to the same address) and a random 200-port RTC window.
 */
export class ServerProcess {
  /** env: extra MM_* configuration for this server (e.g. MM_MAX_USERS_PER_ROOM). */
  constructor({ env = {} } = {}) {
    this.extraEnv = env;
    this.port = 0;
    this.rtcMin = 40000 + Math.floor(Math.random() * 49) * 200; // 40000..49600, window of 200 inside 40000-49999
    this.rtcMax = this.rtcMin + 199;
    this.proc = null;
    this.log = new LineLog();
    this.exits = [];
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The server's /metrics samples, as a Map from `name{labels}` to its value. */
  async metrics() {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`GET /metrics -> ${res.status}`);
    const samples = new Map();
    for (const line of (await res.text()).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const at = line.lastIndexOf(' ');
      samples.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return samples;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    if (!this.metricsPort) this.metricsPort = await freePort();
    // The server reads every MM_* variable as configuration and refuses unknown ones
    // (MM_BIN among them), so pass none of ours through.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MM_')));
    const env = {
      ...inherited,
      MM_LISTENING_HOST: '127.0.0.1',
      MM_LISTENING_PORT: String(this.port),
      MM_ANNOUNCED_IP: '127.0.0.1',
      MM_RTC_MIN_PORT: String(this.rtcMin),
      MM_RTC_MAX_PORT: String(this.rtcMax),
      // A short drain (config drainTimeout): on SIGTERM the server asks its peers to reconnect
      // after 2 s instead of 60 s, which the graceful-restart test relies on.
      MM_DRAIN_TIMEOUT: '2000',
      // Prometheus text on its own loopback port (config metricsListen), read by metrics().
      MM_METRICS_LISTEN: `127.0.0.1:${this.metricsPort}`,
      RUST_LOG: process.env.RUST_LOG || 'info',
      NO_COLOR: '1',
      ...this.extraEnv,
    };
    this.log.write(`--- starting ${SERVER_BIN} (http ${this.port}, rtc ${this.rtcMin}-${this.rtcMax})\n`);
    // Own process group, so that stop()/kill() also reach anything the binary spawned.
    const proc = spawn(SERVER_BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = proc;
    const killOnExit = () => this._signal('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.removeListener('exit', killOnExit));
    // E2E_SERVER_LOG=FILE keeps the whole server output (the log above keeps the last lines).
    const full = process.env.E2E_SERVER_LOG ? fs.createWriteStream(process.env.E2E_SERVER_LOG, { flags: 'a' }) : null;
    proc.stdout.on('data', (d) => { this.log.write(d); full?.write(d); });
    proc.stderr.on('data', (d) => { this.log.write(d); full?.write(d); });
    const exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exits.push({ code, signal });
        this.log.write(`--- server exited (code ${code}, signal ${signal})\n`);
        resolve({ code, signal });
      });
      proc.on('error', (err) => {
        this.log.write(`--- could not start the server: ${err.message}\n`);
        resolve({ code: null, signal: null, error: err });
      });
    });
    this.exited = exited;

    const deadline = Date.now() + 30000;
    let lastError = '';
    while (Date.now() < deadline) {
      const gone = await Promise.race([exited, sleep(0).then(() => null)]);
      if (gone) throw new Error(`server exited before /health answered (${JSON.stringify(gone)}):\n${this.log.text()}`);
      try {
        const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        lastError = `GET /health -> ${res.status}`;
      } catch (err) {
        lastError = err.cause?.code || err.message;
      }
      await sleep(200);
    }
    await this.stop();
    throw new Error(`server did not answer GET /health with 200 within 30 s (last: ${lastError}):\n${this.log.text()}`);
  }

  _signal(signal) {
    const proc = this.proc;
    if (!proc?.pid) return;
    try {
      process.kill(-proc.pid, signal);
    } catch {
      try { proc.kill(signal); } catch { /* already gone */ }
    }
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000) {
    if (!this.running) return;
    this._signal('SIGTERM');
    const done = await Promise.race([this.exited, sleep(graceMs).then(() => null)]);
    if (!done) {
      this._signal('SIGKILL');
      await this.exited;
    }
  }

  /** Hard kill (no graceful drain), as in a crash. */
  async kill() {
    if (!this.running) return;
    this._signal('SIGKILL');
    await this.exited;
  }
}

/**
 * Polls `probe` (async, returns {ok, detail}) until ok or timeout; then fails with `what`
 * and the last detail.
 */
export async function waitFor(what, probe, { timeoutMs = 30000, intervalMs = 500 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
    } catch (err) {
      last = { ok: false, detail: `probe threw: ${err.message}` };
    }
    if (last.ok) return last;
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const detail = typeof last.detail === 'string' ? last.detail : JSON.stringify(last.detail, null, 2);
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\nlast observed: ${detail}`);
}

/** What a page knows about the meeting, for assertions and failure messages. */
export async function snapshot(peer) {
  return peer.evaluate(async () => {
    const m = window.meeting;
    if (!m) return { error: 'window.meeting is not defined' };
    const stats = await m.inboundStats();
    return {
      state: m.state,
      peerId: m.peerId,
      connection: document.getElementById('connection-state')?.dataset.state,
      peers: [...m.peers.values()].map((p) => ({ id: p.id, displayName: p.displayName, producers: [...p.producers.values()].map((x) => `${x.source}${x.paused ? '(paused)' : ''}`) })),
      consumers: [...m.consumers.values()].map((c) => ({ id: c.id, peerId: c.peerId, kind: c.kind, source: c.source, mid: c.mid, paused: c.paused })),
      stats,
      notice: m.notice,
    };
  });
}

export function formatDiagnostics({ server, peers }) {
  const parts = [];
  for (const p of peers) parts.push(`----- browser console ${p.label} -----\n${p.log.text()}`);
  if (server) parts.push(`----- server output (last lines) -----\n${server.log.text()}`);
  return parts.join('\n');
}
