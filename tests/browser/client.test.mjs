// The web client as people use it (issue 17): each bug people hit first has a test here that
// fails if it comes back, and so does each control they expect (invite, join muted, device
// settings, presentation layout, pin, speaker view, shortcuts). Screenshots at phone and
// desktop size land in artifacts/. The server allows 2 people per room, for the full-room test.

import assert from 'node:assert/strict';
import { waitFor, sleep } from './harness.mjs';
import { createSuite, roomName, receivesFrom } from './suite.mjs';
import { PHONE, WIDE } from './browsers.mjs';
import { screenshot, axeViolations } from './evidence.mjs';

const suite = createSuite({ kinds: ['chromium'], serverEnv: { MM_MAX_USERS_PER_ROOM: '2' } });
const { server, e2e, join, openPage, waitJoined, closePeers } = suite;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** What the page shows: which screen, and the texts that matter. */
function screenOf(peer) {
  return peer.evaluate(() => ({
    screen: [...document.querySelectorAll('.screen')].find((s) => !s.hidden)?.id,
    state: window.meeting?.state,
  }));
}

async function leaveConfirmed(peer) {
  await peer.click('#leave-button');
  await peer.click('#confirm-ok');
  await waitFor(`${peer.label} to be on the left screen`, async () => {
    const s = await screenOf(peer);
    return { ok: s.screen === 'left-screen' && s.state === 'closed', detail: s };
  }, { timeoutMs: 10000 });
}

/** Participant `about` as `viewer` lists it: {micOn, camOn} from the People list badges. */
async function listedState(viewer, aboutName) {
  return viewer.evaluate((name) => {
    const li = [...document.querySelectorAll('#participant-list li')].find((x) => x.querySelector('.pname').textContent === name);
    if (!li) return null;
    return { mic: li.querySelector('.state-mic').dataset.on, cam: li.querySelector('.state-cam').dataset.on };
  }, aboutName);
}

e2e('bug 1: a name of spaces is refused, then a real name joins', async () => {
  const room = roomName('spaces');
  const p = await openPage(`/${room}`, 'Spaces');
  await waitFor('the join screen', async () => ({ ok: (await screenOf(p)).screen === 'join-screen', detail: await screenOf(p) }));
  await p.fill('#name-input', '   ');
  await p.click('#join-button');
  const refused = await p.evaluate(() => ({
    error: !document.getElementById('name-error').hidden,
    invalid: document.getElementById('name-input').getAttribute('aria-invalid'),
    screen: [...document.querySelectorAll('.screen')].find((s) => !s.hidden)?.id,
  }));
  assert.deepEqual(refused, { error: true, invalid: 'true', screen: 'join-screen' }, 'an empty name is refused with a visible message');
  await p.fill('#name-input', 'Alice');
  await p.press('Enter');
  await waitJoined(p);
  assert.equal(await p.evaluate(() => window.meeting.displayName), 'Alice');
  await closePeers(p);
});

e2e('bug 2 and shortcuts: M mutes, V turns the camera off; a muted participant who leaves and rejoins stays muted', async () => {
  const room = roomName('rejoin');
  const a = await join(room, 'Ann');
  const b = await join(room, 'Ben');
  await waitFor('B to receive A', () => receivesFrom(b, [a]));
  await a.press('m');
  await a.press('v');
  await waitFor('B to see A with microphone and camera off', async () => {
    const s = await listedState(b, 'Ann');
    return { ok: s?.mic === 'false' && s?.cam === 'false', detail: s };
  }, { timeoutMs: 10000 });
  assert.deepEqual(await a.evaluate(() => ({ mic: window.meeting.micOn, cam: window.meeting.camOn })), { mic: false, cam: false });
  await a.press('v');
  await waitFor('A\'s camera to be back on (V again)', async () => {
    const s = await listedState(b, 'Ann');
    return { ok: s?.cam === 'true', detail: s };
  }, { timeoutMs: 10000 });

  await leaveConfirmed(a);
  assert.equal(await a.evaluate(() => document.getElementById('rejoin-button').textContent), 'Rejoin');
  await a.click('#rejoin-button');
  await waitJoined(a);
  const after = await a.evaluate(() => ({
    micOn: window.meeting.micOn,
    liveMic: window.meeting.producers.filter((p) => p.source === 'mic' && !p.paused).length,
    micButton: document.getElementById('mic-button').getAttribute('aria-pressed'),
  }));
  assert.deepEqual(after, { micOn: false, liveMic: 0, micButton: 'false' }, 'after Rejoin the microphone must still be off');
  await waitFor('B to list the rejoined A with the microphone off', async () => {
    const s = await listedState(b, 'Ann');
    return { ok: s?.mic === 'false' && s?.cam === 'true', detail: s };
  }, { timeoutMs: 10000 });
  await closePeers(a, b);
});

/**
 * An init script: the page's microphone is a voice saying words (a 220 Hz tone, 300 ms on,
 * 300 ms off) made with WebAudio instead of the fake device's beeps; the camera stays.
 */
function speakInsteadOfBeeping() {
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await real(constraints);
    if (!constraints?.audio) return stream;
    const ctx = new AudioContext();
    await ctx.resume().catch(() => {});
    const voice = ctx.createOscillator();
    voice.frequency.value = 220;
    const envelope = ctx.createGain();
    const start = ctx.currentTime;
    for (let i = 0; i < 600; i += 1) {
      envelope.gain.setValueAtTime(0.5, start + i * 0.6);
      envelope.gain.setValueAtTime(0, start + i * 0.6 + 0.3);
    }
    const out = ctx.createMediaStreamDestination();
    voice.connect(envelope).connect(out);
    voice.start();
    for (const t of stream.getAudioTracks()) {
      stream.removeTrack(t);
      t.stop();
    }
    stream.addTrack(out.stream.getAudioTracks()[0]);
    return stream;
  };
}

e2e('bug 3: the speaking ring is drawn above the video, and a phone names the speaker', async () => {
  const room = roomName('speaker');
  const a = await join(room, 'Ada', { viewport: PHONE });
  // Chromium's fake microphone beeps for 20 ms every 500 ms, too short to be speech: B
  // speaks instead, words of a 220 Hz voice (speaker detection is not fooled by beeps).
  const b = await join(room, 'Bo', { initScript: speakInsteadOfBeeping });
  await waitFor('A to receive B', () => receivesFrom(a, [b]));
  // The page is measured in the same task in which it learns B speaks; watch from before A
  // mutes, B may be named at once.
  await a.evaluate((id) => { window.ringProbe = new Promise((resolve) => {
    const measure = () => {
      const tile = document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`);
      const r = tile.getBoundingClientRect();
      // Hit testing follows paint order; the ring ignores the pointer, so let it be hit for
      // this one probe: whatever is painted on top at the tile's edge is returned.
      const ringEl = tile.querySelector('.ring');
      ringEl.style.pointerEvents = 'auto';
      const atEdge = document.elementFromPoint(r.left + 2, r.top + r.height / 2);
      ringEl.style.pointerEvents = '';
      const style = getComputedStyle(ringEl);
      return {
        speaking: tile.classList.contains('speaking'),
        topmostAtEdge: atEdge?.className,
        color: style.borderLeftColor,
        width: style.borderLeftWidth,
        cue: document.getElementById('speaker-cue').hidden ? '' : document.querySelector('#speaker-cue .speaker-name').textContent,
        panelOpen: !document.getElementById('side-panel').hidden,
      };
    };
    // A MutationObserver runs right after the page changed the tile, before the next
    // notification can turn the highlight off again (a poll can miss a 50 ms word).
    const tile = document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"]`);
    const observer = new MutationObserver(() => {
      if (!tile.classList.contains('speaking')) return;
      observer.disconnect();
      resolve(measure());
    });
    observer.observe(tile, { attributes: true, attributeFilter: ['class'] });
    if (tile.classList.contains('speaking')) {
      observer.disconnect();
      resolve(measure());
      return;
    }
    setTimeout(() => {
      observer.disconnect();
      resolve({ timedOut: true, log: window.meeting.log.filter((l) => l.method === 'activeSpeaker').slice(-5) });
    }, 45000);
  }); }, b.peerId);
  await a.press('m');
  const ring = await a.evaluate(() => window.ringProbe);
  assert.ok(!ring.timedOut, `B never became the active speaker on A in 45 s: ${JSON.stringify(ring)}`);
  assert.equal(ring.speaking, true);
  assert.equal(ring.topmostAtEdge, 'ring', 'the ring must be the topmost element at the tile edge (not the video)');
  assert.equal(ring.color, 'rgb(61, 220, 132)');
  assert.equal(ring.width, '4px');
  assert.equal(ring.panelOpen, false, 'on a phone the people list starts closed');
  assert.equal(ring.cue, 'Bo is speaking', 'the top bar names the speaker');
  await screenshot(a, 'meeting-speaking', 'phone');
  await closePeers(a, b);
});

e2e('bug 5: a blocked camera and microphone are explained, with how to allow them', async () => {
  const room = roomName('blocked');
  const blockMedia = () => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  };
  const p = await openPage(`/${room}`, 'Blocked', { initScript: blockMedia });
  const notice = await waitFor('the join screen to explain the blocked devices', async () => {
    const text = await p.evaluate(() => document.getElementById('join-notice').textContent);
    return { ok: /blocked/i.test(text), detail: text };
  }, { timeoutMs: 10000 });
  assert.match(notice.detail, /microphone and camera is blocked/i);
  assert.match(notice.detail, /allow it in the browser's address bar/i);
  assert.doesNotMatch(notice.detail, /available/i, 'never "not available" for a blocked device');
  await screenshot(p, 'join-blocked', 'desktop');
  await p.fill('#name-input', 'Blocked');
  await p.click('#join-button');
  await waitJoined(p);
  assert.match(await p.evaluate(() => window.meeting.notice), /blocked.*receive-only/is);
  await closePeers(p);
});

e2e('bug 6: a bad room URL shows the client\'s message, with a valid room to go to', async () => {
  for (const bad of ['a%20b', 'x'.repeat(65)]) {
    const res = await fetch(`${server.baseUrl}/${bad}`);
    assert.equal(res.status, 404, `/${bad} is not a room`);
    assert.match(res.headers.get('content-type'), /text\/html/, 'the page, not a bare text');
    const p = await openPage(`/${bad}`, 'BadUrl');
    const s = await waitFor('the home screen with the room-name message', async () => {
      const v = await p.evaluate(() => ({
        screen: [...document.querySelectorAll('.screen')].find((x) => !x.hidden)?.id,
        error: document.getElementById('home-error').textContent,
        suggestion: document.getElementById('room-input').value,
      }));
      return { ok: v.screen === 'home-screen' && /not a valid room name/.test(v.error), detail: v };
    }, { timeoutMs: 10000 });
    assert.match(s.detail.suggestion, /^[a-z]+-[a-z]+-\d{3}$/, 'a valid room name is offered');
    if (bad.length > 60) await screenshot(p, 'bad-room-url', 'desktop');
    await closePeers(p);
  }
});

e2e('bug 7: a full room says so in words, with "Try again" and no "Rejoin"', async () => {
  const room = roomName('full');
  const a = await join(room, 'One');
  const b = await join(room, 'Two');
  const c = await openPage(`/${room}`, 'Three');
  await c.fill('#name-input', 'Three');
  await c.click('#join-button');
  const s = await waitFor('the third person to be told the room is full', async () => {
    const v = await c.evaluate(() => ({
      screen: [...document.querySelectorAll('.screen')].find((x) => !x.hidden)?.id,
      title: document.getElementById('left-title').textContent,
      detail: document.getElementById('left-detail').textContent,
      button: document.getElementById('rejoin-button').textContent,
      body: document.body.innerText,
    }));
    return { ok: v.screen === 'left-screen', detail: v };
  }, { timeoutMs: 15000 });
  assert.equal(s.detail.title, 'This meeting is full');
  assert.equal(s.detail.button, 'Try again');
  assert.doesNotMatch(s.detail.body, /roomFull|Rejoin/, 'no raw error code, no "Rejoin" for someone who never joined');
  await screenshot(c, 'room-full', 'desktop');
  // Once someone left, "Try again" gets in.
  await closePeers(b);
  await c.click('#rejoin-button');
  await waitJoined(c);
  await closePeers(a, c);
});

e2e('bug 8: an emoji at the start of a name gives whole-character initials', async () => {
  const room = roomName('emoji');
  const name = '😀 Zoë';
  const a = await join(room, name);
  const b = await join(room, 'Plain');
  await a.press('v'); // camera off: B sees A's initials
  const got = await waitFor('B to show A\'s avatar', async () => {
    const v = await b.evaluate((id) => ({
      tile: document.querySelector(`.tile[data-peer-id="${id}"] .initials`)?.textContent,
      off: document.querySelector(`.tile[data-peer-id="${id}"]`)?.classList.contains('video-off'),
      list: document.querySelector(`#participant-list li[data-peer-id="${id}"] .mini-avatar`)?.textContent,
    }), a.peerId);
    return { ok: v.off === true, detail: v };
  }, { timeoutMs: 10000 });
  assert.equal(got.detail.tile, '😀Z');
  assert.equal(got.detail.list, '😀Z');
  assert.doesNotMatch(got.detail.tile, LONE_SURROGATE);
  await closePeers(a, b);
});

e2e('bug 9: no simulcast badges on tiles; the Stats tab shows each video\'s layer', async () => {
  const room = roomName('stats');
  const a = await join(room, 'Sam');
  const b = await join(room, 'Tia');
  await waitFor('A to receive B', () => receivesFrom(a, [b]));
  const badges = await a.evaluate(() => [...document.querySelectorAll('.tile *')]
    .filter((el) => el.children.length === 0 && /^[LMH]$/.test(el.textContent.trim())).length);
  assert.equal(badges, 0, 'no L/M/H badge in any tile');
  await a.click('#participants-button');
  await a.click('#tab-stats');
  await waitFor('the Stats tab to list B\'s video with its layer', async () => {
    const r = await a.evaluate(() => [...document.querySelectorAll('#stats-body tr')].map((tr) => [...tr.children].map((td) => td.textContent)));
    return { ok: r.some((cells) => cells[0] === 'Tia' && cells[1] === 'webcam' && ['low', 'medium', 'high'].includes(cells[2])), detail: r };
  }, { timeoutMs: 15000 });
  await closePeers(a, b);
});

e2e('bug 10: renaming yourself works from the keyboard', async () => {
  const room = roomName('rename');
  const a = await join(room, 'Kim', { viewport: WIDE });
  const b = await join(room, 'Lee');
  // Tab from the top of the page until the rename control has the focus.
  await a.evaluate(() => document.activeElement?.blur());
  let focused = '';
  for (let i = 0; i < 40 && focused !== 'rename-button'; i++) {
    await a.press('Tab');
    focused = await a.evaluate(() => document.activeElement?.id || document.activeElement?.className || '');
  }
  assert.equal(focused, 'rename-button', 'the rename button must be reachable with Tab');
  await a.press('Enter');
  assert.equal(await a.evaluate(() => document.activeElement?.id), 'rename-input');
  await a.fill('#rename-input', 'Kim Park');
  await a.press('Enter');
  await waitFor('B to see the new name', async () => {
    const names = await b.evaluate(() => [...window.meeting.peers.values()].map((p) => p.displayName));
    return { ok: names.includes('Kim Park'), detail: names };
  }, { timeoutMs: 10000 });
  await closePeers(a, b);
});

e2e('bug 10: text colours pass WCAG AA contrast (axe-core) on every screen, phone and desktop', async () => {
  const room = roomName('contrast');
  const found = [];
  // The checker itself must be able to fail: grey on grey is caught.
  const control = await openPage('/', 'axe-control');
  // Styled through the CSSOM: the page's CSP refuses inline style attributes.
  await control.evaluate(() => {
    const p = document.createElement('p');
    p.id = 'low-contrast';
    p.textContent = 'hard to read';
    p.style.color = '#777';
    p.style.background = '#888';
    document.body.append(p);
  });
  const caught = await axeViolations(control, 'control');
  assert.ok(caught.some((v) => v.includes('color-contrast') && v.includes('#low-contrast')), `axe-core must flag grey on grey: ${caught.join('\n')}`);
  await closePeers(control);
  for (const [size, viewport] of [['desktop', WIDE], ['phone', PHONE]]) {
    const home = await openPage('/', `home-${size}`, { viewport });
    await waitFor('the home screen', async () => ({ ok: (await screenOf(home)).screen === 'home-screen', detail: await screenOf(home) }));
    found.push(...await axeViolations(home, `home (${size})`));
    await screenshot(home, 'home', size);
    await closePeers(home);

    const p = await openPage(`/${room}-${size}`, `join-${size}`, { viewport });
    await waitFor('the join screen', async () => ({ ok: (await screenOf(p)).screen === 'join-screen', detail: await screenOf(p) }));
    await p.click('#join-button'); // empty name: the error text is checked too
    await sleep(800); // the preview and meter start
    found.push(...await axeViolations(p, `join (${size})`));
    await screenshot(p, 'join', size);
    await p.fill('#name-input', `Pat ${size}`);
    await p.click('#join-button');
    await waitJoined(p);
    found.push(...await axeViolations(p, `meeting, alone (${size})`));
    await screenshot(p, 'meeting-alone', size);
    await p.click('#participants-button');
    await p.click('#mic-button'); // mic-off badges in the list and the toolbar
    await sleep(300);
    found.push(...await axeViolations(p, `meeting, people panel (${size})`));
    await screenshot(p, 'meeting-people', size);
    await p.click('#settings-button');
    found.push(...await axeViolations(p, `device settings (${size})`));
    await screenshot(p, 'settings', size);
    await p.click('#settings-close');
    await p.click('#leave-button');
    found.push(...await axeViolations(p, `leave confirmation (${size})`));
    await p.click('#confirm-ok');
    await waitFor('the left screen', async () => ({ ok: (await screenOf(p)).screen === 'left-screen', detail: await screenOf(p) }));
    found.push(...await axeViolations(p, `left (${size})`));
    await closePeers(p);
  }
  assert.deepEqual(found, [], `accessibility violations:\n${found.join('\n')}`);
});

e2e('invite: alone hint with the link, Copy puts it on the clipboard, the hint goes when someone joins', async () => {
  const room = roomName('invite');
  const a = await join(room, 'Host', { permissions: ['clipboard-read', 'clipboard-write'] });
  const link = `${server.baseUrl}/${room}`;
  const hint = await waitFor('the alone hint', async () => {
    const v = await a.evaluate(() => ({ hidden: document.getElementById('alone-hint').hidden, link: document.getElementById('alone-link').textContent }));
    return { ok: !v.hidden, detail: v };
  }, { timeoutMs: 10000 });
  assert.equal(hint.detail.link, link);
  await a.click('#alone-copy');
  assert.equal(await a.evaluate(() => navigator.clipboard.readText()), link, 'Copy link must put the room link on the clipboard');
  await a.evaluate(() => navigator.clipboard.writeText(''));
  await a.click('#invite-button');
  assert.equal(await a.evaluate(() => navigator.clipboard.readText()), link, 'the Invite button copies the same link');
  const b = await join(room, 'Guest');
  await waitFor('the alone hint to go once someone joined', async () => {
    const hidden = await a.evaluate(() => document.getElementById('alone-hint').hidden);
    return { ok: hidden, detail: { hidden } };
  }, { timeoutMs: 10000 });
  await closePeers(a, b);
});

e2e('join with the microphone and camera off; the level meter moves before joining', async () => {
  const room = roomName('joinoff');
  const b = await join(room, 'Watcher');
  const a = await openPage(`/${room}`, 'Quiet');
  // The fake microphone beeps: the meter must move above silence at some point.
  await waitFor('the microphone level meter to move', async () => {
    const v = await a.evaluate(() => ({ hidden: document.getElementById('mic-meter').hidden, level: Number(document.getElementById('mic-meter').getAttribute('aria-valuenow')) }));
    return { ok: !v.hidden && v.level > 30, detail: v };
  }, { timeoutMs: 10000, intervalMs: 100 });
  await a.click('#join-mic-toggle');
  await a.click('#join-cam-toggle');
  await waitFor('the toggles to be off and the preview empty', async () => {
    const v = await a.evaluate(() => ({
      mic: document.getElementById('join-mic-toggle').getAttribute('aria-pressed'),
      cam: document.getElementById('join-cam-toggle').getAttribute('aria-pressed'),
      meter: document.getElementById('mic-meter').hidden,
      preview: !!document.getElementById('preview').srcObject,
    }));
    return { ok: v.mic === 'false' && v.cam === 'false' && v.meter && !v.preview, detail: v };
  }, { timeoutMs: 5000 });
  await a.fill('#name-input', 'Quiet');
  await a.click('#join-button');
  await waitJoined(a);
  assert.deepEqual(await a.evaluate(() => window.meeting.producers), [], 'nothing is sent when both were off');
  await waitFor('B to list A with microphone and camera off', async () => {
    const s = await listedState(b, 'Quiet');
    return { ok: s?.mic === 'false' && s?.cam === 'false', detail: s };
  }, { timeoutMs: 10000 });
  await a.click('#cam-button');
  await waitFor('B to decode A\'s camera once it is turned on', () => receivesFrom(b, [a], { audio: false }));
  await closePeers(a, b);
});

e2e('device settings during the meeting: another microphone and another speaker', async () => {
  const room = roomName('devices');
  const a = await join(room, 'Dev');
  const b = await join(room, 'Other');
  await waitFor('A to receive B\'s audio', () => receivesFrom(a, [b]));
  await a.click('#settings-button');
  const { detail: lists } = await waitFor('the settings dialog to open with the device lists', async () => {
    const v = await a.evaluate(() => ({
      open: document.getElementById('settings-dialog').open,
      mics: [...document.getElementById('settings-mic').options].map((o) => ({ id: o.value, label: o.textContent })),
      speakers: [...document.getElementById('settings-speaker').options].map((o) => ({ id: o.value, label: o.textContent })),
      cams: document.getElementById('settings-cam').options.length,
    }));
    return { ok: v.open && v.mics.length > 0 && v.speakers.length > 0, detail: v };
  }, { timeoutMs: 5000, intervalMs: 100 });
  assert.ok(lists.mics.length >= 2, `Chromium's fake devices offer several microphones: ${JSON.stringify(lists.mics)}`);
  assert.ok(lists.cams >= 1);
  assert.ok(lists.speakers.length >= 1 && lists.speakers[0].id !== '', `speakers listed: ${JSON.stringify(lists.speakers)}`);
  const current = await a.evaluate(() => window.meeting.sendPc.getSenders().find((s) => s.track?.kind === 'audio')?.track.getSettings().deviceId);
  const other = lists.mics.find((m) => m.id !== current);
  await a.select('#settings-mic', other.id);
  await waitFor('the published microphone to be the chosen device', async () => {
    const id = await a.evaluate(() => window.meeting.sendPc.getSenders().find((s) => s.track?.kind === 'audio')?.track.getSettings().deviceId);
    return { ok: id === other.id, detail: { now: id, wanted: other.id } };
  }, { timeoutMs: 10000 });
  const speaker = lists.speakers[lists.speakers.length - 1];
  await a.select('#settings-speaker', speaker.id);
  await waitFor('remote sound to play on the chosen speaker', async () => {
    const sinks = await a.evaluate(() => [...document.querySelectorAll('#audio-sink audio')].map((el) => el.sinkId));
    return { ok: sinks.length > 0 && sinks.every((s) => s === speaker.id), detail: { sinks, wanted: speaker.id } };
  }, { timeoutMs: 5000 });
  await screenshot(a, 'settings-in-meeting', 'desktop');
  await a.click('#settings-close');
  await closePeers(a, b);
});

e2e('presentation: a shared screen takes the stage, the sharer sees no mirror, pin, full screen and speaker view', async () => {
  const room = roomName('present');
  const a = await join(room, 'Presenter', { viewport: WIDE });
  const b = await join(room, 'Audience', { viewport: WIDE });
  await waitFor('B to receive A', () => receivesFrom(b, [a]));
  await a.click('#screen-button');
  await waitFor('B to decode A\'s screen', () => receivesFrom(b, [a], { videoSource: 'screen', audio: false }));
  const stage = await waitFor('B\'s layout to put A\'s screen on the stage', async () => {
    const v = await b.evaluate((id) => {
      const rect = (sel) => { const r = document.querySelector(sel)?.getBoundingClientRect(); return r ? { w: r.width, h: r.height } : null; };
      return {
        layout: document.getElementById('grid').dataset.layout,
        main: window.meeting.layout.main,
        screen: rect(`.tile[data-peer-id="${id}"][data-source="screen"]`),
        cam: rect(`.tile[data-peer-id="${id}"][data-source="webcam"]`),
      };
    }, a.peerId);
    return { ok: v.layout === 'stage' && v.main === `${a.peerId}:screen`, detail: v };
  }, { timeoutMs: 10000 });
  assert.ok(stage.detail.screen.w > 3 * stage.detail.cam.w, `the screen is large, the cameras small: ${JSON.stringify(stage.detail)}`);
  await screenshot(b, 'presentation', 'desktop');

  const own = await a.evaluate(() => {
    const tile = document.querySelector('.tile[data-self][data-source="screen"]');
    return {
      note: tile && !tile.querySelector('.presenting').hidden,
      video: tile && getComputedStyle(tile.querySelector('video')).display,
      src: tile && !!tile.querySelector('video').srcObject,
      main: window.meeting.layout.main,
    };
  });
  assert.deepEqual(own, { note: true, video: 'none', src: false, main: null }, 'the sharer sees a note, not its own screen inside its screen');
  await screenshot(a, 'presenting-self', 'desktop');

  // Pin A's camera on B: it takes the stage; unpin gives it back to the screen.
  await b.evaluate((id) => document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"] .tile-pin`).click(), a.peerId);
  assert.equal(await b.evaluate(() => window.meeting.layout.main), `${a.peerId}:webcam`);
  await b.evaluate((id) => document.querySelector(`.tile[data-peer-id="${id}"][data-source="webcam"] .tile-pin`).click(), a.peerId);
  assert.equal(await b.evaluate(() => window.meeting.layout.main), `${a.peerId}:screen`);

  // Full screen on a tile.
  await b.click(`.tile[data-peer-id="${a.peerId}"][data-source="screen"] .tile-fullscreen`);
  await waitFor('A\'s screen tile to be full screen on B', async () => {
    const v = await b.evaluate(() => document.fullscreenElement?.dataset.source || null);
    return { ok: v === 'screen', detail: v };
  }, { timeoutMs: 5000 });
  await b.evaluate(() => document.exitFullscreen());

  // Speaker view without a share: the other person large.
  await a.click('#screen-button');
  await waitFor('B\'s layout back to the grid', async () => {
    const v = await b.evaluate(() => document.getElementById('grid').dataset.layout);
    return { ok: v === 'grid', detail: v };
  }, { timeoutMs: 10000 });
  await b.press('l');
  const speakerView = await b.evaluate(() => ({ layout: document.getElementById('grid').dataset.layout, main: window.meeting.layout.main, mode: window.meeting.layout.mode }));
  assert.deepEqual(speakerView, { layout: 'stage', main: `${a.peerId}:webcam`, mode: 'speaker' });
  await screenshot(b, 'speaker-view', 'desktop');
  await closePeers(a, b);
});

e2e('phone size: two people, the side panel over the video, the toolbar fits', async () => {
  const room = roomName('phone');
  const a = await join(room, 'Phone', { viewport: PHONE });
  const b = await join(room, 'Laptop', { viewport: WIDE });
  await waitFor('A to receive B', () => receivesFrom(a, [b]));
  const fits = await a.evaluate(() => {
    const bar = document.querySelector('.toolbar');
    return { overflow: bar.scrollWidth > bar.clientWidth, width: bar.clientWidth };
  });
  assert.equal(fits.overflow, false, `the toolbar fits a phone: ${JSON.stringify(fits)}`);
  await screenshot(a, 'meeting-two', 'phone');
  await screenshot(b, 'meeting-two', 'desktop');
  await a.click('#participants-button');
  await screenshot(a, 'meeting-people-two', 'phone');
  await closePeers(a, b);
});
