// Owns the client's state that several modules read: the meeting as the server describes it
// (peers, consumers, active speaker), the local capture state, and `window.meeting`, the
// object tests and curious users inspect. Modules change it; none of them owns the DOM here.

/** Local capture state; survives reconnects. */
export const local = {
  mic: null, // MediaStreamTrack while the mic is on
  cam: null,
  screen: null,
  micOn: false,
  camOn: false,
  micDeviceId: '',
  camDeviceId: '',
  speakerId: '', // audio output for remote sound ('' = system default)
};

/** The meeting. Methods are attached by session.js and local.js. */
export const meeting = {
  state: 'idle', // 'idle' | 'joining' | 'lobby' | 'joined' | 'reconnecting' | 'closed'
  roomId: '',
  peerId: null,
  displayName: '',
  token: '', // room access token from ?token= (kept in sessionStorage for reloads, never in the URL)
  peers: new Map(), // peerId -> {id, displayName, producers: Map(producerId -> Producer), roles, raisedHand, stale}
  consumers: new Map(), // consumerId -> {id, producerId, peerId, kind, source, mid, paused, track, layer}
  activeSpeakerId: null,
  inLobby: false, // waiting in the lobby until a moderator admits us
  roles: [], // ours, as the server says
  permissions: new Set(), // ours: what the controls may offer
  locked: false,
  raisedHand: false, // our own hand
  blocked: new Set(), // 'audio' | 'video' | 'screen' a moderator turned off (until mediaAllowed)
  lobbyPeers: [], // [{id, displayName}] waiting, for those who may admit
  chat: [], // [{peerId, displayName, text, time}]
  notice: '',
  log: [], // last notifications, for debugging
  get micOn() { return local.micOn; },
  get camOn() { return local.camOn; },
  get sharing() { return !!local.screen; },
};

window.meeting = meeting;
