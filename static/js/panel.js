// Owns the side panel of the meeting screen: its tabs (People and Stats today; chat and the
// lobby will be more tabs of the same panel), the participant list with renaming yourself,
// and the connection statistics that used to be debug badges on the tiles.

import { $, initials, hue } from './ui.js';

/** Opens/closes the panel and switches tabs; `onToggle(open)` lets the video area re-layout. */
export class SidePanel {
  constructor({ onToggle = () => {}, onRename = () => {}, statsSource = async () => [] } = {}) {
    this.el = $('#side-panel');
    this.onToggle = onToggle;
    this.onRename = onRename;
    this.statsSource = statsSource;
    this.statsTimer = null;
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
      li.append(avatar, name, state);
      list.append(li);
    }
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
