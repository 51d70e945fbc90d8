// Shared harness of the deployment tests: real processes (our binary, redis-server, nginx,
// caddy, Chromium) on free loopback ports in temp dirs, always stopped at the end of a test,
// plus small HTTP/WebSocket clients that talk to 127.0.0.1 only.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
export const MM_BIN = process.env.MM_BIN
  ? path.resolve(process.env.MM_BIN)
  : path.resolve(HERE, '../../target/debug/multiparty-meeting');
export const CHROMIUM = '/usr/lib/chromium/chromium';
export const COOKIE_NAME = 'multiparty-meeting.sid';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`'s value, or null when it takes longer than `ms` (the timer does not linger). */
export function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------ prerequisites

/** Absolute path of `name` (PATH plus the sbin dirs), or an error naming the Debian package. */
export function requireTool(name, debianPackage) {
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  throw new Error(`'${name}' is not installed: install the Debian package '${debianPackage}' (apt-get install -y ${debianPackage})`);
}

export function requireServerBinary() {
  try {
    fs.accessSync(MM_BIN, fs.constants.X_OK);
  } catch {
    throw new Error(`server binary ${MM_BIN} is missing: run \`cargo build --bin multiparty-meeting\` in ${REPO} (tests/deploy/run.sh does it), or set MM_BIN`);
  }
  return MM_BIN;
}

export function requireChromium() {
  try {
    fs.accessSync(CHROMIUM, fs.constants.X_OK);
  } catch {
    throw new Error(`${CHROMIUM} is missing: install the Debian package 'chromium' (apt-get install -y chromium)`);
  }
  return CHROMIUM;
}

// ------------------------------------------------------------------ ports, dirs, files

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

const usedRtcWindows = new Set();
/** A 100-port UDP window inside 40000-49999 not used by another instance of this file. */
export function rtcWindow() {
  for (;;) {
    const k = Math.floor(Math.random() * 100);
    if (usedRtcWindows.has(k)) continue;
    usedRtcWindows.add(k);
    return { min: 40000 + k * 100, max: 40000 + k * 100 + 99 };
  }
}

/** A temp dir removed when the test ends (kept with KEEP_TMP=1). */
export function tempDir(t, label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mm-deploy-${label}-`));
  t.after(() => {
    if (process.env.KEEP_TMP) {
      console.error(`# kept ${dir}`);
      return;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI. */
export function selfSignedCert(dir) {
  const openssl = requireTool('openssl', 'openssl');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(openssl, [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key };
}

export const randomSecret = () => crypto.randomBytes(32).toString('hex');

// ------------------------------------------------------------------ processes

const live = new Set();
process.on('exit', () => {
  for (const p of live) p.signal('SIGKILL');
});
// The test runner ends a file that hangs with a signal: take our processes along.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    for (const p of live) p.signal('SIGKILL');
    process.exit(130);
  });
}

/** A child process in its own process group, its output kept for assertions and diagnostics. */
export class Proc {
  constructor(name, cmd, args, { env, cwd } = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.output = '';
    this.exit = null;
    this.child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    live.add(this);
    const keep = (d) => {
      this.output += d.toString();
      if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        resolve(this.exit);
      });
      this.child.on('error', (err) => {
        this.exit = { code: null, signal: null, error: err.message };
        live.delete(this);
        resolve(this.exit);
      });
    });
  }

  get running() {
    return this.exit === null;
  }

  get lines() {
    return this.output.split('\n');
  }

  tail(n = 40) {
    // Without the frames of a Rust backtrace, which would hide the error above them.
    const lines = this.lines.filter((l) => !/^\s+(\d+: |at \S+:\d+:\d+$)/.test(l));
    const state = this.running ? 'running' : `exited ${JSON.stringify(this.exit)}`;
    return `--- last lines of ${this.name} (${this.cmd}, pid ${this.child.pid}, ${state}):\n${lines.slice(-n).join('\n')}`;
  }

  signal(sig) {
    if (!this.running || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      try { this.child.kill(sig); } catch { /* gone */ }
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  async stop(graceMs = 3000) {
    if (!this.running) return this.exit;
    this.signal('SIGTERM');
    const done = await within(this.exited, graceMs);
    if (!done) {
      this.signal('SIGKILL');
      await this.exited;
    }
    return this.exit;
  }

  /** Resolves with the first output line matching `re` (from index `from`), or throws. */
  async waitForLine(re, { timeout = 10000, from = 0 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => re.test(l));
      if (hit) return hit;
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before printing ${re}\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${re} within ${timeout} ms\n${this.tail()}`);
      await sleep(50);
    }
  }
}

/** Starts `cmd` and registers its stop with the test. */
export function startProc(t, name, cmd, args, opts) {
  const p = new Proc(name, cmd, args, opts);
  t.after(() => p.stop());
  return p;
}

/** Waits until `fn` returns a truthy value (returned), or throws `what` after `timeout`. */
export async function until(fn, { timeout = 10000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds. */
export async function waitForPort(port, { timeout = 10000, proc } = {}) {
  await until(async () => {
    if (proc && !proc.running) throw Object.assign(new Error(`${proc.name} exited ${JSON.stringify(proc.exit)}`), { fatal: true });
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
  }, { timeout, what: `127.0.0.1:${port} to accept connections` }).catch((err) => {
    throw new Error(`${err.message}${proc ? `\n${proc.tail()}` : ''}`);
  });
}

// ------------------------------------------------------------------ our server

/**
 * Starts one instance. `env` adds MM_* keys; `scheme` says how readiness (/health/live) is
 * probed. Returns {proc, port, url, nodeId, rtc}. When the HTTP port or the UDP window was
 * picked here and another process took it meanwhile, it starts again on fresh ones.
 */
export async function startServer(t, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(t, opts);
    } catch (err) {
      const portClash = /cannot listen on|media worker \d+:|Address already in use/i.test(err.message);
      if (!portClash || attempt >= 3 || (opts.port && opts.rtc)) throw err;
    }
  }
}

async function startServerOnce(t, { nodeId, env = {}, args = [], port, scheme = 'http', dir, waitReady = true, rtc } = {}) {
  requireServerBinary();
  port ??= await freePort();
  rtc ??= rtcWindow();
  // The server treats every MM_* variable as configuration (and refuses unknown keys such as
  // MM_BIN), so none of ours is inherited.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MM_')));
  const fullEnv = {
    ...inherited,
    NO_COLOR: '1',
    RUST_LOG: 'info',
    MM_LISTENING_HOST: '127.0.0.1',
    MM_LISTENING_PORT: String(port),
    MM_ANNOUNCED_IP: '127.0.0.1',
    MM_RTC_LISTEN_IP: '127.0.0.1',
    MM_RTC_MIN_PORT: String(rtc.min),
    MM_RTC_MAX_PORT: String(rtc.max),
    MM_NUM_WORKERS: '1',
    ...(nodeId ? { MM_NODE_ID: nodeId } : {}),
    ...env,
  };
  const proc = startProc(t, `multiparty-meeting ${nodeId ?? ''}`.trim(), MM_BIN, args, { env: fullEnv, cwd: dir });
  const url = `${scheme}://127.0.0.1:${port}`;
  const server = { proc, port, url, nodeId, rtc, env: fullEnv };
  if (waitReady) {
    await until(async () => {
      if (!proc.running) throw Object.assign(new Error(`${proc.name} exited ${JSON.stringify(proc.exit)} before /health/live answered`), { fatal: true });
      const r = await request(`${url}/health/live`, { timeout: 2000 });
      return r.status === 200;
    }, { timeout: 30000, what: `${proc.name} GET ${url}/health/live -> 200` }).catch(async (err) => {
      await proc.stop();
      throw new Error(`${err.message}\n${proc.tail()}`);
    });
  }
  return server;
}

/** The `request` log lines of an instance for `path` (parsed key=value fields). */
export function requestLogs(proc, reqPath) {
  return proc.lines
    .filter((l) => / request /.test(l) && l.includes(`path=${reqPath}`))
    .map((line) => ({ line, ...parseFields(line) }))
    .filter((f) => f.path === reqPath);
}

export function parseFields(line) {
  const out = {};
  for (const m of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    out[m[1]] = m[2].startsWith('"') ? m[2].slice(1, -1) : m[2];
  }
  return out;
}

// ------------------------------------------------------------------ redis

export async function startRedis(t, dir, port) {
  const bin = requireTool('redis-server', 'redis-server');
  port ??= await freePort();
  const rdir = path.join(dir, 'redis');
  fs.mkdirSync(rdir, { recursive: true });
  const proc = startProc(t, 'redis-server', bin, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', rdir,
  ], { cwd: rdir });
  await waitForPort(port, { proc });
  return { proc, port, url: `redis://127.0.0.1:${port}/0` };
}

// ------------------------------------------------------------------ HTTP client

/**
 * One HTTP(S) request without keep-alive; self-signed certificates accepted. Returns
 * {status, headers, body, cookies (Set-Cookie array), json()}.
 */
export function request(url, { method = 'GET', headers = {}, localAddress, body, timeout = 5000 } = {}) {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method,
      headers,
      localAddress,
      agent: false,
      rejectUnauthorized: false,
      timeout,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          cookies: res.headers['set-cookie'] || [],
          socket: { localAddress: req.socket?.localAddress },
          json() {
            try {
              return JSON.parse(text);
            } catch {
              throw new Error(`not JSON (${res.statusCode}): ${text.slice(0, 300)}`);
            }
          },
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/** The session cookie among Set-Cookie headers: {raw, value, attrs: Set of lower-case attribute names, map}. */
export function sessionCookie(setCookies) {
  const raw = setCookies.find((c) => c.startsWith(`${COOKIE_NAME}=`));
  if (!raw) return null;
  const [pair, ...attrs] = raw.split(';').map((s) => s.trim());
  const map = {};
  for (const a of attrs) {
    const [k, v] = a.split('=');
    map[k.toLowerCase()] = v ?? true;
  }
  return { raw, pair, value: pair.slice(COOKIE_NAME.length + 1), attrs: new Set(Object.keys(map)), map };
}

// ------------------------------------------------------------------ signaling client

/** A signaling WebSocket (ws package): queued messages, requests by id, close info. */
export class SigClient {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.all = [];
    this.waiters = [];
    this.nextId = 1;
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        this._wake();
      });
    });
    ws.on('message', (data) => {
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        msg = { type: 'unparsable', raw: data.toString() };
      }
      msg.receivedAt = Date.now();
      this.queue.push(msg);
      this.all.push(msg);
      this._wake();
    });
  }

  _wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next queued message matching `pred` (removed from the queue). */
  async next(pred, { timeout = 10000, what = 'a message' } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.closeInfo) throw new Error(`socket closed (${JSON.stringify(this.closeInfo)}) while waiting for ${what}; received: ${JSON.stringify(this.all).slice(0, 1500)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeout} ms; received: ${JSON.stringify(this.all).slice(0, 1500)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  notification(method, opts = {}) {
    return this.next((m) => m.type === 'notification' && m.method === method, { what: `notification ${method}`, ...opts });
  }

  async request(method, data, opts = {}) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ type: 'request', id, method, data }));
    return this.next((m) => m.type === 'response' && m.id === id, { what: `response to ${method} (id ${id})`, ...opts });
  }

  /** welcome, then join; returns the join response (ok or not). */
  async join(displayName, opts = {}) {
    const welcome = await this.notification('welcome', opts);
    const res = await this.request('join', { displayName, protocolVersion: 1 }, opts);
    return { welcome, res };
  }

  get open() {
    return this.ws.readyState === 1;
  }

  terminate() {
    try { this.ws.terminate(); } catch { /* closed */ }
  }
}

/**
 * Opens a WebSocket (ws or wss, self-signed accepted). Resolves with a SigClient once open;
 * rejects with the HTTP status and body when the upgrade is refused.
 */
export async function wsConnect(t, url, { headers = {}, timeout = 10000 } = {}) {
  const { default: WebSocket } = await import('ws').catch((err) => {
    throw new Error(`the 'ws' package is missing (${err.message}): run \`npm ci\` in tests/deploy`);
  });
  const ws = new WebSocket(url, { headers, rejectUnauthorized: false, handshakeTimeout: timeout });
  const client = new SigClient(ws);
  t?.after(() => client.terminate());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const err = new Error(`WebSocket upgrade to ${url} refused: HTTP ${res.statusCode} ${JSON.stringify(Buffer.concat(chunks).toString().slice(0, 300))}`);
        err.status = res.statusCode;
        req.destroy();
        reject(err);
      });
    });
    ws.once('error', reject);
  });
  return client;
}

// ------------------------------------------------------------------ nginx

/** Applies `re` -> `to` and fails when the deployment file no longer contains `re`. */
function mustReplace(text, re, to, file) {
  if (!re.test(text)) throw new Error(`${file} no longer contains ${re}: the deployment test cannot place its ports; update tests/deploy/lib.mjs or the file`);
  return text.replace(re, to);
}

/**
 * nginx with deploy/nginx.example.conf, ports and certificate substituted. `upstreams` lists
 * the instances' ports (the example's two `server` lines become one per instance);
 * `policy: 'round-robin'` deletes the example's `ip_hash;`, as its comment tells operators.
 */
export async function startNginx(t, dir, { upstreams, cert, key, wsReadTimeout, policy = 'ip_hash' }) {
  const bin = requireTool('nginx', 'nginx');
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const ndir = path.join(dir, 'nginx');
  fs.mkdirSync(ndir, { recursive: true });
  const file = 'deploy/nginx.example.conf';
  let site = fs.readFileSync(path.join(REPO, file), 'utf8');
  site = mustReplace(site, /listen 80;/g, `listen 127.0.0.1:${httpPort};`, file);
  site = site.split('\n').filter((l) => !/^\s*listen \[::\]/.test(l)).join('\n');
  site = mustReplace(site, /listen 443 ssl( http2)?;/g, `listen 127.0.0.1:${httpsPort} ssl$1;`, file);
  site = mustReplace(site, /^(\s*)server 127\.0\.0\.1:3443\b(.*)$/m,
    (_, indent, rest) => upstreams.map((port) => `${indent}server 127.0.0.1:${port}${rest}`).join('\n'), file);
  site = mustReplace(site, /^\s*server 127\.0\.0\.1:3444\b.*\n/m, '', file);
  if (policy === 'round-robin') site = mustReplace(site, /^\s*ip_hash;\n/m, '', file);
  site = mustReplace(site, /ssl_certificate\s+\S+;/g, `ssl_certificate     ${cert};`, file);
  site = mustReplace(site, /ssl_certificate_key\s+\S+;/g, `ssl_certificate_key ${key};`, file);
  if (wsReadTimeout) site = mustReplace(site, /proxy_read_timeout\s+3600s;/g, `proxy_read_timeout ${wsReadTimeout};`, file);
  fs.writeFileSync(path.join(ndir, 'site.conf'), site);
  const asRoot = process.getuid?.() === 0;
  const conf = `
${asRoot ? 'user root root;' : ''}
worker_processes 1;
pid ${ndir}/nginx.pid;
error_log ${ndir}/error.log info;
events { worker_connections 256; }
http {
    access_log ${ndir}/access.log;
    client_body_temp_path ${ndir}/client_body;
    proxy_temp_path ${ndir}/proxy;
    fastcgi_temp_path ${ndir}/fastcgi;
    uwsgi_temp_path ${ndir}/uwsgi;
    scgi_temp_path ${ndir}/scgi;
    include ${ndir}/site.conf;
}
`;
  fs.writeFileSync(path.join(ndir, 'nginx.conf'), conf);
  const proc = startProc(t, 'nginx', bin, ['-p', `${ndir}/`, '-e', `${ndir}/error.log`, '-c', `${ndir}/nginx.conf`, '-g', 'daemon off;'], { cwd: ndir });
  const errorLog = () => {
    try { return fs.readFileSync(path.join(ndir, 'error.log'), 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
  };
  try {
    await waitForPort(httpsPort, { proc });
    await waitForPort(httpPort, { proc });
  } catch (err) {
    throw new Error(`${err.message}\n--- nginx error.log:\n${errorLog()}`);
  }
  return { proc, httpPort, httpsPort, url: `https://127.0.0.1:${httpsPort}`, dir: ndir, errorLog };
}

// ------------------------------------------------------------------ caddy

/** Caddy with deploy/Caddyfile.example (tls internal) in front of `upstreams`. */
export async function startCaddy(t, dir, { upstreams }) {
  const bin = requireTool('caddy', 'caddy');
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const cdir = path.join(dir, 'caddy');
  for (const d of ['data', 'config', 'home']) fs.mkdirSync(path.join(cdir, d), { recursive: true });
  const file = 'deploy/Caddyfile.example';
  let site = fs.readFileSync(path.join(REPO, file), 'utf8');
  site = mustReplace(site, /meet\.example\.org \{/, `https://127.0.0.1:${httpsPort} {\n\ttls internal`, file);
  site = mustReplace(site, /127\.0\.0\.1:3443 127\.0\.0\.1:3444/, upstreams.map((p) => `127.0.0.1:${p}`).join(' '), file);
  const global = `{
	admin off
	skip_install_trust
	storage file_system ${cdir}/data
	http_port ${httpPort}
	https_port ${httpsPort}
}

`;
  const caddyfile = path.join(cdir, 'Caddyfile');
  fs.writeFileSync(caddyfile, global + site);
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MM_')));
  const env = {
    ...inherited,
    HOME: path.join(cdir, 'home'),
    XDG_DATA_HOME: path.join(cdir, 'data'),
    XDG_CONFIG_HOME: path.join(cdir, 'config'),
  };
  const proc = startProc(t, 'caddy', bin, ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { env, cwd: cdir });
  const url = `https://127.0.0.1:${httpsPort}`;
  await until(async () => {
    if (!proc.running) throw Object.assign(new Error(`caddy exited ${JSON.stringify(proc.exit)}`), { fatal: true });
    const r = await request(`${url}/health/live`, { timeout: 2000 });
    return r.status === 200;
  }, { timeout: 20000, what: `GET ${url}/health/live through Caddy -> 200` }).catch((err) => {
    throw new Error(`${err.message}\n${proc.tail()}\n--- Caddyfile:\n${global + site}`);
  });
  return { proc, httpPort, httpsPort, url, dir: cdir };
}

// ------------------------------------------------------------------ Chromium

export const CHROMIUM_ARGS = [
  '--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-gpu',
  '--ignore-certificate-errors',
  // Headless pages are never visible: keep timers and rendering at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

export async function launchChromium(t) {
  requireChromium();
  const { chromium } = await import('playwright-core').catch((err) => {
    throw new Error(`the 'playwright-core' package is missing (${err.message}): run \`npm ci\` in tests/deploy`);
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close().catch(() => {}));
  return browser;
}

/** A participant: own context (cookies, storage), one page, its console kept. */
export async function openParticipant(browser, url, label, { cookies } = {}) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    permissions: ['camera', 'microphone'],
    viewport: { width: 800, height: 600 },
  });
  if (cookies?.length) await context.addCookies(cookies);
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${label} ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label} pageerror] ${e.message}`));
  const res = await page.goto(url, { waitUntil: 'load', timeout: 20000 });
  return { label, context, page, response: res, console: consoleLines };
}

/** Polls window.meeting.inboundStats() until video frames and audio packets from `fromPeerId` arrive. */
export async function waitForMedia(p, fromPeerId, { timeout = 30000 } = {}) {
  let last = [];
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    last = await p.page.evaluate(async () => (window.meeting ? window.meeting.inboundStats() : null)).catch((e) => `evaluate failed: ${e.message}`);
    if (Array.isArray(last)) {
      const mine = last.filter((s) => !fromPeerId || s.peerId === fromPeerId);
      const video = mine.find((s) => s.kind === 'video' && s.framesDecoded > 0);
      const audio = mine.find((s) => s.kind === 'audio' && s.packetsReceived > 0);
      if (video && audio) return { video, audio, all: last };
    }
    await sleep(500);
  }
  const state = await p.page.evaluate(() => window.meeting && { state: window.meeting.state, peerId: window.meeting.peerId, notice: window.meeting.notice, log: window.meeting.log?.slice?.(-15) }).catch((e) => e.message);
  throw new Error(`${p.label} did not decode video (framesDecoded > 0) and receive audio from ${fromPeerId} within ${timeout} ms; inboundStats: ${JSON.stringify(last)}; meeting: ${JSON.stringify(state)}\n${p.console.slice(-30).join('\n')}`);
}
