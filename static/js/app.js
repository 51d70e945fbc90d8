// Entry point: reads the URL and shows the right screen (home, join, meeting). Each screen
// lives in its own module: home (below), join.js, meeting-view.js; the session with the
// server is session.js, what we send is local.js.

import { roomNameProblem } from './rooms.js';
import { $, showScreen, setNotice } from './ui.js';
import { meeting } from './state.js';
import { showJoin, captureForAutoJoin, rememberedName } from './join.js';
import { enterMeeting } from './meeting-view.js';

const params = new URLSearchParams(location.search);
const roomId = (() => {
  const raw = location.pathname.replace(/^\/+|\/+$/g, '');
  try { return decodeURIComponent(raw); } catch { return raw; }
})();

/** The room access token: taken from ?token= into this tab's storage and out of the address
 * bar, so it is not copied with the URL, kept in the history or seen in a screen share. */
function takeToken(room) {
  const key = `mm-token:${room}`;
  const fromUrl = params.get('token');
  if (fromUrl) {
    try { sessionStorage.setItem(key, fromUrl); } catch { /* storage off: this page only */ }
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
    return fromUrl;
  }
  try { return sessionStorage.getItem(key) || ''; } catch { return ''; }
}

async function boot() {
  if (!roomId) return showHome();
  const problem = roomNameProblem(roomId);
  if (problem) return showHome(`"${roomId}" is not a valid room name: ${problem}. Pick another name below.`);
  meeting.roomId = roomId;
  meeting.token = takeToken(roomId);
  document.title = `${roomId} · Meeting`;
  const name = (params.get('displayName') || rememberedName()).trim().slice(0, 64);
  if (params.get('autoJoin') === '1' && name) {
    meeting.state = 'joining';
    const { tracks, micOn, camOn } = await captureForAutoJoin();
    return enterMeeting({ displayName: name, tracks, micOn, camOn });
  }
  const choice = await showJoin(roomId, name);
  return enterMeeting(choice);
}

function showHome(error = '') {
  showScreen('home');
  const input = $('#room-input');
  input.value = randomRoomName();
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
  input.select();
}

function randomRoomName() {
  const words = ['amber', 'brisk', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'indigo', 'juniper'];
  const pick = () => words[Math.floor(Math.random() * words.length)];
  return `${pick()}-${pick()}-${Math.floor(Math.random() * 900 + 100)}`;
}

boot();
