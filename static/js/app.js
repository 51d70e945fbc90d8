// Entry point: routing (home/join/meeting), the meeting session (join, publish, consume, reconnect) and window.meeting.

import { Signaling, Backoff, roomSocketUrl, PROTOCOL_VERSION } from './signaling.js';
import { SendTransport, RecvTransport, getLocalTracks, getMicTrack, getCamTrack, listDevices } from './media.js';
import { roomNameProblem } from './rooms.js';
import { $, showScreen, setConnectionState, Grid, renderParticipants, setToggle, setNotice, toast, fillSelect } from './ui.js';

const FATAL_JOIN_ERRORS = new Set(['unsupportedVersion', 'roomFull', 'badRequest']);
const SELF = 'self'; // grid key of our own tiles; their data-peer-id carries the real peerId
const NAME_KEY = 'mm.displayName';

const params = new URLSearchParams(location.search);
const roomId = (() => {
  const raw = location.pathname.replace(/^\/+|\/+$/g, '');
  try { return decodeURIComponent(raw); } catch { return raw; }
})();

/** Local capture state; survives reconnects. */
const local = {
  mic: null, // MediaStreamTrack while the mic is on
  cam: null,
  screen: null,
  micOn: false,
  camOn: false,
  micDeviceId: '',
  camDeviceId: '',
};

let grid = null;
let session = null; // {sig, send, recv, pendingOffers, dead}
let reconnectTimer = null;
let joinedOnce = false;
const backoff = new Backoff();
const prefTimers = new Map(); // consumerId -> timeout
const prefSent = new Map(); // consumerId -> "WxH"

/** Serializes everything that touches local tracks or the send transport. */
const localQueue = {
  tail: Promise.resolve(),
  run(job) {
    const result = this.tail.then(job);
    this.tail = result.catch(() => {});
    return result;
  },
};

const meeting = {
  state: 'idle', // 'idle' | 'joining' | 'joined' | 'reconnecting' | 'closed'
  roomId,
  peerId: null,
  displayName: '',
  peers: new Map(), // peerId -> {id, displayName, producers: Map(producerId -> Producer)}
  consumers: new Map(), // consumerId -> {id, producerId, peerId, kind, source, mid, paused, track}
  activeSpeakerId: null,
  notice: '',
  log: [], // last notifications, for debugging
  get micOn() { return local.micOn; },
  get camOn() { return local.camOn; },
  get sharing() { return !!local.screen; },
  get producers() {
    const send = session?.send;
    return send ? [...send.producers.values()].map(({ id, mid, kind, source, paused }) => ({ id, mid, kind, source, paused })) : [];
  },
  get sendPc() { return session?.send?.pc || null; },
  get recvPc() { return session?.recv?.pc || null; },
  async inboundStats() {
    const recv = session?.recv;
    return recv ? recv.inboundStats() : [];
  },
  startScreenShare,
  stopScreenShare,
  leave,
  setMic,
  setCam,
  toggleMic: () => setMic(!local.micOn),
  toggleCam: () => setCam(!local.camOn),
  changeDisplayName,
};
window.meeting = meeting;

// ---------------------------------------------------------------- routing

function boot() {
  if (!roomId) return showHome();
  const problem = roomNameProblem(roomId);
  if (problem) {
    return showHome(`"${roomId}" is not a valid room name: ${problem}.`);
  }
  document.title = `${roomId} · Meeting`;
  const name = (params.get('displayName') || localStorage.getItem(NAME_KEY) || '').trim().slice(0, 64);
  if (params.get('autoJoin') === '1' && name) {
    autoJoin(name);
  } else {
    showJoin(name);
  }
}

function showHome(error = '') {
  showScreen('home');
  const input = $('#room-input');
  input.value = roomId && !roomNameProblem(roomId) ? '' : randomRoomName();
  setNotice($('#home-error'), error, 'error');
  $('#home-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = input.value.trim();
    const problem = roomNameProblem(room);
    if (problem) {
      setNotice($('#home-error'), `Not a room name: ${problem}.`, 'error');
      return;
    }
    location.assign(`/${encodeURIComponent(room)}`);
  });
  input.focus();
}

function randomRoomName() {
  const words = ['amber', 'brisk', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'indigo', 'juniper'];
  const pick = () => words[Math.floor(Math.random() * words.length)];
  return `${pick()}-${pick()}-${Math.floor(Math.random() * 900 + 100)}`;
}

async function autoJoin(name) {
  meeting.state = 'joining';
  const tracks = await getLocalTracks();
  startMeeting(name, tracks);
}

async function showJoin(name) {
  showScreen('join');
  $('#join-room-name').textContent = roomId;
  const nameInput = $('#name-input');
  nameInput.value = name;
  const preview = $('#preview');
  const camSelect = $('#cam-select');
  const micSelect = $('#mic-select');
  let tracks = { mic: null, cam: null, errors: {} };

  const setPreview = () => {
    preview.srcObject = tracks.cam ? new MediaStream([tracks.cam]) : null;
    $('#preview-off').hidden = !!tracks.cam;
  };
  const describeMissing = () => {
    const missing = [!tracks.mic && 'microphone', !tracks.cam && 'camera'].filter(Boolean);
    setNotice($('#join-notice'), missing.length
      ? `No ${missing.join(' or ')} available: you can still join and ${tracks.mic || tracks.cam ? 'send what works' : 'watch and listen'}.`
      : '', 'warn');
  };
  const refreshDevices = async () => {
    const devices = await listDevices().catch(() => ({ audioinput: [], videoinput: [] }));
    fillSelect(camSelect, devices.videoinput, tracks.cam?.getSettings().deviceId, 'No camera');
    fillSelect(micSelect, devices.audioinput, tracks.mic?.getSettings().deviceId, 'No microphone');
  };

  tracks = await getLocalTracks();
  setPreview();
  describeMissing();
  await refreshDevices();
  navigator.mediaDevices?.addEventListener?.('devicechange', refreshDevices);

  camSelect.addEventListener('change', async () => {
    tracks.cam?.stop();
    try { tracks.cam = await getCamTrack(camSelect.value); } catch (err) { tracks.cam = null; toast(`Camera: ${err.message}`, 'error'); }
    setPreview();
    describeMissing();
  });
  micSelect.addEventListener('change', async () => {
    tracks.mic?.stop();
    try { tracks.mic = await getMicTrack(micSelect.value); } catch (err) { tracks.mic = null; toast(`Microphone: ${err.message}`, 'error'); }
    describeMissing();
  });

  $('#join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const displayName = nameInput.value.trim().slice(0, 64);
    if (!displayName) { nameInput.focus(); return; }
    localStorage.setItem(NAME_KEY, displayName);
    navigator.mediaDevices?.removeEventListener?.('devicechange', refreshDevices);
    preview.srcObject = null;
    local.micDeviceId = micSelect.value;
    local.camDeviceId = camSelect.value;
    startMeeting(displayName, tracks);
  }, { once: true });
  nameInput.focus();
}

// ---------------------------------------------------------------- meeting screen

function startMeeting(displayName, tracks) {
  meeting.displayName = displayName;
  local.mic = tracks.mic;
  local.cam = tracks.cam;
  local.micOn = !!tracks.mic;
  local.camOn = !!tracks.cam;
  if (tracks.mic && !local.micDeviceId) local.micDeviceId = tracks.mic.getSettings().deviceId || '';
  if (tracks.cam && !local.camDeviceId) local.camDeviceId = tracks.cam.getSettings().deviceId || '';
  watchLocalTrack('mic', tracks.mic);
  watchLocalTrack('webcam', tracks.cam);

  showScreen('meeting');
  $('#room-name').textContent = roomId;
  grid = new Grid($('#grid'));
  wireToolbar();
  updateSelf();
  renderList();

  if (!tracks.mic && !tracks.cam) {
    showMeetingNotice('No camera or microphone available: you joined receive-only.', 'warn');
  } else if (!tracks.mic || !tracks.cam) {
    showMeetingNotice(`No ${!tracks.mic ? 'microphone' : 'camera'} available.`, 'warn');
  }
  window.addEventListener('pagehide', () => {
    // Closing the socket is how the server learns we are gone; no rejoin, no pause requests.
    meeting.state = 'closed';
    clearTimeout(reconnectTimer);
    if (session && !session.dead) session.sig?.close(1001, 'page closed');
  });
  connect();
}

function showMeetingNotice(text, kind = 'info') {
  meeting.notice = text;
  const el = $('#meeting-notice');
  setNotice(el, text, kind);
  el.onclick = () => setNotice(el, '');
}

function wireToolbar() {
  $('#mic-button').addEventListener('click', () => setMic(!local.micOn).catch((err) => toast(`Microphone: ${err.message}`, 'error')));
  $('#cam-button').addEventListener('click', () => setCam(!local.camOn).catch((err) => toast(`Camera: ${err.message}`, 'error')));
  $('#screen-button').addEventListener('click', () => {
    const op = local.screen ? stopScreenShare() : startScreenShare();
    op.catch((err) => {
      if (err?.name !== 'NotAllowedError') toast(`Screen share: ${err.message}`, 'error');
    });
  });
  $('#participants-button').addEventListener('click', () => {
    const panel = $('#participants-panel');
    panel.hidden = !panel.hidden;
    setToggle($('#participants-button'), !panel.hidden);
    grid.layout();
  });
  $('#leave-button').addEventListener('click', () => leave());
  $('#rejoin-button').addEventListener('click', () => {
    const q = new URLSearchParams({ displayName: meeting.displayName, autoJoin: '1' });
    location.assign(`/${encodeURIComponent(roomId)}?${q}`);
  });
  // Wide screens start with the participant list open.
  if (window.innerWidth >= 1100) $('#participants-button').click();
}

function updateToolbar() {
  setToggle($('#mic-button'), local.micOn, { onTitle: 'Turn microphone off', offTitle: 'Turn microphone on' });
  setToggle($('#cam-button'), local.camOn, { onTitle: 'Turn camera off', offTitle: 'Turn camera on' });
  setToggle($('#screen-button'), !!local.screen, { onTitle: 'Stop sharing', offTitle: 'Share screen' });
  $('#screen-button .tool-label').textContent = local.screen ? 'Stop share' : 'Share';
  $('#screen-button').hidden = !navigator.mediaDevices?.getDisplayMedia;
}

/** Own tiles (camera and, while sharing, screen) and toolbar. */
function updateSelf() {
  if (!grid) return;
  const tile = grid.ensure({ peerId: SELF, source: 'webcam', self: true, displayName: meeting.displayName });
  tile.el.dataset.peerId = meeting.peerId || '';
  tile.setName(meeting.displayName);
  tile.setTrack(local.camOn ? local.cam : null);
  tile.setVideoVisible(local.camOn);
  tile.setMicOn(local.micOn);
  if (local.screen) {
    const st = grid.ensure({ peerId: SELF, source: 'screen', self: true, displayName: meeting.displayName });
    st.el.dataset.peerId = meeting.peerId || '';
    st.setName(meeting.displayName);
    st.setTrack(local.screen);
    st.setVideoVisible(true);
  } else {
    grid.remove(SELF, 'screen');
  }
  updateSpeaking();
  updateToolbar();
}

function participantView(peer) {
  const producers = [...peer.producers.values()];
  const live = (source) => producers.some((p) => p.source === source && !p.paused);
  return {
    id: peer.id,
    displayName: peer.displayName,
    micOn: live('mic'),
    camOn: live('webcam'),
    sharing: live('screen'),
    speaking: meeting.activeSpeakerId === peer.id,
  };
}

function renderList() {
  const self = {
    id: meeting.peerId || SELF,
    displayName: meeting.displayName,
    self: true,
    micOn: local.micOn,
    camOn: local.camOn,
    sharing: !!local.screen,
    speaking: !!meeting.peerId && meeting.activeSpeakerId === meeting.peerId,
  };
  renderParticipants([self, ...[...meeting.peers.values()].map(participantView)], { onRename: changeDisplayName });
}

/** Re-renders a remote peer's tiles from its producers and consumers. */
function updatePeer(peerId) {
  const peer = meeting.peers.get(peerId);
  if (!peer || !grid) return;
  const view = participantView(peer);
  const consumers = [...meeting.consumers.values()].filter((c) => c.peerId === peerId && c.kind === 'video');
  const cam = consumers.find((c) => c.source !== 'screen');
  const screen = consumers.find((c) => c.source === 'screen');

  const tile = grid.ensure({ peerId, source: 'webcam', displayName: peer.displayName });
  tile.setName(peer.displayName);
  tile.setTrack(cam ? cam.track : null);
  tile.setVideoVisible(!!cam && !cam.paused && view.camOn);
  tile.setMicOn(view.micOn);
  if (cam) observeConsumer(cam, tile.video);

  if (screen) {
    const st = grid.ensure({ peerId, source: 'screen', displayName: peer.displayName });
    st.setName(peer.displayName);
    st.setTrack(screen.track);
    st.setVideoVisible(!screen.paused);
    observeConsumer(screen, st.video);
  } else {
    grid.remove(peerId, 'screen');
  }
  updateSpeaking();
  renderList();
}

function updateSpeaking() {
  if (!grid) return;
  for (const tile of grid.tiles.values()) {
    const id = tile.peerId === SELF ? meeting.peerId : tile.peerId;
    tile.setSpeaking(!!id && tile.source === 'webcam' && id === meeting.activeSpeakerId);
  }
}

// ---------------------------------------------------------------- session

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const s = { sig: null, send: null, recv: null, pendingOffers: [], dead: false };
  session = s;
  meeting.state = joinedOnce ? 'reconnecting' : 'joining';
  setConnectionState(joinedOnce ? 'reconnecting' : 'connecting');
  runSession(s).catch((err) => {
    if (s.dead || session !== s || meeting.state === 'closed') return;
    if (err?.code && FATAL_JOIN_ERRORS.has(err.code) && !s.joined) {
      endMeeting(err.code === 'roomFull' ? 'The room is full' : 'Could not join', err.message);
      return;
    }
    fail(s, err?.message || String(err));
  });
}

async function runSession(s) {
  s.sig = new Signaling(roomSocketUrl(roomId));
  s.sig.onNotification = (method, data) => {
    if (session === s && !s.dead) onNotification(s, method, data);
  };
  s.sig.onClose = ({ expected, code }) => {
    if (!expected) fail(s, `signaling socket closed (${code})`);
  };
  await s.sig.open();
  if (s.dead) return;

  const res = await s.sig.request('join', { displayName: meeting.displayName, protocolVersion: PROTOCOL_VERSION });
  if (s.dead) return;
  s.joined = true;
  meeting.peerId = res.peerId;
  const iceServers = Array.isArray(res.iceServers) ? res.iceServers : [];
  const request = (method, data) => s.sig.request(method, data);

  // The recv transport must exist before any recvOffer is handled.
  s.recv = new RecvTransport({
    iceServers,
    request,
    onFailed: (why) => fail(s, why),
    onConsumerAdded: (c) => { if (!s.dead) consumerAdded(c); },
    onConsumerRemoved: (c) => { if (!s.dead) consumerRemoved(c); },
  });
  for (const offer of s.pendingOffers.splice(0)) s.recv.handleOffer(offer);
  for (const peer of res.peers || []) addPeer(peer);
  s.send = new SendTransport({ iceServers, request, onFailed: (why) => fail(s, why) });

  meeting.state = 'joined';
  await localQueue.run(() => syncProducers(s));
  if (s.dead) return;
  joinedOnce = true;
  backoff.reset();
  setConnectionState('connected');
  updateSelf();
  renderList();
}

/** Tears the session down and schedules a rejoin with a growing delay. */
function fail(s, why) {
  if (s.dead || session !== s || meeting.state === 'closed') return;
  console.warn(`[meeting] reconnecting: ${why}`);
  teardown(s);
  meeting.state = 'reconnecting';
  setConnectionState('reconnecting');
  const delay = backoff.next();
  reconnectTimer = setTimeout(connect, delay);
}

function teardown(s) {
  s.dead = true;
  s.sig?.close();
  s.send?.close();
  s.recv?.close();
  for (const c of [...meeting.consumers.values()]) consumerRemoved(c);
  meeting.consumers.clear();
  meeting.peers.clear();
  meeting.activeSpeakerId = null;
  grid?.removeRemote();
  for (const el of document.querySelectorAll('#audio-sink audio')) el.remove();
  updateSelf();
  renderList();
}

function endMeeting(title, detail = '') {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  meeting.state = 'closed';
  if (session) teardown(session);
  session = null;
  local.mic?.stop();
  local.cam?.stop();
  local.screen?.stop();
  local.mic = local.cam = local.screen = null;
  grid?.clear();
  setConnectionState('closed');
  $('#left-title').textContent = title;
  $('#left-detail').textContent = detail;
  showScreen('left');
}

async function leave() {
  if (meeting.state === 'closed') return;
  const s = session;
  meeting.state = 'closed'; // stops fail() from rejoining when the server closes the socket
  if (s && !s.dead && s.joined) {
    try {
      await s.sig.request('leave', {}, { timeoutMs: 2000 });
    } catch (err) {
      console.warn('[meeting] leave:', err.message);
    }
  }
  endMeeting('You left the meeting');
}

// ---------------------------------------------------------------- notifications

function onNotification(s, method, data) {
  meeting.log.push({ t: Date.now(), method, data: method === 'recvOffer' ? { consumers: data.consumers } : data });
  if (meeting.log.length > 300) meeting.log.splice(0, 100);
  switch (method) {
    case 'peerJoined':
      addPeer(data.peer);
      toast(`${data.peer.displayName} joined`);
      break;
    case 'peerLeft':
      removePeer(data.peerId);
      break;
    case 'peerUpdated': {
      if (data.peerId === meeting.peerId) {
        meeting.displayName = data.displayName;
        updateSelf();
        renderList();
      }
      const peer = meeting.peers.get(data.peerId);
      if (peer) {
        peer.displayName = data.displayName;
        updatePeer(peer.id);
      }
      break;
    }
    case 'producerAdded': {
      const p = data.producer;
      const peer = meeting.peers.get(p.peerId);
      if (peer) {
        peer.producers.set(p.id, { ...p });
        updatePeer(peer.id);
      }
      break;
    }
    case 'producerClosed': {
      const peer = meeting.peers.get(data.peerId);
      peer?.producers.delete(data.producerId);
      for (const c of [...meeting.consumers.values()]) {
        if (c.producerId === data.producerId) s.recv?.removeConsumer(c.id);
      }
      if (peer) updatePeer(peer.id);
      break;
    }
    case 'producerPaused':
    case 'producerResumed': {
      const paused = method === 'producerPaused';
      const peer = meeting.peers.get(data.peerId);
      const p = peer?.producers.get(data.producerId);
      if (p) p.paused = paused;
      for (const c of meeting.consumers.values()) {
        if (c.producerId === data.producerId) c.paused = paused;
      }
      if (peer) updatePeer(peer.id);
      break;
    }
    case 'recvOffer':
      if (s.recv) s.recv.handleOffer(data);
      else s.pendingOffers.push(data);
      break;
    case 'consumerClosed':
      s.recv?.removeConsumer(data.consumerId);
      break;
    case 'consumerLayerChanged': {
      const c = meeting.consumers.get(data.consumerId);
      if (c) {
        c.layer = data.layer;
        grid?.get(c.peerId, c.source === 'screen' ? 'screen' : 'webcam')?.setLayer(data.layer);
      }
      break;
    }
    case 'activeSpeaker':
      meeting.activeSpeakerId = data.peerId || null;
      updateSpeaking();
      renderList();
      break;
    case 'transportState':
      console.debug(`[meeting] server ${data.direction} transport ${data.state}`);
      break;
    case 'reconnect':
      toast(`Reconnecting: ${data.reason || 'asked by the server'}`, 'warn');
      fail(s, `server asked to reconnect (${data.reason || ''})`);
      break;
    case 'error':
      console.error('[meeting] server error', data);
      toast(`Server: ${data.message || data.code}`, 'error');
      break;
    case 'welcome':
      break;
    default:
      console.debug('[meeting] ignoring notification', method);
  }
}

function addPeer(peer) {
  if (!peer || peer.id === meeting.peerId) return;
  const existing = meeting.peers.get(peer.id);
  const producers = new Map((peer.producers || []).map((p) => [p.id, { ...p }]));
  if (existing) {
    existing.displayName = peer.displayName;
    for (const [id, p] of producers) existing.producers.set(id, p);
  } else {
    meeting.peers.set(peer.id, { id: peer.id, displayName: peer.displayName, producers });
  }
  updatePeer(peer.id);
}

function removePeer(peerId) {
  const peer = meeting.peers.get(peerId);
  for (const c of [...meeting.consumers.values()]) {
    if (c.peerId === peerId) session?.recv?.removeConsumer(c.id);
  }
  meeting.peers.delete(peerId);
  grid?.removePeer(peerId);
  if (meeting.activeSpeakerId === peerId) meeting.activeSpeakerId = null;
  renderList();
  if (peer) toast(`${peer.displayName} left`);
}

// ---------------------------------------------------------------- consumers

function consumerAdded(c) {
  meeting.consumers.set(c.id, c);
  if (c.kind === 'audio') {
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.dataset.consumerId = c.id;
    audio.dataset.peerId = c.peerId;
    audio.srcObject = new MediaStream([c.track]);
    $('#audio-sink').append(audio);
    audio.play().catch(() => askForAudioUnlock());
  }
  if (!meeting.peers.has(c.peerId)) {
    // A consumer can name a peer we have not heard of yet (shouldn't happen): show it anyway.
    meeting.peers.set(c.peerId, { id: c.peerId, displayName: '…', producers: new Map() });
  }
  updatePeer(c.peerId);
}

function consumerRemoved(c) {
  meeting.consumers.delete(c.id);
  clearTimeout(prefTimers.get(c.id));
  prefTimers.delete(c.id);
  prefSent.delete(c.id);
  document.querySelector(`#audio-sink audio[data-consumer-id="${CSS.escape(c.id)}"]`)?.remove();
  if (meeting.peers.has(c.peerId)) updatePeer(c.peerId);
  else if (c.source === 'screen') grid?.remove(c.peerId, 'screen');
}

/** The browser refused to autoplay sound (no user gesture yet): offer a button, any click unlocks. */
function askForAudioUnlock() {
  const button = $('#audio-unlock');
  if (!button.hidden) return;
  button.hidden = false;
  const unlock = () => {
    button.hidden = true;
    for (const el of document.querySelectorAll('#audio-sink audio')) el.play().catch(() => {});
  };
  document.addEventListener('click', unlock, { once: true });
}

// ---------------------------------------------------------------- consumer preferences (tile sizes)

const sizeObserver = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const id = entry.target.dataset.consumerId;
    if (!id) continue;
    let width;
    let height;
    const box = entry.devicePixelContentBoxSize?.[0];
    if (box) {
      width = box.inlineSize;
      height = box.blockSize;
    } else {
      width = entry.contentRect.width * devicePixelRatio;
      height = entry.contentRect.height * devicePixelRatio;
    }
    schedulePreference(id, Math.round(width), Math.round(height));
  }
});

function observeConsumer(consumer, videoEl) {
  if (videoEl.dataset.consumerId === consumer.id) return;
  sizeObserver.unobserve(videoEl);
  videoEl.dataset.consumerId = consumer.id;
  sizeObserver.observe(videoEl); // reports the current size right away
}

function schedulePreference(consumerId, width, height) {
  clearTimeout(prefTimers.get(consumerId));
  prefTimers.set(consumerId, setTimeout(() => {
    prefTimers.delete(consumerId);
    const s = session;
    if (!s || s.dead || !meeting.consumers.has(consumerId)) return;
    const key = `${width}x${height}`;
    if (prefSent.get(consumerId) === key) return;
    prefSent.set(consumerId, key);
    s.sig.request('setConsumerPreferences', { consumerId, width, height }).catch((err) => {
      prefSent.delete(consumerId);
      console.warn('[meeting] setConsumerPreferences', err.message);
    });
  }, 300));
}

// ---------------------------------------------------------------- local media

function watchLocalTrack(source, track) {
  if (!track) return;
  track.addEventListener('ended', () => {
    if (source === 'mic' && local.mic === track) {
      toast('Microphone disconnected', 'warn');
      setMic(false).catch(() => {});
    } else if (source === 'webcam' && local.cam === track) {
      toast('Camera disconnected', 'warn');
      setCam(false).catch(() => {});
    }
  });
}

/** Brings the send transport in line with `local` (call inside localQueue). */
async function syncProducers(s = session) {
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
  const s = session;
  return syncProducers(s).catch((err) => {
    if (!s || s.dead) return;
    if (err?.code === 'closed' || err?.code === 'timeout') fail(s, err.message);
    throw err;
  });
}

async function setMic(on) {
  console.info(`[meeting] microphone ${on ? 'on' : 'off'}`);
  return localQueue.run(async () => {
    if (meeting.state === 'closed') return;
    if (on) {
      if (!local.mic || local.mic.readyState !== 'live') {
        local.mic = await getMicTrack(local.micDeviceId);
        watchLocalTrack('mic', local.mic);
      }
      local.micOn = true;
    } else {
      local.micOn = false;
    }
    updateSelf();
    renderList();
    try {
      await syncOrFail();
    } finally {
      if (!local.micOn && local.mic) {
        local.mic.stop();
        local.mic = null;
      }
    }
  });
}

async function setCam(on) {
  console.info(`[meeting] camera ${on ? 'on' : 'off'}`);
  return localQueue.run(async () => {
    if (meeting.state === 'closed') return;
    if (on) {
      if (!local.cam || local.cam.readyState !== 'live') {
        local.cam = await getCamTrack(local.camDeviceId);
        watchLocalTrack('webcam', local.cam);
      }
      local.camOn = true;
    } else {
      local.camOn = false;
    }
    updateSelf();
    renderList();
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

/** Starts sharing the screen (getDisplayMedia is called first, while the click's user activation is fresh). */
async function startScreenShare() {
  if (meeting.state === 'closed') throw new Error('not in a meeting');
  if (local.screen) return;
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
    updateSelf();
    renderList();
    try {
      await syncOrFail();
    } catch (err) {
      if (local.screen === track) local.screen = null;
      track.stop();
      updateSelf();
      renderList();
      throw err;
    }
  });
}

async function stopScreenShare() {
  return localQueue.run(async () => {
    if (!local.screen) return;
    local.screen.stop();
    local.screen = null;
    updateSelf();
    renderList();
    await syncOrFail();
  });
}

async function changeDisplayName(name) {
  const displayName = String(name || '').trim().slice(0, 64);
  if (!displayName) return;
  meeting.displayName = displayName;
  localStorage.setItem(NAME_KEY, displayName);
  updateSelf();
  renderList();
  const s = session;
  if (s && !s.dead && meeting.state === 'joined') await s.sig.request('changeDisplayName', { displayName });
}

boot();
