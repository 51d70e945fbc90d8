// Small DOM helpers every screen uses: screens, notices, toasts, toggle buttons, device
// selects, the confirmation dialog, and avatar initials and colours. No meeting logic here.

export const $ = (sel, root = document) => root.querySelector(sel);

export function showScreen(name) {
  for (const el of document.querySelectorAll('.screen')) el.hidden = el.id !== `${name}-screen`;
}

const graphemes = (() => {
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    const seg = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    return (text) => Array.from(seg.segment(text), (s) => s.segment);
  }
  return (text) => Array.from(text); // code points: never half a surrogate pair
})();

/** Up to two letters (whole characters, emoji included) for an avatar. */
export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '?';
  const first = graphemes(words[0]);
  const letters = words.length > 1 ? first[0] + graphemes(words[words.length - 1])[0] : first.slice(0, 2).join('');
  return letters.toUpperCase();
}

/** A stable hue per name so avatars are distinguishable. */
export function hue(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function setToggle(button, on, { onTitle, offTitle } = {}) {
  button.dataset.on = String(on);
  button.setAttribute('aria-pressed', String(on));
  if (onTitle && offTitle) {
    button.title = on ? onTitle : offTitle;
    button.setAttribute('aria-label', button.title);
  }
}

export function setNotice(el, text, kind = 'info') {
  el.hidden = !text;
  el.textContent = text || '';
  el.dataset.kind = kind;
}

/** Every toast shown, newest last (the page's own record of what it told the person). */
export const toastHistory = [];

export function toast(text, kind = 'info', ms = 4000) {
  toastHistory.push({ text, kind, t: Date.now() });
  if (toastHistory.length > 100) toastHistory.splice(0, 50);
  const box = $('#toasts');
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text;
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Fills a device <select>; a browser that hides labels until permission gets numbered ones. */
export function fillSelect(select, devices, selectedId, emptyLabel) {
  select.replaceChildren();
  if (!devices.length) {
    select.append(new Option(emptyLabel, ''));
    select.disabled = true;
    return;
  }
  select.disabled = false;
  const word = { videoinput: 'Camera', audioinput: 'Microphone', audiooutput: 'Speaker' };
  devices.forEach((d, i) => {
    const label = d.label || `${word[d.kind] || 'Device'} ${i + 1}`;
    select.append(new Option(label, d.deviceId, false, d.deviceId === selectedId));
  });
}

/**
 * Asks a yes/no question in the page's own dialog (never window.confirm, which blocks the
 * page and the meeting with it). Resolves true when the person confirms.
 */
export function confirmDialog({ title, text, confirmLabel, cancelLabel = 'Cancel' }) {
  const dialog = $('#confirm-dialog');
  $('#confirm-title', dialog).textContent = title;
  $('#confirm-text', dialog).textContent = text;
  const ok = $('#confirm-ok', dialog);
  const cancel = $('#confirm-cancel', dialog);
  ok.textContent = confirmLabel;
  cancel.textContent = cancelLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      ok.onclick = cancel.onclick = null;
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onClose = () => done(false); // Escape
    ok.onclick = () => done(true);
    cancel.onclick = () => done(false);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    cancel.focus(); // the safe answer has the focus
  });
}

/** Copies text; falls back to a hidden textarea where the Clipboard API is refused. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}
