// Owns local capture: getting the microphone and camera, listing devices, explaining capture
// errors to people, the microphone level meter, and the remembered device choices. It does not
// publish anything (local.js does) and touches no DOM beyond what it is handed.

const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };
const AUDIO_PROCESSING = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

function deviceConstraint(deviceId) {
  return deviceId ? { deviceId: { exact: deviceId } } : {};
}

/** Microphone track, or throws the getUserMedia error. */
export async function getMicTrack(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { ...deviceConstraint(deviceId), ...AUDIO_PROCESSING } });
  return stream.getAudioTracks()[0];
}

/** Camera track, or throws the getUserMedia error. */
export async function getCamTrack(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { ...deviceConstraint(deviceId), ...CAMERA_CONSTRAINTS } });
  return stream.getVideoTracks()[0];
}

/**
 * Gets the microphone and camera that are wanted, falling back to whichever works alone.
 * Returns {mic, cam, errors: {mic?, cam?}}; never throws.
 */
export async function getLocalTracks({ micDeviceId, camDeviceId, audio = true, video = true } = {}) {
  const result = { mic: null, cam: null, errors: {} };
  if (!navigator.mediaDevices?.getUserMedia) {
    const err = new DOMException('media devices need https or localhost', 'SecurityError');
    if (audio) result.errors.mic = err;
    if (video) result.errors.cam = err;
    return result;
  }
  if (audio && video) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { ...deviceConstraint(micDeviceId), ...AUDIO_PROCESSING },
        video: { ...deviceConstraint(camDeviceId), ...CAMERA_CONSTRAINTS },
      });
      result.mic = stream.getAudioTracks()[0] || null;
      result.cam = stream.getVideoTracks()[0] || null;
      return result;
    } catch {
      // Try each device alone: one of them may be missing, busy or blocked.
    }
  }
  if (audio) {
    try { result.mic = await getMicTrack(micDeviceId); } catch (err) { result.errors.mic = err; }
  }
  if (video) {
    try { result.cam = await getCamTrack(camDeviceId); } catch (err) { result.errors.cam = err; }
  }
  return result;
}

/** Lists {audioinput, videoinput, audiooutput} devices; empty lists when the browser cannot. */
export async function listDevices() {
  const out = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return out;
  for (const d of await navigator.mediaDevices.enumerateDevices()) {
    if (out[d.kind] && d.deviceId !== 'communications') out[d.kind].push(d);
  }
  return out;
}

/** True when audio elements can be sent to a chosen speaker (setSinkId). */
export const canPickSpeaker = () => typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

const DEVICE_WORDS = { mic: 'microphone', cam: 'camera' };

/**
 * One sentence for people about why capture failed, from the getUserMedia errors
 * ({mic?, cam?}), or '' when nothing failed. `wanted` says which were asked for.
 */
export function describeCaptureErrors(errors, wanted = { mic: true, cam: true }) {
  const failed = Object.entries(errors).filter(([kind, err]) => err && wanted[kind]);
  if (!failed.length) return '';
  const names = (list) => list.map(([kind]) => DEVICE_WORDS[kind]).join(' and ');
  const byName = (name) => failed.filter(([, err]) => err.name === name);
  const parts = [];
  const blocked = byName('NotAllowedError').concat(byName('SecurityError'));
  if (blocked.length) {
    parts.push(`Access to your ${names(blocked)} is blocked for this site. Allow it in the browser's address bar (the camera or lock icon), then reload the page.`);
  }
  const busy = byName('NotReadableError').concat(byName('AbortError'));
  if (busy.length) parts.push(`Your ${names(busy)} is in use by another application, or could not be started. Close the other application and try again.`);
  const missing = byName('NotFoundError').concat(byName('OverconstrainedError'));
  if (missing.length) parts.push(`No ${names(missing)} was found.`);
  const other = failed.filter(([, err]) => ![...blocked, ...busy, ...missing].some(([, e]) => e === err));
  if (other.length) parts.push(`Your ${names(other)} could not be used (${other.map(([, e]) => e.message || e.name).join('; ')}).`);
  return parts.join(' ');
}

/** Remembered choices: name, device ids and whether the microphone and camera were on. */
const PREFS_KEY = 'mm.prefs';
export const prefs = {
  read() {
    try {
      return { micOn: true, camOn: true, micDeviceId: '', camDeviceId: '', speakerId: '', ...JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') };
    } catch {
      return { micOn: true, camOn: true, micDeviceId: '', camDeviceId: '', speakerId: '' };
    }
  },
  write(changes) {
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify({ ...this.read(), ...changes }));
    } catch { /* storage full or disabled: the choice is kept for this page only */ }
  },
};

/**
 * A microphone level meter: calls onLevel(0..1) about 20 times a second from the track's
 * loudness, until stop().
 */
export class MicMeter {
  constructor(track, onLevel) {
    this.stopped = false;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || !track) return;
    let analyser;
    try {
      this.ctx = new Ctx();
      const source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      analyser = this.ctx.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
    } catch (err) {
      console.warn('[devices] no level meter:', err.message); // the join screen works without it
      return;
    }
    // Browsers keep Web Audio suspended until the person interacts with the page (Firefox
    // does even with the microphone allowed); resume inside the first click or key press.
    this.wake = () => {
      if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    };
    for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, this.wake, true);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      this.wake();
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // Speech sits around 0.01-0.3 RMS: map it on a log scale so quiet voices still move the bar.
      const level = rms > 0 ? Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60)) : 0;
      this.level = level;
      onLevel(level);
    }, 50);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    for (const type of ['pointerdown', 'keydown']) document.removeEventListener(type, this.wake, true);
    this.ctx?.close().catch(() => {});
  }
}
