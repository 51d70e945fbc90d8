// The image built from the project's Dockerfile (tests/container/run.sh builds it, unchanged,
// with podman), run as the README tells users to run it: host networking, a mounted config
// file plus MM_* variables. Health, the unprivileged user, PID 1, the image's own HEALTHCHECK,
// a two-participant Chromium meeting through it, and `podman stop`: drain, exit 0 in time.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  tempDir, freePort, rtcWindow, request, until, launchChromium,
} from '../deploy/lib.mjs';
import { podman, podmanOk, IMAGE, removeContainer, meeting } from './lib.mjs';

test('the image: config file + MM_*, health, non-root PID 1, HEALTHCHECK, a meeting, podman stop drains', { timeout: 240000 }, async (t) => {
  const dir = tempDir(t, 'image');
  const port = await freePort();
  const rtc = rtcWindow();
  // The file sets what a mounted config would; the environment overrides the port, as the
  // README shows. nodeId comes only from the file: /health proves the file was read.
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, [
    'nodeId = "from-mounted-file"',
    'listeningPort = 1',
    'numWorkers = 1',
    'drainTimeout = 4000',
    '',
  ].join('\n'));
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(config, 0o644);
  const name = `mm-image-test-${process.pid}`;
  t.after(() => removeContainer(name));
  const run = podman([
    'run', '-d', '--name', name, '--network', 'host', '--pull=never',
    '-v', `${config}:/etc/multiparty-meeting/config.toml:ro`,
    '-e', `MM_LISTENING_PORT=${port}`,
    '-e', 'NO_COLOR=1',
    '-e', 'MM_LISTENING_HOST=127.0.0.1',
    '-e', 'MM_ANNOUNCED_IP=127.0.0.1',
    '-e', 'MM_RTC_LISTEN_IP=127.0.0.1',
    '-e', `MM_RTC_MIN_PORT=${rtc.min}`,
    '-e', `MM_RTC_MAX_PORT=${rtc.max}`,
    IMAGE, '--config', '/etc/multiparty-meeting/config.toml',
  ]);
  assert.equal(run.status, 0, `podman run failed: ${run.stderr}`);
  const logs = () => podman(['logs', name]).stdout + podman(['logs', name]).stderr;
  const url = `http://127.0.0.1:${port}`;
  await until(async () => (await request(`${url}/health/live`, { timeout: 2000 })).status === 200,
    { timeout: 30000, what: `GET ${url}/health/live from the container` })
    .catch((err) => { throw new Error(`${err.message}\n${logs()}`); });

  await t.test('/health (readiness) and /health/live answer 200; the mounted file was read', async () => {
    const health = await request(`${url}/health`);
    assert.equal(health.status, 200, health.body);
    assert.equal(health.json().nodeId, 'from-mounted-file', health.body);
    assert.equal((await request(`${url}/health/live`)).status, 200);
  });

  await t.test('the server is PID 1 and runs as the unprivileged user meeting (uid 10001)', () => {
    const status = podmanOk(['exec', name, 'cat', '/proc/1/status']);
    assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m, status);
    const cmd = podmanOk(['exec', name, 'cat', '/proc/1/cmdline']).split('\0')[0];
    assert.equal(cmd, '/usr/local/bin/multiparty-meeting');
    assert.equal(podmanOk(['exec', name, 'id', '-un']).trim(), 'meeting');
  });

  await t.test("the image's own HEALTHCHECK passes", () => {
    const hc = podman(['healthcheck', 'run', name]);
    assert.equal(hc.status, 0, `podman healthcheck run: ${hc.stdout}${hc.stderr}`);
  });

  let browserMeeting;
  await t.test('two Chromium participants see and hear each other through the container', async () => {
    const browser = await launchChromium(t);
    browserMeeting = await meeting(t, browser, url, 'container-room');
    const health = (await request(`${url}/health`)).json();
    assert.equal(health.peers, 2, JSON.stringify(health));
  });

  await t.test('podman stop: SIGTERM drains the running meeting, then exit 0 before the stop timeout', async () => {
    assert.ok(browserMeeting, 'needs the meeting above');
    const started = Date.now();
    // drainTimeout is 4 s; podman sends SIGKILL after 30 s.
    const stop = podman(['stop', '-t', '30', name], { timeout: 60000 });
    const took = Date.now() - started;
    assert.equal(stop.status, 0, stop.stderr);
    const state = JSON.parse(podmanOk(['inspect', '-f', '{{json .State}}', name]));
    const out = logs();
    assert.equal(state.ExitCode, 0, `exit code ${state.ExitCode}\n${out.slice(-3000)}`);
    assert.match(out, /draining/, out.slice(-3000));
    assert.match(out, /drain deadline reached: asking participants to reconnect/, out.slice(-3000));
    assert.match(out, /stopped/, out.slice(-3000));
    assert.ok(took >= 3500, `stopped after ${took} ms: the meeting was not given drainTimeout (4 s)`);
    assert.ok(took < 25000, `stop took ${took} ms: close to podman's SIGKILL at 30 s`);
    console.log(`# podman stop: drained and exited 0 after ${took} ms (drainTimeout 4000 ms)`);
  });
});
