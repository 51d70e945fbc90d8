// Owns the join screen: your name, camera preview, microphone and camera on/off before
// joining, the microphone level meter, device choice, and why a device cannot be used.
// Resolves with what the person chose; the meeting screen takes it from there.

import { $, showScreen, setNotice, setToggle, fillSelect, toast } from './ui.js';
import { getLocalTracks, getMicTrack, getCamTrack, listDevices, describeCaptureErrors, MicMeter, prefs } from './devices.js';

const NAME_KEY = 'mm.displayName';

export const rememberedName = () => {
  try { return localStorage.getItem(NAME_KEY) || ''; } catch { return ''; }
};

function rememberName(name) {
  try { localStorage.setItem(NAME_KEY, name); } catch { /* storage disabled: fine */ }
}

/**
 * Gets the devices the person had on last time (a muted microphone stays off), for joining
 * without the join screen (?autoJoin=1). Returns {tracks, micOn, camOn}.
 */
export async function captureForAutoJoin() {
  const p = prefs.read();
  const tracks = await getLocalTracks({ micDeviceId: p.micDeviceId, camDeviceId: p.camDeviceId, audio: p.micOn, video: p.camOn });
  tracks.notice = meetingNotice(tracks, { mic: p.micOn, cam: p.camOn });
  return { tracks, micOn: p.micOn, camOn: p.camOn };
}

/** The notice shown in the meeting when a wanted device could not be used. */
function meetingNotice(tracks, wanted) {
  const why = describeCaptureErrors(tracks.errors, wanted);
  if (!why) return '';
  return !tracks.mic && !tracks.cam ? `${why} You joined receive-only: you can watch and listen.` : why;
}

/** Shows the join screen; resolves with {displayName, tracks, micOn, camOn} on Join. */
export function showJoin(roomId, name) {
  showScreen('join');
  $('#join-room-name').textContent = roomId;
  const nameInput = $('#name-input');
  nameInput.value = name;
  const preview = $('#preview');
  const camSelect = $('#cam-select');
  const micSelect = $('#mic-select');
  const micToggle = $('#join-mic-toggle');
  const camToggle = $('#join-cam-toggle');
  const meterBar = $('#mic-meter .bar');
  const meter = $('#mic-meter');
  const p = prefs.read();
  const want = { mic: p.micOn, cam: p.camOn };
  const tracks = { mic: null, cam: null, errors: {} };
  let micMeter = null;

  const render = () => {
    preview.srcObject = tracks.cam ? new MediaStream([tracks.cam]) : null;
    $('#preview-off').hidden = !!tracks.cam;
    $('#preview-off').textContent = want.cam ? 'No camera' : 'Camera is off';
    setToggle(micToggle, want.mic, { onTitle: 'Turn microphone off', offTitle: 'Turn microphone on' });
    setToggle(camToggle, want.cam, { onTitle: 'Turn camera off', offTitle: 'Turn camera on' });
    micSelect.disabled = micSelect.options.length < 1 || !micSelect.options[0].value;
    camSelect.disabled = camSelect.options.length < 1 || !camSelect.options[0].value;
    meter.hidden = !tracks.mic;
    micMeter?.stop();
    micMeter = tracks.mic ? new MicMeter(tracks.mic, (level) => {
      meterBar.style.transform = `scaleX(${level.toFixed(3)})`;
      meter.setAttribute('aria-valuenow', String(Math.round(level * 100)));
      meter.dataset.level = level.toFixed(3);
    }) : null;
    setNotice($('#join-notice'), describeCaptureErrors(tracks.errors, want), 'warn');
  };
  const refreshDevices = async () => {
    const devices = await listDevices().catch(() => ({ audioinput: [], videoinput: [] }));
    fillSelect(camSelect, devices.videoinput, tracks.cam?.getSettings().deviceId || p.camDeviceId, 'No camera');
    fillSelect(micSelect, devices.audioinput, tracks.mic?.getSettings().deviceId || p.micDeviceId, 'No microphone');
  };
  const open = async (kind, deviceId) => {
    const get = kind === 'mic' ? getMicTrack : getCamTrack;
    tracks[kind]?.stop();
    tracks[kind] = null;
    try {
      tracks[kind] = await get(deviceId);
      delete tracks.errors[kind];
    } catch (err) {
      tracks.errors[kind] = err;
    }
  };
  const close = (kind) => {
    tracks[kind]?.stop();
    tracks[kind] = null;
    delete tracks.errors[kind];
  };

  return new Promise((resolve) => {
    // Join waits for this: a quick Enter must not join without the devices being asked for.
    const ready = (async () => {
      const first = await getLocalTracks({ micDeviceId: p.micDeviceId, camDeviceId: p.camDeviceId, audio: want.mic, video: want.cam });
      Object.assign(tracks, first);
      await refreshDevices();
      render();
    })();
    navigator.mediaDevices?.addEventListener?.('devicechange', refreshDevices);

    micToggle.onclick = async () => {
      want.mic = !want.mic;
      prefs.write({ micOn: want.mic });
      if (want.mic) await open('mic', micSelect.value); else close('mic');
      await refreshDevices();
      render();
    };
    camToggle.onclick = async () => {
      want.cam = !want.cam;
      prefs.write({ camOn: want.cam });
      if (want.cam) await open('cam', camSelect.value); else close('cam');
      await refreshDevices();
      render();
    };
    camSelect.onchange = async () => {
      prefs.write({ camDeviceId: camSelect.value });
      if (want.cam) await open('cam', camSelect.value);
      render();
      if (tracks.errors.cam) toast('The camera could not be started', 'error');
    };
    micSelect.onchange = async () => {
      prefs.write({ micDeviceId: micSelect.value });
      if (want.mic) await open('mic', micSelect.value);
      render();
    };

    const form = $('#join-form');
    const nameError = $('#name-error');
    nameInput.addEventListener('input', () => {
      nameError.hidden = true;
      nameInput.removeAttribute('aria-invalid');
    });
    let joining = false;
    // Not {once: true}: a refused submit (empty name) must leave the form working.
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      if (joining) return;
      const displayName = nameInput.value.trim().slice(0, 64);
      if (!displayName) {
        nameError.hidden = false;
        nameInput.setAttribute('aria-invalid', 'true');
        nameInput.focus();
        return;
      }
      joining = true;
      await ready;
      rememberName(displayName);
      navigator.mediaDevices?.removeEventListener?.('devicechange', refreshDevices);
      micMeter?.stop();
      preview.srcObject = null;
      tracks.notice = want.mic || want.cam ? meetingNotice(tracks, want) : '';
      resolve({ displayName, tracks, micOn: want.mic, camOn: want.cam });
    };
    nameInput.focus();
  });
}
