// Owns the side panel of the meeting screen: its tabs (People, Chat, Stats), the participant
// list with renaming yourself and the moderator's controls (lobby, lock, remove), the chat,
// and the connection statistics. Every text from the server is set as text, never as HTML.

import { $, initials, hue } from './ui.js';

/** A small button of a list entry; `label` says what it does to whom (for screen readers). */
function smallButton(cls, text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `small ${cls}`;
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

/** Opens/closes the panel and switches tabs; `onToggle(open)` lets the video area re-layout. */
export class SidePanel {
  constructor({ onToggle = () => {}, onRename = () => {}, statsSource = async () => [], actions = {} } = {}) {
    this.el = $('#side-panel');
    this.onToggle = onToggle;
    this.onRename = onRename;
    this.statsSource = statsSource;
    this.actions = actions; // {sendChat, clearChat, admit, admitAll, deny, kick, setLocked}
    this.statsTimer = null;
    this.unread = 0;
    this.canKick = false;
    for (const tab of this.el.querySelectorAll('[role="tab"]')) {
      tab.addEventListener('click', () => this.showTab(tab.dataset.tab));
      tab.addEventListener('keydown', (ev) => {
        if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
        const tabs = [...this.el.querySelectorAll('[role="tab"]')];
        const next = tabs[(tabs.indexOf(tab) + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
        next.focus();
        this.showTab(next.dataset.tab);
      });
    }
    $('#panel-close').addEventListener('click', () => this.toggle(false));
    this.renameForm();
    this.chatForm();
    $('#lobby-admit-all').addEventListener('click', () => this.actions.admitAll?.());
    $('#lock-button').addEventListener('click', () => this.actions.setLocked?.(!this.locked));
    $('#mute-all-button').addEventListener('click', () => this.actions.moderate?.('muteAll'));
    $('#stop-all-video-button').addEventListener('click', () => this.actions.moderate?.('stopAllVideo'));
    $('#close-meeting-button').addEventListener('click', () => this.actions.closeMeeting?.());
  }

  get open() {
    return !this.el.hidden;
  }

  toggle(open = !this.open, tab) {
    this.el.hidden = !open;
    if (tab) this.showTab(tab);
    this.onToggle(open);
    this._stats();
  }

  showTab(name) {
    for (const tab of this.el.querySelectorAll('[role="tab"]')) {
      const selected = tab.dataset.tab === name;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`#${tab.getAttribute('aria-controls')}`).hidden = !selected;
    }
    this.tab = name;
    if (name === 'chat') this._markRead();
    this._stats();
  }

  /**
   * participants: [{id, displayName, self, micOn, camOn, sharing, speaking, stale}]
   */
  renderPeople(participants) {
    const list = $('#participant-list');
    $('#participant-count').textContent = String(participants.length);
    list.replaceChildren();
    for (const p of participants) {
      const li = document.createElement('li');
      li.dataset.peerId = p.id;
      li.classList.toggle('speaking', !!p.speaking);
      li.classList.toggle('stale', !!p.stale);
      const avatar = document.createElement('span');
      avatar.className = 'mini-avatar';
      avatar.setAttribute('aria-hidden', 'true');
      avatar.style.setProperty('--hue', hue(p.displayName));
      avatar.textContent = initials(p.displayName);
      const name = document.createElement('span');
      name.className = 'pname';
      name.textContent = p.self ? `${p.displayName} (you)` : p.displayName;
      const state = document.createElement('span');
      state.className = 'pstate';
      const badge = (cls, on, onText, offText, title) => {
        const b = document.createElement('span');
        b.className = cls;
        b.dataset.on = String(!!on);
        b.textContent = on ? onText : offText;
        b.title = title;
        return b;
      };
      if (p.speaking) state.append(badge('state-speaking', true, 'speaking', '', 'Speaking now'));
      if (p.stale) state.append(badge('state-stale', false, '', 'reconnecting', 'Reconnecting: last known state'));
      state.append(badge('state-mic', p.micOn, 'mic', 'mic off', p.micOn ? 'Microphone on' : 'Microphone off'));
      state.append(badge('state-cam', p.camOn, 'cam', 'cam off', p.camOn ? 'Camera on' : 'Camera off'));
      if (p.sharing) state.append(badge('state-screen', true, 'screen', '', 'Sharing the screen'));
      if (p.raisedHand) state.append(badge('state-hand', true, 'hand', '', 'Hand raised'));
      if (p.moderator) state.append(badge('state-moderator', true, 'host', '', 'Moderator'));
      li.append(avatar, name, state);
      if (this.canKick && !p.self && !p.stale) {
        // The moderator's controls for this participant, each only when it applies.
        const control = (cls, text, label, onClick) => li.append(smallButton(cls, text, label, onClick));
        if (p.raisedHand) control('lower-hand', 'Lower hand', `Lower ${p.displayName}'s hand`, () => this.actions.moderate?.('lowerHand', p.id));
        if (p.micOn) control('mute', 'Mute', `Mute ${p.displayName}`, () => this.actions.moderate?.('mutePeer', p.id));
        if (p.camOn) control('stop-video', 'Stop video', `Stop ${p.displayName}'s camera`, () => this.actions.moderate?.('stopPeerVideo', p.id));
        if (p.sharing) control('stop-share', 'Stop share', `Stop ${p.displayName}'s screen share`, () => this.actions.moderate?.('stopPeerScreenShare', p.id));
        control('kick', 'Remove', `Remove ${p.displayName} from the meeting`, () => this.actions.kick?.(p.id, p.displayName));
      }
      list.append(li);
    }
  }

  /**
   * The moderator's part of the People tab: who waits in the lobby (with admit and refuse when
   * `canAdmit`), and the lock button (when `canLock`).
   */
  renderAccess({ lobbyPeers = [], canAdmit = false, canLock = false, locked = false, canKick = false }) {
    this.locked = locked;
    this.canKick = canKick;
    const section = $('#lobby-section');
    section.hidden = !canAdmit || lobbyPeers.length === 0;
    $('#lobby-count').textContent = String(lobbyPeers.length);
    const list = $('#lobby-list');
    list.replaceChildren();
    for (const p of lobbyPeers) {
      const li = document.createElement('li');
      li.dataset.peerId = p.id;
      const name = document.createElement('span');
      name.className = 'pname';
      name.textContent = p.displayName;
      li.append(
        name,
        smallButton('primary admit', 'Admit', `Admit ${p.displayName}`, () => this.actions.admit?.(p.id)),
        smallButton('deny', 'Refuse', `Refuse ${p.displayName}`, () => this.actions.deny?.(p.id)),
      );
      list.append(li);
    }
    $('#room-controls').hidden = !canLock;
    $('#moderator-controls').hidden = !canKick;
    const lock = $('#lock-button');
    lock.textContent = locked ? 'Unlock the meeting' : 'Lock the meeting';
    lock.setAttribute('aria-pressed', String(locked));
  }

  /** The Chat tab: `entries` [{peerId, displayName, text, time}], `selfId` marks ours. */
  renderChat(entries, { selfId, canSend = true, canClear = false, added = null } = {}) {
    const list = $('#chat-list');
    list.replaceChildren();
    for (const e of entries) {
      const li = document.createElement('li');
      li.dataset.peerId = e.peerId;
      const from = document.createElement('span');
      from.className = 'chat-from';
      from.textContent = e.peerId === selfId ? 'You' : e.displayName;
      const text = document.createElement('span');
      text.className = 'chat-text';
      text.textContent = e.text;
      const time = document.createElement('time');
      time.className = 'chat-time';
      const at = new Date(e.time);
      time.dateTime = at.toISOString?.() || '';
      time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      li.append(from, text, time);
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
    $('#chat-empty').hidden = entries.length > 0;
    $('#chat-clear').hidden = !canClear;
    $('#chat-input').disabled = !canSend;
    if (added && added.peerId !== selfId && !(this.open && this.tab === 'chat')) {
      this.unread += 1;
      const badge = $('#chat-unread');
      badge.textContent = String(this.unread);
      badge.hidden = false;
    }
  }

  _markRead() {
    this.unread = 0;
    $('#chat-unread').hidden = true;
  }

  /** The message box: Enter sends, Shift+Enter is a new line. */
  chatForm() {
    const form = $('#chat-form');
    const input = $('#chat-input');
    const send = () => {
      const text = input.value.trim();
      if (!text) return;
      Promise.resolve(this.actions.sendChat?.(text)).then(() => { input.value = ''; }).catch(() => {});
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); send(); }
    });
    $('#chat-clear').addEventListener('click', () => this.actions.clearChat?.());
  }

  /** The "Rename" control of the People tab: a real button and form, reachable by keyboard. */
  renameForm() {
    const button = $('#rename-button');
    const form = $('#rename-form');
    const input = $('#rename-input');
    button.addEventListener('click', () => {
      form.hidden = false;
      button.hidden = true;
      input.value = this.currentName || '';
      input.focus();
      input.select();
    });
    const close = () => {
      form.hidden = true;
      button.hidden = false;
      button.focus();
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = input.value.trim().slice(0, 64);
      if (!next) {
        input.setCustomValidity('Enter a name');
        input.reportValidity();
        return;
      }
      input.setCustomValidity('');
      close();
      if (next !== this.currentName) this.onRename(next);
    });
    input.addEventListener('input', () => input.setCustomValidity(''));
    $('#rename-cancel').addEventListener('click', close);
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { ev.preventDefault(); close(); }
    });
  }

  /** Refreshes the Stats tab every 2 s while it is visible. */
  _stats() {
    clearTimeout(this.statsTimer);
    if (!this.open || this.tab !== 'stats') return;
    this.statsSource().then((rows) => {
      const body = $('#stats-body');
      body.replaceChildren();
      for (const r of rows) {
        const tr = document.createElement('tr');
        tr.dataset.consumerId = r.consumerId;
        for (const text of [r.who, r.source, r.layer, r.resolution, r.fps, r.lost]) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.append(td);
        }
        body.append(tr);
      }
      $('#stats-empty').hidden = rows.length > 0;
    }).catch(() => {}).finally(() => {
      this.statsTimer = setTimeout(() => this._stats(), 2000);
    });
  }
}
