// Owns the meeting session against the server: connect and join, the recv side (peers,
// consumers, notifications), consumer size preferences, reconnect with backoff, and leave.
// It keeps state.js up to date and tells the view what changed through the `view` hooks it
// is started with; it builds no DOM itself.

import { Signaling, Backoff, roomSocketUrl, PROTOCOL_VERSION } from './signaling.js';
import { SendTransport, RecvTransport } from './media.js';
import { meeting } from './state.js';
import { attach, localQueue, syncProducers, stopAllTracks } from './local.js';

/** Join errors after which trying again at once cannot help. */
const FATAL_JOIN_ERRORS = new Set(['unsupportedVersion', 'roomFull', 'badRequest', 'unauthorized']);

let view = null; // hooks into the meeting screen (meeting-view.js), set by startSession
let session = null; // {sig, send, recv, pendingOffers, joined, dead}
let reconnectTimer = null;
let joinedOnce = false;
const backoff = new Backoff();
const prefTimers = new Map(); // consumerId -> timeout of a pending setConsumerPreferences
const prefSent = new Map(); // consumerId -> "WxH" last sent

export const currentSession = () => session;

/** Starts the session: the view must already show the meeting screen. */
export function startSession(hooks) {
  view = hooks;
  attach({
    currentSession,
    onBroken: (s, why) => fail(s, why),
    changed: () => view.selfChanged(),
    toast: (text, kind) => view.toast(text, kind),
  });
  window.addEventListener('pagehide', () => {
    // Closing the socket is how the server learns we are gone; no rejoin, no pause requests.
    meeting.state = 'closed';
    clearTimeout(reconnectTimer);
    if (session && !session.dead) session.sig?.close(1001, 'page closed');
  });
  connect();
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const s = { sig: null, send: null, recv: null, pendingOffers: [], joined: false, dead: false };
  session = s;
  meeting.state = joinedOnce ? 'reconnecting' : 'joining';
  view.connectionChanged(joinedOnce ? 'reconnecting' : 'connecting');
  runSession(s).catch((err) => {
    if (s.dead || session !== s || meeting.state === 'closed') return;
    if (err?.code && FATAL_JOIN_ERRORS.has(err.code) && !s.joined) {
      endMeeting(joinError(err));
      return;
    }
    fail(s, err?.message || String(err));
  });
}

/** What to tell a person whose join was refused. */
function joinError(err) {
  if (err.code === 'roomFull') {
    return {
      title: 'This meeting is full',
      detail: 'It already has as many participants as the server allows. Try again when someone has left.',
      retry: 'Try again',
    };
  }
  if (err.code === 'unauthorized') {
    return {
      title: 'This meeting needs a valid invitation link',
      detail: `${err.message.replace(/^unauthorized:\s*/, '')}. Open the link you were invited with, or ask the organiser for a new one.`,
      retry: 'Try again',
    };
  }
  if (err.code === 'unsupportedVersion') {
    return { title: 'This page is out of date', detail: 'The server was updated. Reload the page to join.', retry: 'Reload' };
  }
  return { title: 'Could not join the meeting', detail: `The server refused to let you in (${err.message}).`, retry: 'Try again' };
}

async function runSession(s) {
  s.sig = new Signaling(roomSocketUrl(meeting.roomId));
  s.sig.onNotification = (method, data) => {
    if (session === s && !s.dead) onNotification(s, method, data);
  };
  s.sig.onClose = ({ expected, code }) => {
    if (!expected) fail(s, `signaling socket closed (${code})`);
  };
  await s.sig.open();
  if (s.dead) return;

  const join = { displayName: meeting.displayName, protocolVersion: PROTOCOL_VERSION };
  if (meeting.token) join.token = meeting.token;
  let res = await s.sig.request('join', join);
  if (s.dead) return;
  meeting.blocked.clear(); // a block is of the peer the server had: a new join starts free
  s.joined = true;
  meeting.peerId = res.peerId;
  applyAccess(res);
  if (res.lobby) {
    // Locked room, or no moderator yet: wait until a moderator admits us (`admitted` carries
    // the join response) or refuses (`denied`). Nothing is published meanwhile.
    meeting.state = 'lobby';
    meeting.inLobby = true;
    view.connectionChanged('lobby');
    view.lobbyChanged();
    res = await new Promise((resolve) => { s.admit = resolve; });
    if (s.dead) return;
    meeting.inLobby = false;
    meeting.peerId = res.peerId || meeting.peerId;
    applyAccess(res);
    view.lobbyChanged();
    view.toast('A moderator let you in', 'ok');
  }
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
  // Participants kept greyed through the outage give way to the room as it is now.
  for (const peer of [...meeting.peers.values()]) {
    if (peer.stale) {
      meeting.peers.delete(peer.id);
      view.peerRemoved(peer.id);
    }
  }
  for (const peer of res.peers || []) addPeer(peer);
  s.send = new SendTransport({ iceServers, request, onFailed: (why) => fail(s, why) });

  meeting.state = 'joined';
  await localQueue.run(() => syncProducers(s));
  if (s.dead) return;
  const wasReconnecting = joinedOnce;
  joinedOnce = true;
  backoff.reset();
  view.connectionChanged('connected');
  view.selfChanged();
  if (wasReconnecting) view.toast('Reconnected', 'ok');
}

/** Roles, permissions, lock and chat history from a join response (or `admitted`). */
function applyAccess(res) {
  meeting.roles = Array.isArray(res.roles) ? res.roles : [];
  meeting.permissions = new Set(Array.isArray(res.permissions) ? res.permissions : []);
  meeting.locked = !!res.locked;
  if (Array.isArray(res.chatHistory)) meeting.chat = res.chatHistory.slice(-500);
  if (!meeting.permissions.has('promotePeer')) meeting.lobbyPeers = [];
  view.accessChanged();
  view.chatChanged();
}

/** Tears the session down and schedules a rejoin with a growing delay. */
function fail(s, why) {
  if (s.dead || session !== s || meeting.state === 'closed') return;
  console.warn(`[meeting] reconnecting: ${why}`);
  teardown(s, { keepPeers: true });
  meeting.state = 'reconnecting';
  view.connectionChanged('reconnecting');
  reconnectTimer = setTimeout(connect, backoff.next());
}

/**
 * Closes the session's connections. With keepPeers, the participants stay listed (greyed,
 * `stale`) until the next join says who is still there: an outage is not everyone leaving.
 */
function teardown(s, { keepPeers = false } = {}) {
  s.dead = true;
  s.sig?.close();
  s.send?.close();
  s.recv?.close();
  for (const c of [...meeting.consumers.values()]) consumerRemoved(c);
  meeting.consumers.clear();
  meeting.activeSpeakerId = null;
  if (keepPeers) {
    for (const peer of meeting.peers.values()) {
      peer.stale = true;
      view.peerChanged(peer.id);
    }
  } else {
    for (const id of [...meeting.peers.keys()]) view.peerRemoved(id);
    meeting.peers.clear();
  }
  view.speakerChanged();
  view.selfChanged();
}

function endMeeting(outcome) {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  meeting.state = 'closed';
  if (session) teardown(session);
  session = null;
  stopAllTracks();
  view.connectionChanged('closed');
  view.ended(outcome);
}

/** Leaves the meeting for good (the Leave button, after its confirmation). */
export async function leave() {
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
  endMeeting({ title: 'You left the meeting', detail: '', retry: 'Rejoin' });
}

export async function changeDisplayName(name) {
  const displayName = String(name || '').trim().slice(0, 64);
  if (!displayName) return;
  meeting.displayName = displayName;
  view.selfChanged();
  const s = session;
  if (s && !s.dead && (meeting.state === 'joined' || meeting.state === 'lobby')) await s.sig.request('changeDisplayName', { displayName });
}

// ---------------------------------------------------------------- notifications

function onNotification(s, method, data) {
  meeting.log.push({ t: Date.now(), method, data: method === 'recvOffer' ? { consumers: data.consumers } : data });
  if (meeting.log.length > 300) meeting.log.splice(0, 100);
  switch (method) {
    case 'peerJoined':
      addPeer(data.peer);
      view.toast(`${data.peer.displayName} joined`);
      break;
    case 'peerLeft':
      removePeer(data.peerId);
      break;
    case 'peerUpdated': {
      if (data.peerId === meeting.peerId) {
        if (data.displayName) meeting.displayName = data.displayName;
        if (typeof data.raisedHand === 'boolean') {
          if (meeting.raisedHand && !data.raisedHand) view.toast('A moderator lowered your hand');
          meeting.raisedHand = data.raisedHand;
        }
        if (Array.isArray(data.roles)) meeting.roles = data.roles;
        view.selfChanged();
      }
      const peer = meeting.peers.get(data.peerId);
      if (peer) {
        if (data.displayName) peer.displayName = data.displayName;
        if (Array.isArray(data.roles)) peer.roles = data.roles;
        if (typeof data.raisedHand === 'boolean') peer.raisedHand = data.raisedHand;
        view.peerChanged(peer.id);
      }
      break;
    }
    case 'chatMessage':
      meeting.chat.push(data);
      if (meeting.chat.length > 500) meeting.chat.splice(0, meeting.chat.length - 500);
      view.chatChanged(data);
      break;
    case 'chatCleared':
      meeting.chat = [];
      view.chatChanged();
      view.toast('A moderator cleared the chat');
      break;
    case 'roomLocked':
    case 'roomUnlocked':
      meeting.locked = method === 'roomLocked';
      view.accessChanged();
      view.toast(meeting.locked ? 'The meeting is locked: newcomers wait in the lobby' : 'The meeting is unlocked');
      break;
    case 'lobbyPeers': {
      const before = new Set(meeting.lobbyPeers.map((p) => p.id));
      meeting.lobbyPeers = Array.isArray(data.peers) ? data.peers : [];
      view.accessChanged();
      const arrived = meeting.lobbyPeers.filter((p) => !before.has(p.id));
      if (arrived.length) view.toast(`${arrived.map((p) => p.displayName).join(', ')} ${arrived.length > 1 ? 'are' : 'is'} waiting to join`, 'warn', 6000);
      break;
    }
    case 'permissionsChanged':
      meeting.roles = Array.isArray(data.roles) ? data.roles : [];
      meeting.permissions = new Set(Array.isArray(data.permissions) ? data.permissions : []);
      view.accessChanged();
      break;
    case 'admitted':
      s.admit?.(data);
      break;
    case 'denied':
      endMeeting({ title: 'You were not let in', detail: 'A moderator declined your request to join this meeting.', retry: 'Ask again' });
      break;
    case 'kicked':
      endMeeting({
        title: 'You were removed from the meeting',
        detail: data.reason ? `A moderator removed you: ${data.reason}.` : 'A moderator removed you.',
        retry: 'Rejoin',
      });
      break;
    case 'meetingClosed':
      endMeeting({ title: 'The meeting has ended', detail: 'A moderator ended the meeting for everyone.', retry: 'Start it again' });
      break;
    case 'mediaBlocked':
    case 'mediaAllowed':
      if (method === 'mediaBlocked') meeting.blocked.add(data.kind);
      else meeting.blocked.delete(data.kind);
      view.mediaBlocked(data.kind, method === 'mediaBlocked');
      break;
    case 'producerAdded': {
      const p = data.producer;
      const peer = meeting.peers.get(p.peerId);
      if (peer) {
        peer.producers.set(p.id, { ...p });
        view.peerChanged(peer.id);
      }
      break;
    }
    case 'producerClosed': {
      const peer = meeting.peers.get(data.peerId);
      peer?.producers.delete(data.producerId);
      for (const c of [...meeting.consumers.values()]) {
        if (c.producerId === data.producerId) s.recv?.removeConsumer(c.id);
      }
      if (peer) view.peerChanged(peer.id);
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
      if (peer) view.peerChanged(peer.id);
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
      if (c) c.layer = data.layer;
      break;
    }
    case 'activeSpeaker':
      meeting.activeSpeakerId = data.peerId || null;
      view.speakerChanged();
      break;
    case 'transportState':
      console.debug(`[meeting] server ${data.direction} transport ${data.state}`);
      break;
    case 'reconnect':
      view.toast(`Reconnecting: ${data.reason || 'asked by the server'}`, 'warn');
      fail(s, `server asked to reconnect (${data.reason || ''})`);
      break;
    case 'error':
      console.error('[meeting] server error', data);
      view.toast(`Server: ${data.message || data.code}`, 'error');
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
    existing.stale = false;
    for (const [id, p] of producers) existing.producers.set(id, p);
  } else {
    meeting.peers.set(peer.id, { id: peer.id, displayName: peer.displayName, producers, roles: [], raisedHand: false, stale: false });
  }
  const entry = meeting.peers.get(peer.id);
  if (Array.isArray(peer.roles)) entry.roles = peer.roles;
  if (typeof peer.raisedHand === 'boolean') entry.raisedHand = peer.raisedHand;
  view.peerChanged(peer.id);
}

function removePeer(peerId) {
  const peer = meeting.peers.get(peerId);
  for (const c of [...meeting.consumers.values()]) {
    if (c.peerId === peerId) session?.recv?.removeConsumer(c.id);
  }
  meeting.peers.delete(peerId);
  if (meeting.activeSpeakerId === peerId) {
    meeting.activeSpeakerId = null;
    view.speakerChanged();
  }
  view.peerRemoved(peerId);
  if (peer) view.toast(`${peer.displayName} left`);
}

function consumerAdded(c) {
  meeting.consumers.set(c.id, c);
  if (!meeting.peers.has(c.peerId)) {
    // A consumer can name a peer we have not heard of yet (shouldn't happen): show it anyway.
    meeting.peers.set(c.peerId, { id: c.peerId, displayName: '…', producers: new Map(), stale: false });
  }
  view.consumerAdded(c);
  view.peerChanged(c.peerId);
}

function consumerRemoved(c) {
  meeting.consumers.delete(c.id);
  clearTimeout(prefTimers.get(c.id));
  prefTimers.delete(c.id);
  prefSent.delete(c.id);
  view.consumerRemoved(c);
  if (meeting.peers.has(c.peerId)) view.peerChanged(c.peerId);
}

/**
 * The displayed size of a consumer's video changed: tell the server (debounced) so it can
 * forward a smaller simulcast layer to a small tile. 0×0 means not visible.
 */
export function setConsumerSize(consumerId, width, height) {
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

/** inbound-rtp statistics of every consumer (window.meeting.inboundStats, the stats view). */
export async function inboundStats() {
  const recv = session?.recv;
  return recv ? recv.inboundStats() : [];
}

// ---------------------------------------------------------------- meeting requests

/** A meeting request (chat, lobby, moderation); rejects when not in the meeting. */
function meetingRequest(method, data = {}) {
  const s = session;
  if (!s || s.dead || !s.joined || meeting.state !== 'joined') return Promise.reject(new Error('not connected to the meeting'));
  return s.sig.request(method, data);
}

export const sendChat = (text) => meetingRequest('chatMessage', { text });
export const clearChat = () => meetingRequest('clearChat');
export const admitPeer = (peerId) => meetingRequest('promotePeer', { peerId });
export const admitAll = () => meetingRequest('promoteAllPeers');
export const denyPeer = (peerId) => meetingRequest('denyPeer', { peerId });
export const kickPeer = (peerId) => meetingRequest('kickPeer', { peerId });
export const setLocked = (locked) => meetingRequest(locked ? 'lockRoom' : 'unlockRoom');
export const closeMeeting = () => meetingRequest('closeMeeting');
/** mutePeer, stopPeerVideo, stopPeerScreenShare, lowerHand (with a peer), muteAll, stopAllVideo. */
export const moderate = (method, peerId) => meetingRequest(method, peerId ? { peerId } : {});
export async function raiseHand(raised) {
  await meetingRequest('raiseHand', { raised });
  meeting.raisedHand = raised;
  view.selfChanged();
}

// Getters must stay getters on window.meeting (Object.assign would copy their current value).
Object.defineProperties(meeting, {
  producers: {
    get() {
      const send = session?.send;
      return send ? [...send.producers.values()].map(({ id, mid, kind, source, paused }) => ({ id, mid, kind, source, paused })) : [];
    },
  },
  sendPc: { get: () => session?.send?.pc || null },
  recvPc: { get: () => session?.recv?.pc || null },
});
Object.assign(meeting, { inboundStats, leave, changeDisplayName, sendChat, clearChat, admitPeer, admitAll, denyPeer, kickPeer, setLocked, closeMeeting, moderate, raiseHand });
