// Owns what this participant sends: microphone, camera and screen on/off, device switches,
// and keeping the send transport's producers in line with them. The session (session.js)
// hands in the current send transport; this module never opens connections itself.

import { local, meeting } from './state.js';
import { getMicTrack, getCamTrack, prefs } from './devices.js';

/** Serializes everything that touches local tracks or the send transport. */
export const localQueue = {
  tail: Promise.resolve(),
  run(job) {
    const result = this.tail.then(job);
    this.tail = result.catch(() => {});
    return result;
  },
};

// Set by attach(): the live session (or null), what to do when sending breaks it, and
// what to redraw after a change.
let hooks = { currentSession: () => null, onBroken: () => {}, changed: () => {}, toast: () => {} };

export function attach(h) {
  hooks = { ...hooks, ...h };
}

/** Brings the send transport of session `s` in line with `local` (call inside localQueue). */
export async function syncProducers(s) {
  if (!s || s.dead || !s.send || meeting.state !== 'joined') return;
  const send = s.send;
  const toPublish = [];
  for (const [source, track, on] of [['mic', local.mic, local.micOn], ['webcam', local.cam, local.camOn]]) {
    const p = send.producers.get(source);
    if (!p) {
      if (on && track) toPublish.push({ source, track });
    } else if (on && track) {
      if (p.paused) await send.resume(source, track);
      else if (p.transceiver.sender.track !== track) await send.replace(source, track);
    } else if (!p.paused) {
      await send.pause(source);
    }
  }
  const screenLive = local.screen?.readyState === 'live';
  const sp = send.producers.get('screen');
  if (screenLive && !sp) toPublish.push({ source: 'screen', track: local.screen });
  else if (!screenLive && sp) await send.closeScreen();
  if (toPublish.length) await send.publish(toPublish);
}

function syncOrFail() {
  const s = hooks.currentSession();
  return syncProducers(s).catch((err) => {
    if (!s || s.dead) return;
    if (err?.code === 'closed' || err?.code === 'timeout') hooks.onBroken(s, err.message);
    throw err;
  });
}

export function watchLocalTrack(source, track) {
  if (!track) return;
  track.addEventListener('ended', () => {
    if (source === 'mic' && local.mic === track) {
      hooks.toast('Microphone disconnected', 'warn');
      setMic(false).catch(() => {});
    } else if (source === 'webcam' && local.cam === track) {
      hooks.toast('Camera disconnected', 'warn');
      setCam(false).catch(() => {});
    }
  });
}

/** A moderator blocked this kind of media (`mediaBlocked`): only they can allow it again. */
function refuseWhenBlocked(kind) {
  if (!meeting.blocked.has(kind)) return;
  const what = { audio: 'microphone', video: 'camera', screen: 'screen share' }[kind];
  throw new Error(`a moderator turned your ${what} off; ask them to allow it again`);
}

/** Microphone on or off; the choice is remembered for the next join (a muted person stays muted). */
export async function setMic(on) {
  return localQueue.run(async () => {
    if (meeting.state === 'closed') return;
    if (on) refuseWhenBlocked('audio');
    if (on && (!local.mic || local.mic.readyState !== 'live')) {
      local.mic = await getMicTrack(local.micDeviceId);
      watchLocalTrack('mic', local.mic);
    }
    local.micOn = !!on;
    prefs.write({ micOn: local.micOn });
    hooks.changed();
    try {
      await syncOrFail();
    } finally {
      if (!local.micOn && local.mic) {
        local.mic.stop(); // the browser's recording indicator goes off
        local.mic = null;
      }
    }
  });
}

/** Camera on or off, remembered like the microphone. */
export async function setCam(on) {
  return localQueue.run(async () => {
    if (meeting.state === 'closed') return;
    if (on) refuseWhenBlocked('video');
    if (on && (!local.cam || local.cam.readyState !== 'live')) {
      local.cam = await getCamTrack(local.camDeviceId);
      watchLocalTrack('webcam', local.cam);
    }
    local.camOn = !!on;
    prefs.write({ camOn: local.camOn });
    hooks.changed();
    try {
      await syncOrFail();
    } finally {
      if (!local.camOn && local.cam) {
        local.cam.stop(); // the camera light goes off
        local.cam = null;
      }
    }
  });
}

/**
 * Switches the microphone or camera to another device. When it is on, the new track
 * replaces the old one in the producer (no renegotiation); when off, only the choice changes.
 */
export async function useDevice(kind, deviceId) {
  return localQueue.run(async () => {
    if (kind === 'mic') {
      local.micDeviceId = deviceId;
      prefs.write({ micDeviceId: deviceId });
      if (!local.micOn) return;
      const track = await getMicTrack(deviceId);
      const old = local.mic;
      local.mic = track;
      watchLocalTrack('mic', track);
      await syncOrFail();
      old?.stop();
    } else {
      local.camDeviceId = deviceId;
      prefs.write({ camDeviceId: deviceId });
      if (!local.camOn) return;
      const old = local.cam;
      old?.stop(); // some cameras cannot be opened twice
      const track = await getCamTrack(deviceId);
      local.cam = track;
      watchLocalTrack('webcam', track);
      hooks.changed();
      await syncOrFail();
    }
  });
}

/** Starts sharing the screen (getDisplayMedia first, while the click's user activation is fresh). */
export async function startScreenShare() {
  if (meeting.state === 'closed') throw new Error('not in a meeting');
  if (local.screen) return;
  refuseWhenBlocked('screen');
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
  const track = stream.getVideoTracks()[0];
  for (const extra of stream.getTracks()) if (extra !== track) extra.stop();
  if (!track) throw new Error('no video track from getDisplayMedia');
  if ('contentHint' in track) track.contentHint = 'detail';
  track.addEventListener('ended', () => {
    // The user pressed the browser's own "Stop sharing".
    if (local.screen === track) stopScreenShare().catch(() => {});
  });
  await localQueue.run(async () => {
    if (local.screen) { track.stop(); return; }
    local.screen = track;
    hooks.changed();
    try {
      await syncOrFail();
    } catch (err) {
      if (local.screen === track) local.screen = null;
      track.stop();
      hooks.changed();
      throw err;
    }
  });
}

export async function stopScreenShare() {
  return localQueue.run(async () => {
    if (!local.screen) return;
    local.screen.stop();
    local.screen = null;
    hooks.changed();
    await syncOrFail();
  });
}

/** Stops every local track (leaving the meeting). */
export function stopAllTracks() {
  local.mic?.stop();
  local.cam?.stop();
  local.screen?.stop();
  local.mic = local.cam = local.screen = null;
}
