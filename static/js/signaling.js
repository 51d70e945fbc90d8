// Owns the signaling WebSocket: request/response matching by id, notifications, and the reconnect backoff.

export const PROTOCOL_VERSION = 1;

/** Error carrying the protocol error `code` (or a local one: 'timeout', 'closed'). */
export class SignalingError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'SignalingError';
    this.code = code;
  }
}

/** The WebSocket URL for a room on the same host as the page. */
export function roomSocketUrl(roomId, loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws/${encodeURIComponent(roomId)}`;
}

/**
 * One WebSocket connection. Single use: when it closes, make a new one (see Backoff).
 * Callbacks: onNotification(method, data), onClose({code, reason, expected}).
 */
export class Signaling {
  constructor(url, { requestTimeoutMs = 15000, welcomeTimeoutMs = 10000 } = {}) {
    this.url = url;
    this.requestTimeoutMs = requestTimeoutMs;
    this.welcomeTimeoutMs = welcomeTimeoutMs;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer, method}
    this.ws = null;
    this.closed = false;
    this.closingOnPurpose = false;
    this.welcome = null;
    this.onNotification = () => {};
    this.onClose = () => {};
  }

  /** Opens the socket and resolves with the `welcome` notification data. */
  open() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn, arg) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn(arg);
      };
      const timer = setTimeout(() => {
        settle(reject, new SignalingError('timeout', 'no welcome from the server'));
        this.close();
      }, this.welcomeTimeoutMs);

      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        settle(reject, new SignalingError('closed', String(err)));
        return;
      }
      this.ws = ws;
      ws.onmessage = (ev) => {
        const msg = this._parse(ev.data);
        if (!msg) return;
        if (msg.type === 'notification' && msg.method === 'welcome') {
          this.welcome = msg.data || {};
          settle(resolve, this.welcome);
          return;
        }
        this._dispatch(msg);
      };
      ws.onclose = (ev) => {
        const expected = this.closingOnPurpose;
        this._teardown(new SignalingError('closed', `socket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`));
        settle(reject, new SignalingError('closed', `socket closed before welcome (${ev.code})`));
        this.onClose({ code: ev.code, reason: ev.reason, expected });
      };
      ws.onerror = () => {
        // onclose follows and carries the details.
      };
    });
  }

  /** Sends a request; resolves with response.data, rejects with SignalingError. */
  request(method, data, { timeoutMs = this.requestTimeoutMs } = {}) {
    if (this.closed || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignalingError('closed', `cannot send ${method}: socket not open`));
    }
    const id = this.nextId++;
    const envelope = { type: 'request', id, method };
    if (data !== undefined) envelope.data = data;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError('timeout', `no response to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      try {
        this.ws.send(JSON.stringify(envelope));
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new SignalingError('closed', String(err)));
      }
    });
  }

  /** Closes on purpose: onClose gets expected=true. */
  close(code = 1000, reason = 'bye') {
    this.closingOnPurpose = true;
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) {
      try { this.ws.close(code, reason); } catch { /* ignore */ }
    }
    this._teardown(new SignalingError('closed', 'socket closed by the client'));
  }

  _parse(raw) {
    if (typeof raw !== 'string') return null;
    try {
      const msg = JSON.parse(raw);
      return msg && typeof msg === 'object' ? msg : null;
    } catch {
      console.warn('[signaling] ignoring non-JSON frame', raw);
      return null;
    }
  }

  _dispatch(msg) {
    if (msg.type === 'response') {
      const entry = this.pending.get(msg.id);
      if (!entry) {
        if (msg.ok === false) console.warn('[signaling] unmatched error response', msg);
        return;
      }
      this.pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.ok) entry.resolve(msg.data || {});
      else entry.reject(new SignalingError(msg.error?.code || 'internal', msg.error?.message || ''));
    } else if (msg.type === 'notification') {
      try {
        this.onNotification(msg.method, msg.data || {});
      } catch (err) {
        console.error('[signaling] notification handler failed', msg.method, err);
      }
    }
  }

  _teardown(err) {
    if (this.closed) return;
    this.closed = true;
    for (const [, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(err);
    }
    this.pending.clear();
    if (this.ws) {
      this.ws.onmessage = null;
    }
  }
}

/** Growing reconnect delay: 0.5 s, 1 s, 2 s, 4 s, 8 s, 10 s, 10 s, ... */
export class Backoff {
  constructor({ initialMs = 500, maxMs = 10000, factor = 2 } = {}) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.attempt = 0;
  }
  next() {
    const delay = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return delay;
  }
  reset() {
    this.attempt = 0;
  }
}
