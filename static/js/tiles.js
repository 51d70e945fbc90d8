// Owns the video area: one tile per camera or screen, and where tiles go. Two layouts: a grid
// of equal tiles, and a stage (one large tile, the others in a strip beside or below it) used
// for a shared screen, a pinned tile and the speaker view. Tiles are placed with absolute
// positions computed here, so the layout is exact and testable.

import { $, initials, hue } from './ui.js';

const MIC_OFF_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M19 11h-2c0 .74-.16 1.43-.43 2.05l1.48 1.48A6.96 6.96 0 0 0 19 11zm-4 .16V5a3 3 0 0 0-5.94-.6L15 10.34v.82zM4.27 3 3 4.27l6 6V11a3 3 0 0 0 4.47 2.6l1.5 1.5A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.92V21h2v-3.08a6.9 6.9 0 0 0 2.98-1.1L19.73 21 21 19.73 4.27 3z"/></svg>';
const PIN_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M16 3v2h-1v6l3 3v2h-5v5l-1 1-1-1v-5H6v-2l3-3V5H8V3h8z"/></svg>';
const FULLSCREEN_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 5h5v2H7v3H5V5zm9 0h5v5h-2V7h-3V5zM5 14h2v3h3v2H5v-5zm12 3v-3h2v5h-5v-2h3z"/></svg>';
const SPEAKING_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z"/></svg>';

/** One tile: a peer's camera (or avatar) or a screen share. */
export class Tile {
  constructor({ peerId, source, self = false, displayName = '' }) {
    this.peerId = peerId;
    this.source = source;
    this.self = self;
    this.track = null;
    this.videoVisible = false;
    this.consumerId = null;
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.peerId = peerId;
    el.dataset.source = source;
    if (self) el.dataset.self = 'true';
    el.innerHTML = `
      <video muted playsinline autoplay></video>
      <div class="avatar"><span class="initials"></span></div>
      <div class="presenting" hidden>You are presenting your screen</div>
      <div class="ring" aria-hidden="true"></div>
      <div class="caption"><span class="speaking-icon" hidden>${SPEAKING_SVG}</span><span class="mic-off" hidden>${MIC_OFF_SVG}<span class="sr-only">microphone off</span></span><span class="name"></span></div>
      <div class="tile-actions">
        <button type="button" class="tile-pin" aria-pressed="false">${PIN_SVG}</button>
        <button type="button" class="tile-fullscreen">${FULLSCREEN_SVG}</button>
      </div>`;
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
    this.el.setAttribute('aria-label', label);
    $('.tile-pin', this.el).setAttribute('aria-label', `Pin ${label}`);
    $('.tile-pin', this.el).title = `Pin ${label}`;
    $('.tile-fullscreen', this.el).setAttribute('aria-label', `Show ${label} full screen`);
    $('.tile-fullscreen', this.el).title = 'Full screen';
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

  /** Own screen share: a note instead of the video, so the sharer never sees a mirror in a mirror. */
  setPresenting(presenting) {
    $('.presenting', this.el).hidden = !presenting;
    this.el.classList.toggle('presenting-self', presenting);
  }

  setMicOn(on) {
    $('.mic-off', this.el).hidden = on;
  }

  setSpeaking(speaking) {
    this.el.classList.toggle('speaking', speaking);
    $('.speaking-icon', this.el).hidden = !speaking;
  }

  /** Greyed while the connection is being re-established: last known, not live. */
  setStale(stale) {
    this.el.classList.toggle('stale', stale);
  }

  remove() {
    this.setTrack(null);
    this.el.remove();
  }
}

/**
 * The video area. Keys are `${peerId}:${source}`. `onVideoSize(consumerId, w, h)` reports the
 * displayed size of remote videos (device pixels) for the server's layer choice.
 */
export class Grid {
  constructor(el, { onVideoSize = () => {} } = {}) {
    this.el = el;
    this.tiles = new Map();
    this.order = []; // keys in insertion order; screens first when laid out
    this.mode = 'grid'; // 'grid' | 'speaker'
    this.pinned = null; // key of the pinned tile
    this.speakerKey = null; // key of the active speaker's camera tile
    this.onVideoSize = onVideoSize;
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(el);
    this.sizeObserver = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const id = entry.target.dataset.consumerId;
        if (!id) continue;
        const box = entry.devicePixelContentBoxSize?.[0];
        const w = box ? box.inlineSize : entry.contentRect.width * devicePixelRatio;
        const h = box ? box.blockSize : entry.contentRect.height * devicePixelRatio;
        this.onVideoSize(id, Math.round(w), Math.round(h));
      }
    });
    el.addEventListener('click', (ev) => {
      const button = ev.target.closest('button');
      const tileEl = ev.target.closest('.tile');
      if (!button || !tileEl) return;
      const tile = [...this.tiles.values()].find((t) => t.el === tileEl);
      if (!tile) return;
      if (button.classList.contains('tile-pin')) this.togglePin(this.key(tile.peerId, tile.source));
      if (button.classList.contains('tile-fullscreen')) this.fullscreen(tile);
    });
    el.addEventListener('dblclick', (ev) => {
      const tile = [...this.tiles.values()].find((t) => t.el === ev.target.closest('.tile'));
      if (tile) this.fullscreen(tile);
    });
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
      const k = this.key(peerId, source);
      this.tiles.set(k, tile);
      this.order.push(k);
      this.el.append(tile.el);
      this.layout();
    }
    return tile;
  }

  /** Reports the displayed size of `consumerId`'s video from now on. */
  observe(tile, consumerId) {
    if (tile.consumerId === consumerId) return;
    this.sizeObserver.unobserve(tile.video);
    tile.consumerId = consumerId;
    tile.video.dataset.consumerId = consumerId || '';
    if (consumerId) this.sizeObserver.observe(tile.video); // reports the current size at once
  }

  remove(peerId, source) {
    const k = this.key(peerId, source);
    const tile = this.tiles.get(k);
    if (!tile) return;
    this.sizeObserver.unobserve(tile.video);
    if (document.fullscreenElement === tile.el) document.exitFullscreen().catch(() => {});
    tile.remove();
    this.tiles.delete(k);
    this.order = this.order.filter((x) => x !== k);
    if (this.pinned === k) this.pinned = null;
    this.layout();
  }

  removePeer(peerId) {
    for (const tile of [...this.tiles.values()]) {
      if (tile.peerId === peerId) this.remove(tile.peerId, tile.source);
    }
  }

  clear() {
    for (const tile of [...this.tiles.values()]) this.remove(tile.peerId, tile.source);
  }

  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    this.layout();
  }

  setMode(mode) {
    this.mode = mode;
    this.layout();
  }

  setSpeaker(key) {
    this.speakerKey = key;
    if (this.mode === 'speaker') this.layout();
  }

  fullscreen(tile) {
    if (document.fullscreenElement === tile.el) {
      document.exitFullscreen().catch(() => {});
    } else {
      tile.el.requestFullscreen?.().catch(() => {});
    }
  }

  /** The tile shown large, or null for the plain grid. */
  mainKey() {
    if (this.pinned && this.tiles.has(this.pinned)) return this.pinned;
    // A remote screen share takes the stage; one's own share is a small note in the strip.
    const screen = this.order.find((k) => this.tiles.get(k).source === 'screen' && !this.tiles.get(k).self);
    if (screen) return screen;
    if (this.mode === 'speaker' && this.tiles.size > 1) {
      if (this.speakerKey && this.tiles.has(this.speakerKey) && !this.tiles.get(this.speakerKey).self) return this.speakerKey;
      return this.order.find((k) => !this.tiles.get(k).self) || null;
    }
    return null;
  }

  /** Places every tile: the stage layout when there is a main tile, else the best grid. */
  layout() {
    const gap = 8;
    const W = this.el.clientWidth - 2 * gap;
    const H = this.el.clientHeight - 2 * gap;
    const keys = [...this.order].sort((a, b) => rank(this.tiles.get(a)) - rank(this.tiles.get(b)));
    const main = this.tiles.size > 1 ? this.mainKey() : null;
    this.el.dataset.layout = main ? 'stage' : 'grid';
    for (const [k, t] of this.tiles) {
      t.el.classList.toggle('main', k === main);
      const pin = $('.tile-pin', t.el);
      pin.setAttribute('aria-pressed', String(this.pinned === k));
    }
    if (!keys.length || W <= 0 || H <= 0) return;
    const place = (k, x, y, w, h) => {
      const s = this.tiles.get(k).el.style;
      s.left = `${Math.round(gap + x)}px`;
      s.top = `${Math.round(gap + y)}px`;
      s.width = `${Math.max(0, Math.floor(w))}px`;
      s.height = `${Math.max(0, Math.floor(h))}px`;
    };
    if (!main) {
      const n = keys.length;
      let best = { cols: 1, tileW: 0 };
      for (let cols = 1; cols <= n; cols++) {
        const rows = Math.ceil(n / cols);
        const tileW = Math.min((W - gap * (cols - 1)) / cols, (((H - gap * (rows - 1)) / rows) * 16) / 9);
        if (tileW > best.tileW) best = { cols, tileW };
      }
      const { cols, tileW } = best;
      const tileH = (tileW * 9) / 16;
      const rows = Math.ceil(n / cols);
      const top = (H - (rows * tileH + (rows - 1) * gap)) / 2;
      keys.forEach((k, i) => {
        const row = Math.floor(i / cols);
        const inRow = Math.min(cols, n - row * cols);
        const left = (W - (inRow * tileW + (inRow - 1) * gap)) / 2;
        place(k, left + (i % cols) * (tileW + gap), top + row * (tileH + gap), tileW, tileH);
      });
      return;
    }
    const strip = keys.filter((k) => k !== main);
    const n = strip.length;
    if (W >= H) {
      // Landscape: the strip is a column on the right.
      const stripW = Math.min(280, Math.max(140, W * 0.22));
      const h = Math.min((stripW * 9) / 16, (H - gap * (n - 1)) / n);
      const w = (h * 16) / 9;
      const top = (H - (n * h + (n - 1) * gap)) / 2;
      place(main, 0, 0, W - stripW - gap, H);
      strip.forEach((k, i) => place(k, W - stripW + (stripW - w) / 2, top + i * (h + gap), w, h));
    } else {
      // Portrait (phones): the strip is a row at the bottom.
      const stripH = Math.min(150, Math.max(80, H * 0.22));
      const w = Math.min((stripH * 16) / 9, (W - gap * (n - 1)) / n);
      const h = (w * 9) / 16;
      const left = (W - (n * w + (n - 1) * gap)) / 2;
      place(main, 0, 0, W, H - stripH - gap);
      strip.forEach((k, i) => place(k, left + i * (w + gap), H - stripH + (stripH - h) / 2, w, h));
    }
  }
}

/** Layout order: screens, then own camera, then the others in join order (stable sort). */
function rank(tile) {
  if (tile.source === 'screen') return 0;
  return tile.self ? 1 : 2;
}
