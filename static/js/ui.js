// Owns the DOM: screens, video tiles and grid layout, participant list, toolbar buttons, notices and toasts.

export const $ = (sel, root = document) => root.querySelector(sel);

export function showScreen(name) {
  for (const el of document.querySelectorAll('.screen')) el.hidden = el.id !== `${name}-screen`;
}

const STATE_LABELS = {
  connecting: 'Connecting',
  connected: 'Connected',
  reconnecting: 'Reconnecting',
  closed: 'Disconnected',
};

export function setConnectionState(state) {
  const el = $('#connection-state');
  if (!el) return;
  el.dataset.state = state;
  $('.label', el).textContent = STATE_LABELS[state] || state;
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

/** A stable hue per name so avatars are distinguishable. */
function hue(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

const MIC_OFF_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M19 11h-2c0 .74-.16 1.43-.43 2.05l1.48 1.48A6.96 6.96 0 0 0 19 11zm-4 .16V5a3 3 0 0 0-5.94-.6L15 10.34v.82zM4.27 3 3 4.27l6 6V11a3 3 0 0 0 4.47 2.6l1.5 1.5A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.92V21h2v-3.08a6.9 6.9 0 0 0 2.98-1.1L19.73 21 21 19.73 4.27 3z"/></svg>';

/** One video tile: a peer's camera (or avatar) or a screen share. */
export class Tile {
  constructor({ peerId, source, self = false, displayName = '' }) {
    this.peerId = peerId;
    this.source = source;
    this.self = self;
    this.track = null;
    this.videoVisible = false;
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.peerId = peerId;
    el.dataset.source = source;
    if (self) el.dataset.self = 'true';
    el.innerHTML = `
      <video muted playsinline autoplay></video>
      <div class="avatar"><span class="initials"></span></div>
      <div class="caption"><span class="mic-off" hidden>${MIC_OFF_SVG}</span><span class="name"></span></div>
      <span class="layer" hidden></span>`;
    this.el = el;
    this.video = $('video', el);
    if (self && source === 'webcam') this.video.classList.add('mirror');
    this.setName(displayName);
    this._applyVisibility();
  }

  setName(displayName) {
    this.displayName = displayName;
    const suffix = this.self ? ' (you)' : '';
    const label = this.source === 'screen' ? `${displayName}${suffix} — screen` : `${displayName}${suffix}`;
    $('.name', this.el).textContent = label;
    $('.initials', this.el).textContent = initials(displayName);
    $('.avatar', this.el).style.setProperty('--hue', hue(displayName));
    this.el.title = label;
  }

  setTrack(track) {
    if (this.track === track) return;
    if (this.track) {
      this.track.removeEventListener('mute', this._onMute);
      this.track.removeEventListener('unmute', this._onMute);
    }
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) {
      // A remote track stays muted until media arrives: show the avatar meanwhile.
      this._onMute ||= () => this._applyVisibility();
      track.addEventListener('mute', this._onMute);
      track.addEventListener('unmute', this._onMute);
      this.video.play().catch(() => {});
    }
    this._applyVisibility();
  }

  /** false shows the avatar instead of the video (camera paused or absent). */
  setVideoVisible(visible) {
    this.videoVisible = visible;
    this._applyVisibility();
  }

  _applyVisibility() {
    const show = !!this.track && this.videoVisible && !this.track.muted;
    this.el.classList.toggle('video-off', !show);
  }

  setMicOn(on) {
    $('.mic-off', this.el).hidden = on;
  }

  setSpeaking(speaking) {
    this.el.classList.toggle('speaking', speaking);
  }

  setLayer(layer) {
    const el = $('.layer', this.el);
    el.hidden = !layer;
    el.textContent = layer ? layer.toUpperCase() : '';
    el.title = layer ? `simulcast layer ${layer}` : '';
  }

  remove() {
    this.setTrack(null);
    this.el.remove();
  }
}

/** The responsive grid of tiles. Keys are `${peerId}:${source}`. */
export class Grid {
  constructor(el) {
    this.el = el;
    this.tiles = new Map();
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(el);
  }

  key(peerId, source) {
    return `${peerId}:${source}`;
  }

  get(peerId, source) {
    return this.tiles.get(this.key(peerId, source));
  }

  ensure({ peerId, source, self = false, displayName }) {
    let tile = this.get(peerId, source);
    if (!tile) {
      tile = new Tile({ peerId, source, self, displayName });
      this.tiles.set(this.key(peerId, source), tile);
      this._insert(tile);
      this.layout();
    }
    return tile;
  }

  /** Screen shares first, then own tile, then others in join order. */
  _insert(tile) {
    if (tile.source === 'screen') {
      this.el.prepend(tile.el);
    } else if (tile.self) {
      const firstCam = [...this.el.children].find((c) => c.dataset.source !== 'screen');
      this.el.insertBefore(tile.el, firstCam || null);
    } else {
      this.el.append(tile.el);
    }
  }

  remove(peerId, source) {
    const k = this.key(peerId, source);
    const tile = this.tiles.get(k);
    if (!tile) return;
    tile.remove();
    this.tiles.delete(k);
    this.layout();
  }

  removePeer(peerId) {
    for (const tile of [...this.tiles.values()]) {
      if (tile.peerId === peerId) this.remove(tile.peerId, tile.source);
    }
  }

  removeRemote() {
    for (const tile of [...this.tiles.values()]) {
      if (!tile.self) this.remove(tile.peerId, tile.source);
    }
  }

  clear() {
    for (const tile of [...this.tiles.values()]) this.remove(tile.peerId, tile.source);
  }

  /** Picks the column count that makes 16:9 tiles as large as possible. */
  layout() {
    const n = this.tiles.size;
    const gap = 8;
    const width = this.el.clientWidth - 2 * gap;
    const height = this.el.clientHeight - 2 * gap;
    if (!n || width <= 0 || height <= 0) return;
    let best = { cols: 1, tileW: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const maxW = (width - gap * (cols - 1)) / cols;
      const maxH = (height - gap * (rows - 1)) / rows;
      const tileW = Math.min(maxW, (maxH * 16) / 9);
      if (tileW > best.tileW) best = { cols, tileW };
    }
    this.el.style.setProperty('--cols', best.cols);
    this.el.style.setProperty('--tile-w', `${Math.floor(best.tileW)}px`);
  }
}

/**
 * participants: [{id, displayName, self, micOn, camOn, sharing, speaking}]
 * onRename(name) is called when the user edits their own name.
 */
export function renderParticipants(participants, { onRename } = {}) {
  const list = $('#participant-list');
  $('#participant-count').textContent = String(participants.length);
  list.replaceChildren();
  for (const p of participants) {
    const li = document.createElement('li');
    li.dataset.peerId = p.id;
    li.classList.toggle('speaking', !!p.speaking);
    const avatar = document.createElement('span');
    avatar.className = 'mini-avatar';
    avatar.style.setProperty('--hue', hue(p.displayName));
    avatar.textContent = initials(p.displayName);
    const name = document.createElement('span');
    name.className = 'pname';
    name.textContent = p.self ? `${p.displayName} (you)` : p.displayName;
    if (p.self && onRename) {
      name.title = 'Click to change your name';
      name.classList.add('editable');
      name.addEventListener('click', () => {
        const next = prompt('Your name', p.displayName);
        if (next && next.trim() && next.trim() !== p.displayName) onRename(next.trim().slice(0, 64));
      });
    }
    const state = document.createElement('span');
    state.className = 'pstate';
    state.innerHTML = `
      <span class="state-mic" data-on="${!!p.micOn}" title="${p.micOn ? 'Microphone on' : 'Microphone off'}">${p.micOn ? 'mic' : 'mic off'}</span>
      <span class="state-cam" data-on="${!!p.camOn}" title="${p.camOn ? 'Camera on' : 'Camera off'}">${p.camOn ? 'cam' : 'cam off'}</span>
      ${p.sharing ? '<span class="state-screen" title="Sharing the screen">screen</span>' : ''}`;
    li.append(avatar, name, state);
    list.append(li);
  }
}

export function setToggle(button, on, { onTitle, offTitle } = {}) {
  button.dataset.on = String(on);
  button.setAttribute('aria-pressed', String(on));
  if (onTitle && offTitle) button.title = on ? onTitle : offTitle;
}

export function setNotice(el, text, kind = 'info') {
  el.hidden = !text;
  el.textContent = text || '';
  el.dataset.kind = kind;
}

export function toast(text, kind = 'info', ms = 4000) {
  const box = $('#toasts');
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = text;
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

export function fillSelect(select, devices, selectedId, emptyLabel) {
  select.replaceChildren();
  if (!devices.length) {
    const opt = new Option(emptyLabel, '');
    select.append(opt);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  devices.forEach((d, i) => {
    const label = d.label || `${d.kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
    select.append(new Option(label, d.deviceId, false, d.deviceId === selectedId));
  });
}
