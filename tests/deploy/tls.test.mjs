// The binary serving https itself (httpOnly = false, tls.cert/tls.key) with the plain-HTTP
// redirect listener; and the start-up refusal when the certificate is missing.

import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import {
  tempDir, startServer, selfSignedCert, freePort, request, sessionCookie, requestLogs, until, within,
} from './lib.mjs';

/** The certificate the server presents on 127.0.0.1:port. */
function peerCertificate(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c);
    });
    s.on('error', reject);
  });
}

test('MM_LISTENING_REDIRECT_PORT from the environment starts the redirect listener', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'tls-env');
  const { cert, key } = selfSignedCert(dir);
  const redirectPort = await freePort();
  const srv = await startServer(t, {
    nodeId: 'a',
    dir,
    scheme: 'https',
    env: {
      MM_HTTP_ONLY: 'false',
      MM_TLS__CERT: cert,
      MM_TLS__KEY: key,
      MM_LISTENING_REDIRECT_PORT: String(redirectPort),
    },
  });
  const res = await request(`http://127.0.0.1:${redirectPort}/env?y=2`);
  assert.equal(res.status, 301);
  assert.equal(res.headers.location, `https://127.0.0.1:${srv.port}/env?y=2`);
});

test('https served by the binary, with the http redirect listener', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'tls');
  const { cert, key } = selfSignedCert(dir);
  const redirectPort = await freePort();
  // listeningRedirectPort comes from a config file here, so that the redirect behaviour is
  // checked even while the environment form is broken (see the test above).
  const configFile = path.join(dir, 'config.toml');
  fs.writeFileSync(configFile, `listeningRedirectPort = ${redirectPort}\n`);
  const srv = await startServer(t, {
    nodeId: 'a',
    dir,
    scheme: 'https',
    args: ['--config', configFile],
    env: {
      MM_HTTP_ONLY: 'false',
      MM_TLS__CERT: cert,
      MM_TLS__KEY: key,
    },
  });

  await t.test('https GET /health -> 200 with our certificate', async () => {
    const res = await request(`${srv.url}/health`);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json().status, 'ok');
    const presented = await peerCertificate(srv.port);
    const ours = new crypto.X509Certificate(fs.readFileSync(cert));
    assert.equal(presented.fingerprint256, ours.fingerprint256, 'the server presents another certificate');
  });

  await t.test('plain http on the TLS port is refused (no clear-text answer)', async () => {
    const res = await request(`http://127.0.0.1:${srv.port}/health`, { timeout: 3000 }).catch((e) => e);
    assert.ok(res instanceof Error || res.status >= 400, `plain http on the https port answered ${res.status}`);
  });

  await t.test('direct https: the session cookie is Secure and the log says scheme=https', async () => {
    const res = await request(`${srv.url}/tls-room`);
    assert.equal(res.status, 200);
    const cookie = sessionCookie(res.cookies);
    assert.ok(cookie?.attrs.has('secure'), `cookie: ${cookie?.raw}`);
    const log = await until(() => requestLogs(srv.proc, '/tls-room')[0], { what: 'log line for /tls-room' });
    assert.equal(log.scheme, 'https', log.line);
  });

  await t.test('GET http://redirect/some/path?x=1 -> 301 to https on listeningPort', async () => {
    const res = await request(`http://127.0.0.1:${redirectPort}/some/path?x=1`);
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, `https://127.0.0.1:${srv.port}/some/path?x=1`);
  });

  await t.test('HEAD -> 301, POST and PUT -> 308 (method kept)', async () => {
    const head = await request(`http://127.0.0.1:${redirectPort}/some/path?x=1`, { method: 'HEAD' });
    assert.equal(head.status, 301);
    for (const method of ['POST', 'PUT']) {
      const res = await request(`http://127.0.0.1:${redirectPort}/some/path?x=1`, { method, body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(res.status, 308, method);
      assert.equal(res.headers.location, `https://127.0.0.1:${srv.port}/some/path?x=1`, method);
    }
  });
});

test('httpOnly = false without a certificate: start-up refused, naming tls.cert', { timeout: 30000 }, async (t) => {
  const dir = tempDir(t, 'tls-missing');
  const srv = await startServer(t, { nodeId: 'a', dir, env: { MM_HTTP_ONLY: 'false' }, waitReady: false });
  const exit = await within(srv.proc.exited, 15000);
  assert.ok(exit, `still running 15 s after start with httpOnly=false and no certificate\n${srv.proc.tail()}`);
  assert.equal(exit.signal, null, `killed by ${exit.signal}`);
  assert.notEqual(exit.code, 0, `exit code 0\n${srv.proc.tail()}`);
  assert.match(srv.proc.output, /tls\.cert/, `no mention of tls.cert:\n${srv.proc.tail()}`);
});
