// docker-compose.yml as users run it, with podman-compose 1.6.0: Redis, two instances and nginx
// (deploy/nginx.example.conf) on host networking, in this test's private network namespace
// (scripts/test), so the file's own ports (80, 443, 3443, 3444, 6379, 40000-49999) are free.
// The image is the one tests/container/run.sh built under the name the file gives; the
// nginx and Redis images are the local stand-ins of tests/container/base-images.sh.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO, tempDir, selfSignedCert, request, until, launchChromium, randomSecret, wsConnect,
} from '../deploy/lib.mjs';
import { CONTAINERS_CONF, podman, meeting } from './lib.mjs';

// podman-compose from PyPI (tests/container/run.sh installs 1.6.0 in target/): Debian
// bookworm's 1.0.3 adds the project network to network_mode: host services, which podman
// refuses ("cannot set multiple networks without bridge network mode").
const PODMAN_COMPOSE = process.env.PODMAN_COMPOSE || path.join(REPO, 'target/podman-compose/bin/podman-compose');

function compose(dir, project, args, env, timeout = 180000) {
  const r = spawnSync(PODMAN_COMPOSE, ['-p', project, ...args], {
    cwd: dir,
    env: { ...process.env, CONTAINERS_CONF, ...env },
    encoding: 'utf8',
    timeout,
  });
  if (r.error) throw new Error(`${PODMAN_COMPOSE}: ${r.error.message} (tests/container/run.sh build installs it)`);
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('docker-compose.yml with podman-compose: Redis + two instances + nginx, a meeting through it', { timeout: 300000 }, async (t) => {
  // `after` hooks run in the order they were added: `compose down` is registered before the
  // temp dir's removal (it needs the compose file in that dir as its working directory), so
  // the containers go also when a step fails.
  let down = () => {};
  t.after(() => down());
  const dir = tempDir(t, 'compose');
  // The user's checkout: the compose file and the nginx config it mounts, plus the TLS files
  // its header comment asks for in ./deploy/tls.
  fs.mkdirSync(path.join(dir, 'deploy/tls'), { recursive: true });
  fs.copyFileSync(path.join(REPO, 'docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
  fs.copyFileSync(path.join(REPO, 'Dockerfile'), path.join(dir, 'Dockerfile'));
  fs.copyFileSync(path.join(REPO, 'deploy/nginx.example.conf'), path.join(dir, 'deploy/nginx.example.conf'));
  const { cert, key } = selfSignedCert(dir);
  fs.copyFileSync(cert, path.join(dir, 'deploy/tls/fullchain.pem'));
  fs.copyFileSync(key, path.join(dir, 'deploy/tls/privkey.pem'));
  for (const f of ['fullchain.pem', 'privkey.pem']) fs.chmodSync(path.join(dir, 'deploy/tls', f), 0o644);

  const project = `mmcompose${process.pid}`;
  // As the file's header says: MM_ANNOUNCED_IP and MM_COOKIE_SECRET from the environment.
  const env = { MM_ANNOUNCED_IP: '127.0.0.1', MM_COOKIE_SECRET: randomSecret() };
  down = () => {
    const r = compose(dir, project, ['down', '-v', '-t', '5'], env);
    if (r.status !== 0) console.error(`# podman-compose down: ${r.out.slice(-2000)}`);
  };
  const logs = () => ['redis', 'meeting-1', 'meeting-2', 'nginx']
    .map((s) => { const r = podman(['logs', '--tail', '15', `${project}_${s}_1`]); return `--- ${s}:\n${r.stdout}${r.stderr}`; })
    .join('\n');

  await t.test('without MM_ANNOUNCED_IP the file refuses to start and says what to set', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'MM_ANNOUNCED_IP'));
    const r = spawnSync(PODMAN_COMPOSE, ['-p', `${project}x`, 'config'], {
      cwd: dir, env: { ...env, CONTAINERS_CONF, MM_COOKIE_SECRET: 'x' }, encoding: 'utf8',
    });
    r.out = `${r.stdout}\n${r.stderr}`;
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /set MM_ANNOUNCED_IP to this host's public address/, r.out);
  });

  const up = compose(dir, project, ['up', '-d'], env);
  assert.equal(up.status, 0, up.out.slice(-4000));
  assert.doesNotMatch(up.out, /podman build/, 'compose rebuilt the image although run.sh built it under the same name');

  const base = 'https://127.0.0.1';
  await until(async () => (await request(`${base}/health`, { timeout: 2000 })).status === 200,
    { timeout: 60000, what: 'GET https://127.0.0.1/health through the compose nginx' })
    .catch((err) => { throw new Error(`${err.message}\n${logs()}`); });

  await t.test('both instances are up with their own node id and see Redis', async () => {
    for (const [port, node] of [[3443, 'meeting-1'], [3444, 'meeting-2']]) {
      const r = await request(`http://127.0.0.1:${port}/health`);
      assert.equal(r.status, 200, `${node}: ${r.body}\n${logs()}`);
      const h = r.json();
      assert.equal(h.nodeId, node, r.body);
      assert.equal(h.redis, 'ok', r.body);
    }
    const redirect = await request('http://127.0.0.1/some-room?x=1');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, 'https://127.0.0.1/some-room?x=1');
  });

  await t.test('a session made on one instance is known to the other (shared Redis and secret)', async (t) => {
    const page = await request(`${base}/session-room`);
    const cookie = page.cookies.find((c) => c.startsWith('multiparty-meeting.sid='));
    assert.ok(cookie, `no session cookie: ${JSON.stringify(page.cookies)}`);
    const pair = cookie.split(';')[0];
    const users = [];
    for (const port of [3443, 3444]) {
      const s = await request(`http://127.0.0.1:${port}/api/session`, { headers: { cookie: pair } });
      assert.equal(s.status, 200, s.body);
      assert.equal(s.json().new, false, `instance on ${port} does not know the session: ${s.body}`);
      users.push(s.json().user);
    }
    assert.equal(users[0], users[1], `one session, two users: ${JSON.stringify(users)}`);
    // The signaling WebSocket through nginx.
    const ws = await wsConnect(t, 'wss://127.0.0.1/ws/session-room', { headers: { cookie: pair } });
    const { res } = await ws.join('Compose WS');
    assert.equal(res.ok, true, JSON.stringify(res));
  });

  await t.test('two Chromium participants see and hear each other through nginx', async (t) => {
    const browser = await launchChromium(t);
    await meeting(t, browser, base, 'compose-room');
  });
});
