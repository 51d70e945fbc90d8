// Room access tokens through the web client ([auth] mode = "token"): a page opened with
// ?token= joins with the token's name (the others see it, whatever was typed), the token leaves
// the address bar at once and a reload rejoins with it (kept in this tab's storage); a page
// without a token, or with a forged one, gets a screen that says it needs a valid invitation
// link and does not retry. Tokens are minted by the binary's `token` subcommand.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { createSuite, roomName } from './suite.mjs';
import { SERVER_BIN, waitFor } from './harness.mjs';

const KEY = `browser-${crypto.randomBytes(16).toString('hex')}`;
const { e2e, step, join, openPage, waitJoined } = createSuite({
  serverEnv: { MM_AUTH_MODE: 'token', MM_AUTH_KEYS: `k1=${KEY}` },
});

function mint(args) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MM_')));
  return execFileSync(SERVER_BIN, ['token', ...args], {
    env: { ...env, MM_AUTH_KEYS: `k1=${KEY}`, MM_AUTH_MODE: 'token' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

async function endedScreen(peer) {
  return waitFor(`${peer.label} to show why it cannot join`, async () => {
    const s = await peer.evaluate(() => ({
      state: window.meeting?.state,
      title: document.getElementById('left-title')?.textContent,
      detail: document.getElementById('left-detail')?.textContent,
    }));
    return { ok: s.state === 'closed' && /valid invitation link/.test(s.title || ''), detail: s };
  }, { timeoutMs: 15000 });
}

e2e('access tokens: the link with ?token= joins with its name; without or with a forged one, a clear refusal', async (t) => {
  const room = roomName('token');
  let teacher;
  await step(t, 'a page with a valid token joins; the token leaves the address bar', async () => {
    const token = mint(['--room', room, '--name', 'Teacher', '--role', 'moderator']);
    teacher = await join(room, 'Typed Name', { query: { token } });
    const search = await teacher.evaluate(() => location.search);
    assert.doesNotMatch(search, /token=/, `the token stays in the address bar: ${search}`);
    assert.match(search, /displayName=/, 'the other parameters are kept');
  });

  await step(t, 'another participant sees the name the token gives, not the typed one', async () => {
    const pupil = await join(room, 'Pupil', { query: { token: mint(['--room', '*']) } });
    await waitFor('Pupil to list Teacher', async () => {
      const names = await pupil.evaluate(() => [...window.meeting.peers.values()].map((p) => p.displayName));
      return { ok: names.includes('Teacher') && !names.includes('Typed Name'), detail: names };
    });
  });

  await step(t, 'a reload rejoins with the token kept in the tab', async () => {
    await teacher.evaluate(() => location.reload());
    await waitJoined(teacher);
  });

  await step(t, 'no token: the page says it needs a valid invitation link and does not retry', async () => {
    const guest = await openPage(`/${room}?displayName=Guest&autoJoin=1`, 'Guest');
    const shown = await endedScreen(guest);
    assert.match(shown.detail.detail, /access token/, JSON.stringify(shown.detail));
  });

  await step(t, 'a forged token (signed with another key) is refused with its reason', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'k1' })).toString('base64url');
    const claims = Buffer.from(JSON.stringify({ room, roles: ['admin'], exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
    const sig = crypto.createHmac('sha256', 'not-the-servers-key-not-the-servers-key').update(`${header}.${claims}`).digest('base64url');
    const mallory = await openPage(`/${room}?displayName=Mallory&autoJoin=1&token=${header}.${claims}.${sig}`, 'Mallory');
    const shown = await endedScreen(mallory);
    assert.match(shown.detail.detail, /signature/, JSON.stringify(shown.detail));
  });
});
