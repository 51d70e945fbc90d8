// One browser, one session: a cookie jar keeps its session over many new connections, whichever
// HTTP worker of the instance accepts each one. Checked on the embedded defaults (no
// cookieSecret: a key made at start-up), with an explicit secret, and with Redis.

import test from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, startRedis, startServer, request, sessionCookie, randomSecret } from './lib.mjs';

/** Loads the room page, then asks /api/session `n` times, each on a new connection. */
async function sessionsOverNewConnections(server, n = 12) {
  const page = await request(`${server.url}/keyroom`);
  assert.equal(page.status, 200, page.body);
  const cookie = sessionCookie(page.cookies);
  assert.ok(cookie, `GET /keyroom set no session cookie: ${JSON.stringify(page.cookies)}`);
  const answers = [];
  for (let i = 0; i < n; i++) {
    // `request` opens a fresh connection each time (no keep-alive agent).
    const res = await request(`${server.url}/api/session`, { headers: { cookie: cookie.pair } });
    assert.equal(res.status, 200, res.body);
    answers.push(res.json());
  }
  return answers;
}

function assertOneSession(answers, proc) {
  const users = new Set(answers.map((a) => a.user));
  const fresh = answers.filter((a) => a.new).length;
  assert.equal(users.size, 1, `one cookie jar saw ${users.size} sessions: ${[...users].join(', ')}\n${proc.tail(20)}`);
  assert.equal(fresh, 0, `${fresh} of ${answers.length} requests were given a new session\n${proc.tail(20)}`);
  assert.doesNotMatch(proc.tail(200), /failed to pass cryptographic checks/, 'a worker rejected a cookie another worker signed');
}

test('embedded defaults (no cookieSecret): one session over many new connections', { timeout: 30000 }, async (t) => {
  const server = await startServer(t, {});
  assertOneSession(await sessionsOverNewConnections(server), server.proc);
  assert.match(server.proc.tail(200), /sessions are signed with a key made at start-up/, 'the log says sessions end at restart');
});

test('explicit cookieSecret, memory store: one session over many new connections', { timeout: 30000 }, async (t) => {
  const server = await startServer(t, { env: { MM_COOKIE_SECRET: randomSecret() } });
  assertOneSession(await sessionsOverNewConnections(server), server.proc);
});

test('Redis store: one session over many new connections', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'session-redis');
  const redis = await startRedis(t, dir);
  const server = await startServer(t, { dir, env: { MM_REDIS_URL: redis.url, MM_COOKIE_SECRET: randomSecret() } });
  assertOneSession(await sessionsOverNewConnections(server), server.proc);
});
