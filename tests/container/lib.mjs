// Helpers of the container tests: podman with the repository's containers.conf, and a
// two-participant Chromium meeting (the deployment tests' harness, tests/deploy/lib.mjs).

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import assert from 'node:assert/strict';
import { HERE as DEPLOY_DIR, openParticipant, waitForMedia, until } from '../deploy/lib.mjs';

export const CONTAINERS_CONF = path.resolve(DEPLOY_DIR, '../container/containers.conf');
/** The image tests/container/run.sh builds from the Dockerfile (and compose's `image:`). */
export const IMAGE = process.env.MM_IMAGE || 'localhost/multiparty-meeting:latest';

/** Runs podman; returns {status, stdout, stderr}. */
export function podman(args, { timeout = 120000, cwd, env } = {}) {
  const r = spawnSync('podman', args, {
    cwd,
    env: { ...process.env, CONTAINERS_CONF, ...env },
    encoding: 'utf8',
    timeout,
  });
  if (r.error) throw new Error(`podman ${args.join(' ')}: ${r.error.message} (install the Debian package 'podman')`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** podman's stdout, or an error with its stderr. */
export function podmanOk(args, opts) {
  const r = podman(args, opts);
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export function removeContainer(name) {
  podman(['rm', '-f', '-t', '0', name]);
}

/**
 * Alice and Bob open `${base}/${room}` in their own Chromium contexts, join, and each decodes
 * the other's video and receives its audio. Returns {alice, bob, aliceId, bobId}.
 */
export async function meeting(t, browser, base, room) {
  const alice = await openParticipant(browser, `${base}/${room}?displayName=Alice&autoJoin=1`, 'A');
  t.after(() => alice.context.close().catch(() => {}));
  assert.equal(alice.response?.status(), 200);
  const bob = await openParticipant(browser, `${base}/${room}?displayName=Bob&autoJoin=1`, 'B');
  t.after(() => bob.context.close().catch(() => {}));
  assert.equal(bob.response?.status(), 200);
  const peerIdOf = (p) => until(() => p.page.evaluate(() => window.meeting?.state === 'joined' && window.meeting.peerId),
    { timeout: 20000, what: `${p.label} to join (window.meeting.state === 'joined')` })
    .catch((err) => { throw new Error(`${err.message}\n${p.console.slice(-20).join('\n')}`); });
  const [aliceId, bobId] = await Promise.all([peerIdOf(alice), peerIdOf(bob)]);
  assert.notEqual(aliceId, bobId);
  const [atAlice, atBob] = await Promise.all([
    waitForMedia(alice, bobId, { timeout: 30000 }),
    waitForMedia(bob, aliceId, { timeout: 30000 }),
  ]);
  assert.ok(atAlice.video.framesDecoded > 0 && atAlice.audio.packetsReceived > 0);
  assert.ok(atBob.video.framesDecoded > 0 && atBob.audio.packetsReceived > 0);
  return { alice, bob, aliceId, bobId };
}
