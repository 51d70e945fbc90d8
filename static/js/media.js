// Owns the two WebRTC connections: the send transport (the client offers, `publish`) and the
// recv transport (the server offers, `recvAnswer`). Capture lives in devices.js.

import { createPeerConnection } from './ice.js';

/** Simulcast layers for the camera, lowest first (protocol.md: rid l, m, h). */
export const WEBCAM_ENCODINGS = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

/** Serializes async jobs so negotiations never overlap. */
class Queue {
  constructor() { this.tail = Promise.resolve(); }
  run(job) {
    const result = this.tail.then(job);
    this.tail = result.catch(() => {});
    return result;
  }
}

function watchFailure(pc, label, onFailed) {
  pc.addEventListener('connectionstatechange', () => {
    console.debug(`[media] ${label} connectionState=${pc.connectionState}`);
    if (pc.connectionState === 'failed') onFailed(`${label} peer connection failed`);
  });
}

/**
 * The send transport: the client offers, the server answers through `publish`.
 * producers: source -> {id, mid, kind, source, transceiver, paused}
 */
export class SendTransport {
  constructor({ iceServers = [], request, onFailed }) {
    this.request = request;
    this.pc = createPeerConnection(iceServers, 'send');
    this.producers = new Map();
    this.screenTransceiver = null; // kept for reuse after a share stops
    this.queue = new Queue();
    this.closed = false;
    watchFailure(this.pc, 'send', (why) => !this.closed && onFailed(why));
  }

  /**
   * Adds senders for the given sources and publishes them in one negotiation.
   * entries: [{source: 'mic'|'webcam'|'screen', track: MediaStreamTrack|null}]
   * Returns the new producers.
   */
  publish(entries) {
    return this.queue.run(async () => {
      if (this.closed) throw new Error('send transport closed');
      const added = [];
      for (const { source, track } of entries) {
        const kind = source === 'mic' ? 'audio' : 'video';
        let transceiver;
        if (source === 'screen' && this.screenTransceiver) {
          transceiver = this.screenTransceiver;
          transceiver.direction = 'sendonly';
          await transceiver.sender.replaceTrack(track);
        } else {
          const init = { direction: 'sendonly' };
          if (source === 'webcam') init.sendEncodings = WEBCAM_ENCODINGS.map((e) => ({ ...e }));
          transceiver = this.pc.addTransceiver(track || kind, init);
          if (source === 'screen') this.screenTransceiver = transceiver;
        }
        added.push({ source, kind, transceiver });
      }
      try {
        const offer = await this.pc.createOffer();
        await this.pc.setLocalDescription(offer);
        const producers = added.map(({ source, kind, transceiver }) => ({ mid: transceiver.mid, kind, source }));
        const res = await this.request('publish', { sdp: this.pc.localDescription.sdp, producers });
        await this.pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
        const idByMid = new Map((res.producers || []).map((p) => [p.mid, p.id]));
        const result = [];
        for (const { source, kind, transceiver } of added) {
          const id = idByMid.get(transceiver.mid);
          if (!id) throw new Error(`publish answer has no producer for mid ${transceiver.mid} (${source})`);
          const producer = { id, mid: transceiver.mid, kind, source, transceiver, paused: false };
          this.producers.set(source, producer);
          result.push(producer);
        }
        return result;
      } catch (err) {
        if (!this.closed && this.pc.signalingState === 'have-local-offer') {
          try { await this.pc.setLocalDescription({ type: 'rollback' }); } catch { /* ignore */ }
        }
        for (const { source, transceiver } of added) {
          if (source === 'screen') {
            try { await transceiver.sender.replaceTrack(null); transceiver.direction = 'inactive'; } catch { /* ignore */ }
          }
        }
        throw err;
      }
    });
  }

  /** Camera/mic off: replaceTrack(null) + pauseProducer. */
  async pause(source) {
    const p = this.producers.get(source);
    if (!p) return;
    await p.transceiver.sender.replaceTrack(null);
    p.paused = true;
    await this.request('pauseProducer', { producerId: p.id });
  }

  /** Camera/mic on: replaceTrack(track) + resumeProducer. */
  async resume(source, track) {
    const p = this.producers.get(source);
    if (!p) return;
    await p.transceiver.sender.replaceTrack(track);
    p.paused = false;
    try {
      await this.request('resumeProducer', { producerId: p.id });
    } catch (err) {
      // Refused (a moderator blocked it): the producer stays paused, and so does the sender.
      p.paused = true;
      await p.transceiver.sender.replaceTrack(null).catch(() => {});
      throw err;
    }
  }

  /** Swap the track without touching the producer state (device change). */
  async replace(source, track) {
    const p = this.producers.get(source);
    if (p) await p.transceiver.sender.replaceTrack(track);
  }

  /** Screen share stop: closeProducer + replaceTrack(null) + direction inactive (transceiver kept for reuse). */
  async closeScreen() {
    const p = this.producers.get('screen');
    if (!p) return;
    this.producers.delete('screen');
    try {
      await p.transceiver.sender.replaceTrack(null);
      p.transceiver.direction = 'inactive';
    } catch { /* pc may be closed */ }
    await this.request('closeProducer', { producerId: p.id });
  }

  close() {
    this.closed = true;
    try { this.pc.close(); } catch { /* ignore */ }
  }
}

/**
 * The recv transport: the server offers (`recvOffer`), the client answers (`recvAnswer`).
 * Offers are processed strictly one at a time, in arrival order.
 * consumers: consumerId -> {id, producerId, peerId, kind, source, mid, paused, track}
 */
export class RecvTransport {
  constructor({ iceServers = [], request, onFailed, onConsumerAdded, onConsumerRemoved }) {
    this.request = request;
    this.pc = createPeerConnection(iceServers, 'recv');
    this.consumers = new Map();
    this.queue = new Queue();
    this.closed = false;
    this.onFailed = onFailed;
    this.onConsumerAdded = onConsumerAdded;
    this.onConsumerRemoved = onConsumerRemoved;
    watchFailure(this.pc, 'recv', (why) => !this.closed && onFailed(why));
  }

  /** Queue a recvOffer. Failures are fatal for the session (onFailed). */
  handleOffer({ sdp, consumers = [] }) {
    return this.queue.run(() => this._applyOffer(sdp, consumers)).catch((err) => {
      if (this.closed) return;
      console.error('[media] recvOffer failed', err);
      this.onFailed(`could not apply recvOffer: ${err.message || err}`);
    });
  }

  async _applyOffer(sdp, consumers) {
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    const transceivers = this.pc.getTransceivers();
    const added = [];
    for (const c of consumers) {
      const transceiver = transceivers.find((t) => t.mid === c.mid);
      if (!transceiver) {
        console.warn(`[media] consumer ${c.id}: no transceiver with mid ${c.mid} in the offer`);
        continue;
      }
      // A mid may be reused by the server for a new consumer: drop the stale entry first.
      for (const old of this.consumers.values()) {
        if (old.mid === c.mid && old.id !== c.id) this._remove(old.id);
      }
      const consumer = { ...c, paused: !!c.paused, track: transceiver.receiver.track, transceiver };
      this.consumers.set(c.id, consumer);
      added.push(consumer);
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    for (const consumer of added) this.onConsumerAdded(consumer);
    await this.request('recvAnswer', { sdp: this.pc.localDescription.sdp });
  }

  removeConsumer(consumerId) {
    this._remove(consumerId);
  }

  _remove(consumerId) {
    const c = this.consumers.get(consumerId);
    if (!c) return;
    this.consumers.delete(consumerId);
    this.onConsumerRemoved(c);
  }

  /** inbound-rtp stats matched to consumers via the transceiver mid. */
  async inboundStats() {
    if (this.closed) return [];
    const report = await this.pc.getStats();
    const byMid = new Map();
    const byTrack = new Map();
    for (const c of this.consumers.values()) {
      byMid.set(String(c.mid), c);
      if (c.track) byTrack.set(c.track.id, c);
    }
    const out = [];
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const c = (s.mid != null && byMid.get(String(s.mid))) || (s.trackIdentifier && byTrack.get(s.trackIdentifier));
      if (!c) return;
      out.push({
        consumerId: c.id,
        producerId: c.producerId,
        peerId: c.peerId,
        kind: c.kind,
        source: c.source,
        mid: c.mid,
        ssrc: s.ssrc,
        packetsReceived: s.packetsReceived || 0,
        packetsLost: s.packetsLost || 0,
        nackCount: s.nackCount || 0,
        retransmittedPacketsReceived: s.retransmittedPacketsReceived || 0,
        bytesReceived: s.bytesReceived || 0,
        framesDecoded: s.framesDecoded || 0,
        framesPerSecond: s.framesPerSecond || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        jitter: s.jitter || 0,
      });
    });
    return out;
  }

  close() {
    this.closed = true;
    try { this.pc.close(); } catch { /* ignore */ }
  }
}
