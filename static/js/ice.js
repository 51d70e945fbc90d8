// Peer connections with the server's STUN/TURN servers (join's iceServers) and, with `?relay=1` in the room URL, media only through TURN (iceTransportPolicy "relay"); says in the meeting notice when TURN refuses us.

import { $, setNotice } from './ui.js';

/** `?relay=1`: send and receive media only through the TURN server (hides your address; tests TURN). */
export const relayOnly = ['1', 'true'].includes(new URLSearchParams(location.search).get('relay'));

/** A new RTCPeerConnection for the send or recv transport (`label`), watched for TURN problems. */
export function createPeerConnection(iceServers, label) {
  const config = { iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
  if (relayOnly) config.iceTransportPolicy = 'relay';
  const pc = new RTCPeerConnection(config);
  watchTurn(pc, label, iceServers);
  return pc;
}

function hasTurn(iceServers) {
  return iceServers.some((s) => [].concat(s.urls || []).some((u) => /^turns?:/.test(u)));
}

function report(text) {
  console.error(`[ice] ${text}`);
  const el = $('#meeting-notice');
  if (el) setNotice(el, text, 'error');
}

function watchTurn(pc, label, iceServers) {
  if (relayOnly && !hasTurn(iceServers)) {
    report('Relay-only mode (?relay=1), but this server offers no TURN server: no media can flow. Remove relay=1 from the address, or ask the operator to configure TURN.');
    return;
  }
  let relayed = false;
  let refused = null;
  pc.addEventListener('icecandidate', (e) => {
    if (e.candidate && e.candidate.type === 'relay') relayed = true;
  });
  pc.addEventListener('icecandidateerror', (e) => {
    if (!/^turns?:/.test(e.url || '')) return;
    console.warn(`[ice] ${label}: ${e.url} answered ${e.errorCode} ${e.errorText}`);
    if (e.errorCode === 401 || e.errorCode === 403) refused = e;
  });
  const refusal = () => `The TURN server (${refused.url}) refused this meeting's credentials (${refused.errorCode} ${refused.errorText || ''}): media cannot be relayed. The operator should check that [turn] secret matches the TURN server's static-auth-secret.`;
  // Relay-only: without a relay candidate nothing can flow, so say so as soon as gathering ends.
  pc.addEventListener('icegatheringstatechange', () => {
    if (!relayOnly || pc.iceGatheringState !== 'complete' || relayed) return;
    report(refused ? refusal() : 'Relay-only mode (?relay=1), but no TURN server could be reached: no media can flow. Remove relay=1 from the address, or ask the operator to check TURN.');
  });
  // Otherwise a refusing TURN server only matters when the direct path fails too.
  pc.addEventListener('connectionstatechange', () => {
    if (!relayOnly && refused && pc.connectionState === 'failed') report(refusal());
  });
}
