// Owns the meeting screen: the toolbar and its keyboard shortcuts, the leave confirmation,
// the invite link and the "you are alone" hint, the device settings dialog (camera,
// microphone, speaker), remote sound, the speaker cue, and the left screen. It draws what
// session.js and local.js report; it sends nothing to the server itself.

import { $, showScreen, setToggle, setNotice, toast, toastHistory, fillSelect, confirmDialog, copyText } from './ui.js';
import { Grid } from './tiles.js';
import { SidePanel } from './panel.js';
import { local, meeting } from './state.js';
import { listDevices, canPickSpeaker, prefs } from './devices.js';
import { setMic, setCam, useDevice, startScreenShare, stopScreenShare } from './local.js';
import {
  startSession, leave, changeDisplayName, setConsumerSize, inboundStats,
  sendChat, clearChat, admitPeer, admitAll, denyPeer, kickPeer, setLocked, closeMeeting, moderate, raiseHand,
} from './session.js';

const SELF = 'self'; // grid key of our own tiles; their data-peer-id carries the real peerId
const CONNECTION_LABELS = { lobby: 'Waiting to be let in', connecting: 'Connecting', connected: 'Connected', reconnecting: 'Reconnecting', closed: 'Disconnected' };

let grid = null;
let panel = null;

/** Shows the meeting screen and starts the session with the tracks chosen on the join screen. */
export function enterMeeting({ displayName, tracks, micOn, camOn }) {
  meeting.displayName = displayName;
  local.mic = tracks.mic;
  local.cam = tracks.cam;
  local.micOn = !!tracks.mic && micOn;
  local.camOn = !!tracks.cam && camOn;
  // A device the person switched off before joining is not kept open (its light goes off).
  if (!local.micOn && local.mic) { local.mic.stop(); local.mic = null; }
  if (!local.camOn && local.cam) { local.cam.stop(); local.cam = null; }
  const remembered = prefs.read();
  local.micDeviceId = tracks.mic?.getSettings().deviceId || remembered.micDeviceId || '';
  local.camDeviceId = tracks.cam?.getSettings().deviceId || remembered.camDeviceId || '';
  local.speakerId = remembered.speakerId || '';

  showScreen('meeting');
  $('#room-name').textContent = meeting.roomId;
  grid = new Grid($('#grid'), { onVideoSize: setConsumerSize });
  panel = new SidePanel({
    onToggle: (open) => {
      setToggle($('#participants-button'), open);
      grid.layout();
    },
    onRename: (name) => changeDisplayName(name).catch((err) => toast(`Rename: ${err.message}`, 'error')),
    statsSource: statsRows,
    actions: {
      sendChat: (text) => sendChat(text).catch((err) => { toast(`Chat: ${err.message}`, 'error'); throw err; }),
      clearChat: () => clearChat().catch((err) => toast(`Chat: ${err.message}`, 'error')),
      admit: (id) => admitPeer(id).catch((err) => toast(`Admit: ${err.message}`, 'error')),
      admitAll: () => admitAll().catch((err) => toast(`Admit: ${err.message}`, 'error')),
      deny: (id) => denyPeer(id).catch((err) => toast(`Refuse: ${err.message}`, 'error')),
      kick: (id, name) => confirmKick(id, name),
      setLocked: (on) => setLocked(on).catch((err) => toast(`Lock: ${err.message}`, 'error')),
      moderate: (method, id) => moderate(method, id).catch((err) => toast(`${method}: ${err.message}`, 'error')),
      closeMeeting: () => confirmCloseMeeting(),
    },
  });
  panel.showTab('people');
  wireToolbar();
  wireShortcuts();
  wireInvite();
  wireSettings();
  renderSelf();

  if (tracks.notice) showMeetingNotice(tracks.notice, 'warn');
  // Wide screens start with the side panel open.
  if (window.innerWidth >= 1100) panel.toggle(true, 'people');

  startSession({
    connectionChanged,
    selfChanged: renderSelf,
    peerChanged: renderPeer,
    peerRemoved,
    speakerChanged,
    consumerAdded,
    consumerRemoved,
    ended,
    toast,
    chatChanged,
    accessChanged,
    lobbyChanged,
    mediaBlocked,
  });
}

// ---------------------------------------------------------------- chat, lobby, moderation

function chatChanged(added = null) {
  panel.renderChat(meeting.chat, {
    selfId: meeting.peerId,
    canSend: meeting.permissions.has('sendChat'),
    canClear: meeting.permissions.has('moderateChat'),
    added,
  });
  if (added && added.peerId !== meeting.peerId && !(panel.open && panel.tab === 'chat')) {
    toast(`${added.displayName}: ${added.text.slice(0, 80)}`);
  }
}

function accessChanged() {
  panel.renderAccess({
    lobbyPeers: meeting.lobbyPeers,
    canAdmit: meeting.permissions.has('promotePeer'),
    canLock: meeting.permissions.has('changeRoomLock'),
    canKick: meeting.permissions.has('moderateRoom'),
    locked: meeting.locked,
  });
  renderList();
}

function lobbyChanged() {
  $('#lobby-wait').hidden = !meeting.inLobby;
}

/** A moderator blocked (or allowed again) our microphone, camera or screen share. */
function mediaBlocked(kind, blocked) {
  const what = { audio: 'microphone', video: 'camera', screen: 'screen share' }[kind] || kind;
  if (!blocked) {
    toast(`A moderator allowed your ${what} again`, 'ok');
    return;
  }
  toast(`A moderator turned your ${what} off`, 'warn', 6000);
  const off = { audio: () => setMic(false), video: () => setCam(false), screen: () => stopScreenShare() }[kind];
  off?.().catch(() => {}).finally(renderSelf);
}

async function confirmCloseMeeting() {
  const ok = await confirmDialog({
    title: 'End the meeting for everyone?',
    text: 'Everyone, including people waiting in the lobby, leaves at once. The chat is deleted.',
    confirmLabel: 'End for all',
  });
  if (ok) await closeMeeting().catch((err) => toast(`End: ${err.message}`, 'error'));
}

function toggleHand() {
  return raiseHand(!meeting.raisedHand).catch((err) => toast(`Hand: ${err.message}`, 'error'));
}

async function confirmKick(peerId, name) {
  const ok = await confirmDialog({
    title: `Remove ${name}?`,
    text: `${name} leaves the meeting at once and is told a moderator removed them.`,
    confirmLabel: 'Remove',
  });
  if (!ok) return;
  await kickPeer(peerId).catch((err) => toast(`Remove: ${err.message}`, 'error'));
}

function showMeetingNotice(text, kind = 'info') {
  meeting.notice = text;
  const el = $('#meeting-notice');
  setNotice(el, text, kind);
  el.onclick = () => setNotice(el, '');
}

// ---------------------------------------------------------------- toolbar and shortcuts

function toggleMic() {
  return setMic(!local.micOn).catch((err) => toast(`Microphone: ${err.message}`, 'error'));
}

function toggleCam() {
  return setCam(!local.camOn).catch((err) => toast(`Camera: ${err.message}`, 'error'));
}

function toggleShare() {
  const op = local.screen ? stopScreenShare() : startScreenShare();
  return op.catch((err) => {
    if (err?.name === 'NotAllowedError') return; // the person cancelled the picker
    if (err?.name === 'NotFoundError') toast('There is no screen or window to share on this device.', 'error');
    else toast(`Screen share: ${err.message}`, 'error');
  });
}

async function confirmLeave() {
  const yes = await confirmDialog({
    title: 'Leave the meeting?',
    text: 'You can rejoin with the same link.',
    confirmLabel: 'Leave',
    cancelLabel: 'Stay',
  });
  if (yes) await leave();
}

function toggleLayout() {
  grid.setMode(grid.mode === 'speaker' ? 'grid' : 'speaker');
  renderToolbar();
}

function wireToolbar() {
  $('#mic-button').addEventListener('click', toggleMic);
  $('#cam-button').addEventListener('click', toggleCam);
  $('#screen-button').addEventListener('click', toggleShare);
  $('#layout-button').addEventListener('click', toggleLayout);
  $('#hand-button').addEventListener('click', toggleHand);
  $('#participants-button').addEventListener('click', () => panel.toggle(!panel.open, 'people'));
  $('#settings-button').addEventListener('click', openSettings);
  $('#leave-button').addEventListener('click', confirmLeave);
}

/** Shortcuts as in other meeting apps: M microphone, V camera, S share, P people, L layout. */
const SHORTCUTS = {
  m: toggleMic,
  v: toggleCam,
  s: toggleShare,
  p: () => panel.toggle(!panel.open, 'people'),
  l: toggleLayout,
  h: toggleHand,
};

function wireShortcuts() {
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    if ($('#meeting-screen').hidden || document.querySelector('dialog[open]')) return;
    const target = ev.target;
    if (target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
    const action = SHORTCUTS[ev.key.toLowerCase()];
    if (!action) return;
    ev.preventDefault();
    action();
  });
}

function renderToolbar() {
  setToggle($('#mic-button'), local.micOn, { onTitle: 'Turn microphone off (M)', offTitle: 'Turn microphone on (M)' });
  setToggle($('#cam-button'), local.camOn, { onTitle: 'Turn camera off (V)', offTitle: 'Turn camera on (V)' });
  setToggle($('#screen-button'), !!local.screen, { onTitle: 'Stop sharing (S)', offTitle: 'Share screen (S)' });
  $('#screen-button .tool-label').textContent = local.screen ? 'Stop share' : 'Share';
  $('#screen-button').hidden = !navigator.mediaDevices?.getDisplayMedia;
  const speaker = grid?.mode === 'speaker';
  setToggle($('#layout-button'), speaker, { onTitle: 'Show everyone in a grid (L)', offTitle: 'Show the speaker large (L)' });
  $('#layout-button .tool-label').textContent = speaker ? 'Grid' : 'Speaker';
  setToggle($('#hand-button'), meeting.raisedHand, { onTitle: 'Lower your hand (H)', offTitle: 'Raise your hand (H)' });
}

// ---------------------------------------------------------------- invite

function inviteLink() {
  return `${location.origin}/${encodeURIComponent(meeting.roomId)}`;
}

async function copyInvite() {
  const ok = await copyText(inviteLink());
  toast(ok ? 'Link copied: send it to the people you want to invite' : `Copy this link: ${inviteLink()}`, ok ? 'ok' : 'warn', 6000);
}

function wireInvite() {
  $('#invite-button').addEventListener('click', copyInvite);
  $('#alone-copy').addEventListener('click', copyInvite);
  $('#alone-link').textContent = inviteLink();
}

function renderAloneHint() {
  const others = [...meeting.peers.values()].length;
  $('#alone-hint').hidden = others > 0 || meeting.state !== 'joined';
}

// ---------------------------------------------------------------- settings dialog

async function refreshDeviceLists() {
  const devices = await listDevices().catch(() => ({ audioinput: [], videoinput: [], audiooutput: [] }));
  fillSelect($('#settings-cam'), devices.videoinput, local.cam?.getSettings().deviceId || local.camDeviceId, 'No camera');
  fillSelect($('#settings-mic'), devices.audioinput, local.mic?.getSettings().deviceId || local.micDeviceId, 'No microphone');
  const speakers = canPickSpeaker() ? devices.audiooutput : [];
  fillSelect($('#settings-speaker'), speakers, local.speakerId, canPickSpeaker() ? 'System default' : 'Chosen by the system (this browser cannot switch)');
}

async function openSettings() {
  $('#settings-dialog').showModal(); // at once; the lists fill in when the browser answers
  await refreshDeviceLists();
}

function wireSettings() {
  $('#settings-cam').addEventListener('change', (ev) => useDevice('cam', ev.target.value)
    .then(renderSelf).catch((err) => toast(`Camera: ${err.message}`, 'error')));
  $('#settings-mic').addEventListener('change', (ev) => useDevice('mic', ev.target.value)
    .catch((err) => toast(`Microphone: ${err.message}`, 'error')));
  $('#settings-speaker').addEventListener('change', (ev) => {
    local.speakerId = ev.target.value;
    prefs.write({ speakerId: local.speakerId });
    for (const el of document.querySelectorAll('#audio-sink audio')) applySink(el);
  });
  $('#settings-close').addEventListener('click', () => $('#settings-dialog').close());
  navigator.mediaDevices?.addEventListener?.('devicechange', () => {
    if ($('#settings-dialog').open) refreshDeviceLists();
  });
}

function applySink(audio) {
  if (!canPickSpeaker()) return;
  audio.setSinkId(local.speakerId || '').catch((err) => toast(`Speaker: ${err.message}`, 'error'));
}

// ---------------------------------------------------------------- tiles and people

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
    stale: !!peer.stale,
    raisedHand: !!peer.raisedHand,
    moderator: (peer.roles || []).includes('moderator'),
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
    moderator: meeting.roles.includes('moderator'),
    raisedHand: meeting.raisedHand,
  };
  panel.currentName = meeting.displayName;
  panel.renderPeople([self, ...[...meeting.peers.values()].map(participantView)]);
  renderAloneHint();
}

/** Own tiles (camera and, while sharing, a note for the screen) and the toolbar. */
function renderSelf() {
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
    st.setPresenting(true);
  } else {
    grid.remove(SELF, 'screen');
  }
  speakerChanged();
  renderToolbar();
}

/** Re-renders a remote peer's tiles from its producers and consumers. */
function renderPeer(peerId) {
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
  tile.setMicOn(view.micOn || view.stale);
  tile.setStale(view.stale);
  grid.observe(tile, cam?.id || null);

  if (screen) {
    const st = grid.ensure({ peerId, source: 'screen', displayName: peer.displayName });
    st.setName(peer.displayName);
    st.setTrack(screen.track);
    st.setVideoVisible(!screen.paused);
    grid.observe(st, screen.id);
  } else if (!view.stale) {
    grid.remove(peerId, 'screen');
  }
  grid.get(peerId, 'screen')?.setStale(view.stale);
  speakerChanged();
}

function peerRemoved(peerId) {
  grid?.removePeer(peerId);
  renderList();
}

function speakerChanged() {
  if (!grid) return;
  const speaker = meeting.activeSpeakerId;
  for (const tile of grid.tiles.values()) {
    const id = tile.peerId === SELF ? meeting.peerId : tile.peerId;
    tile.setSpeaking(!!id && tile.source === 'webcam' && id === speaker);
  }
  const remote = speaker && speaker !== meeting.peerId ? meeting.peers.get(speaker) : null;
  // Speaker view keeps the last speaker on the stage through pauses between words.
  if (remote) grid.setSpeaker(grid.key(remote.id, 'webcam'));
  const cue = $('#speaker-cue');
  const name = speaker === meeting.peerId && speaker ? 'You' : remote?.displayName;
  cue.hidden = !name;
  $('.speaker-name', cue).textContent = name ? `${name} ${name === 'You' ? 'are' : 'is'} speaking` : '';
  renderList();
}

function consumerAdded(c) {
  if (c.kind !== 'audio') return;
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.dataset.consumerId = c.id;
  audio.dataset.peerId = c.peerId;
  audio.srcObject = new MediaStream([c.track]);
  $('#audio-sink').append(audio);
  if (local.speakerId) applySink(audio);
  audio.play().catch(() => askForAudioUnlock());
}

function consumerRemoved(c) {
  document.querySelector(`#audio-sink audio[data-consumer-id="${CSS.escape(c.id)}"]`)?.remove();
  if (!meeting.peers.has(c.peerId) && c.source === 'screen') grid?.remove(c.peerId, 'screen');
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

function connectionChanged(state) {
  const el = $('#connection-state');
  el.dataset.state = state;
  $('.label', el).textContent = CONNECTION_LABELS[state] || state;
  $('#meeting-screen').dataset.connection = state;
  renderAloneHint();
  if (state === 'reconnecting' || state === 'connected') renderList();
}

/** The left screen: why the meeting ended for us, and the one action that makes sense. */
function ended({ title, detail = '', retry }) {
  grid?.clear();
  $('#left-title').textContent = title;
  $('#left-detail').textContent = detail;
  const button = $('#rejoin-button');
  button.textContent = retry;
  button.onclick = () => {
    const q = new URLSearchParams({ displayName: meeting.displayName, autoJoin: '1' });
    location.assign(`/${encodeURIComponent(meeting.roomId)}?${q}`);
  };
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  showScreen('left');
  $('#left-title').focus();
}

/** Rows of the Stats tab: one per remote track. */
async function statsRows() {
  const stats = await inboundStats();
  return stats.map((s) => {
    const c = meeting.consumers.get(s.consumerId);
    const who = meeting.peers.get(s.peerId)?.displayName || s.peerId;
    return {
      consumerId: s.consumerId,
      who,
      source: s.source,
      layer: s.kind === 'video' ? ({ l: 'low', m: 'medium', h: 'high' }[c?.layer] || (c?.layer === null ? 'none' : 'single')) : '—',
      resolution: s.kind === 'video' && s.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : '—',
      fps: s.kind === 'video' ? String(Math.round(s.framesPerSecond || 0)) : '—',
      lost: String(s.packetsLost),
    };
  });
}

Object.assign(meeting, {
  toasts: toastHistory,
  toggleMic,
  toggleCam,
  setMic,
  setCam,
  startScreenShare,
  stopScreenShare,
});
Object.defineProperty(meeting, 'layout', {
  get: () => (grid ? { mode: grid.mode, main: grid.mainKey(), pinned: grid.pinned } : null),
});
