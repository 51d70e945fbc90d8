// Looks at the pictures a page decodes, not only at how many: every decoded frame of every
// remote camera is compared with what Chromium's fake camera draws, a flat background
// (RGB 0,135,0) with a bright green sector ("pacman") in a circle of a quarter of the height
// around the centre, small squares in the corners and a time stamp at the top left. A frame
// decoded against a reference the decoder never received shows blocks of an older picture
// (parts of the sector where it no longer is); a frozen picture does not.
//
// Also the two ways the tests make a meeting suffer: packets dropped on their way to the
// server (nftables, in the test's own network namespace) and busy loops beside the browsers.

import { spawn, spawnSync } from 'node:child_process';

/** Chromium's fake camera colours, and how far a decoded pixel may be from one of them. */
export const FAKE_CAMERA = { background: [0, 135, 0], pacman: [74, 255, 30], tolerance: 90 };
/**
 * A frame is corrupted when more than this share of its judged pixels disagrees with the
 * picture that fits best. Clean frames score at most 0.005 (codec and scaling); frames
 * decoded against a lost reference scored 0.010 to 0.045.
 */
export const CORRUPTED_SHARE = 0.01;

/**
 * Starts the probe in `peer`'s page: a MediaStreamTrackProcessor reads every decoded frame of
 * each remote camera track (found again every 250 ms, so that a re-created consumer is
 * followed), draws it at 128x72 and compares it with the fake camera's picture: a flat
 * background with, in a circle of radius H/4 around the centre, a sector from angle 0 to an
 * angle that grows with time (fitted to each frame). The share of the pixels that disagree
 * with the best-fitting picture is the frame's score; `window.__pictures` holds the counts.
 */
export function startPictureProbe(peer) {
  return peer.evaluate(({ background, pacman, tolerance, corruptedShare }) => {
    if (window.__pictures) return;
    const W = 128;
    const H = 72;
    const R = H / 4;
    const diff = (d, i, c) => Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]);
    // Each pixel's part of the picture: 'outside' the circle (background), 'inside' it (the
    // sector or background, by angle), or ignored: the corner squares, the time stamp at the
    // top left, and a band along the circle where scaling blends the two colours.
    const outside = [];
    const inside = []; // [pixel, angle in whole degrees]
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inCorner = (x < 14 || x >= W - 14) && (y < 12 || y >= H - 12);
        const inStamp = x < W * 0.45 && y < 12;
        if (inCorner || inStamp) continue;
        const dx = x + 0.5 - W / 2;
        const dy = y + 0.5 - H / 2;
        const r = Math.hypot(dx, dy);
        if (r > R + 2) outside.push(y * W + x);
        else if (r < R - 2 && r > 3) inside.push([y * W + x, Math.floor(((Math.atan2(dy, dx) * 180) / Math.PI + 360) % 360)]);
      }
    }
    const counted = outside.length + inside.length;
    // Pixels within this many degrees of the sector's edges (0 and the fitted angle) are blends.
    const EDGE = 8;
    const nearEdge = (a, theta) => {
      const d1 = Math.min(a, 360 - a);
      const d2 = Math.min(Math.abs(a - theta), 360 - Math.abs(a - theta));
      return d1 < EDGE || d2 < EDGE;
    };
    /** Share of the pixels that disagree with the fake camera's picture that fits best. */
    const judge = (d) => {
      let wrong = 0;
      for (const p of outside) if (diff(d, p * 4, background) > tolerance) wrong += 1;
      const pac = new Array(360).fill(0);
      const bg = new Array(360).fill(0);
      for (const [p, a] of inside) {
        const toBg = diff(d, p * 4, background);
        const toPac = diff(d, p * 4, pacman);
        if (Math.min(toBg, toPac) > tolerance) wrong += 1; // neither colour
        else if (toPac < toBg) pac[a] += 1;
        else bg[a] += 1;
      }
      // The sector covers [0, theta): best theta by prefix sums.
      let best = 0;
      let bestMiss = Infinity;
      let bgBefore = 0;
      let pacAfter = pac.reduce((x, y) => x + y, 0);
      for (let theta = 0; theta <= 360; theta++) {
        const miss = bgBefore + pacAfter;
        if (miss < bestMiss) { bestMiss = miss; best = theta; }
        if (theta < 360) { bgBefore += bg[theta]; pacAfter -= pac[theta]; }
      }
      for (let a = 0; a < 360; a++) {
        if (nearEdge(a, best)) continue;
        wrong += a < best ? bg[a] : pac[a];
      }
      return wrong / counted;
    };
    const canvas = new OffscreenCanvas(W, H);
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const state = { tracks: {}, errors: [] };
    window.__pictures = state;
    const watch = (track, peerId) => {
      const entry = { peerId, frames: 0, corrupted: 0, worstShare: 0, corruptedAt: [] };
      state.tracks[track.id] = entry;
      const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      const pump = async () => {
        for (;;) {
          const { value: frame, done } = await reader.read();
          if (done) return;
          try {
            g.drawImage(frame, 0, 0, W, H);
            const share = judge(g.getImageData(0, 0, W, H).data);
            entry.frames += 1;
            if (share > corruptedShare) {
              entry.corrupted += 1;
              entry.corruptedAt.push(new Date().toISOString().slice(11, 23));
            }
            if (share > entry.worstShare) {
              entry.worstShare = share;
              entry.worstSize = `${frame.codedWidth}x${frame.codedHeight}`;
              // The worst frame as the probe saw it, kept for the failure report.
              const big = new OffscreenCanvas(frame.displayWidth, frame.displayHeight);
              big.getContext('2d').drawImage(frame, 0, 0);
              big.convertToBlob({ type: 'image/png' })
                .then((b) => new Promise((ok) => { const f = new FileReader(); f.onload = () => ok(f.result); f.readAsDataURL(b); }))
                .then((url) => { entry.worstPicture = url; })
                .catch((err) => state.errors.push(String(err)));
            }
          } finally {
            frame.close();
          }
        }
      };
      pump().catch((err) => state.errors.push(String(err)));
    };
    const scan = () => {
      for (const tile of document.querySelectorAll('.tile[data-source="webcam"]')) {
        const peerId = tile.dataset.peerId;
        if (!peerId || peerId === window.meeting?.peerId) continue;
        const video = tile.querySelector('video');
        const track = video?.srcObject?.getVideoTracks?.()[0];
        if (track && !state.tracks[track.id]) watch(track, peerId);
      }
    };
    scan();
    setInterval(scan, 250);
  }, { ...FAKE_CAMERA, corruptedShare: CORRUPTED_SHARE });
}

/** What the probe saw in `peer`'s page, summed per remote peer. */
export async function pictureReport(peer) {
  const state = await peer.evaluate(() => window.__pictures);
  const byPeer = {};
  for (const t of Object.values(state?.tracks || {})) {
    const e = (byPeer[t.peerId] ||= { frames: 0, corrupted: 0, worstShare: 0, corruptedAt: [] });
    e.frames += t.frames;
    e.corrupted += t.corrupted;
    e.corruptedAt.push(...t.corruptedAt.slice(0, 10));
    if (t.worstShare >= e.worstShare) Object.assign(e, { worstShare: Number(t.worstShare.toFixed(3)), worstSize: t.worstSize, worstPicture: t.worstPicture });
  }
  return { byPeer, errors: state?.errors || [] };
}

function nft(script) {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.error?.code === 'ENOENT') throw new Error('nft not found: install it with `apt-get install nftables` (the loss tests drop packets with an nftables rule)');
  if (r.status !== 0) throw new Error(`nft failed (${r.status}): ${r.stderr}\n(the loss tests need root, as scripts/test runs them, in a private network namespace)`);
}

/**
 * Drops `percent` % of the UDP datagrams sent to the ports `min`..`max` (the server's media
 * ports: what publishers send), chosen at random. Returns a function that removes the rule
 * and returns how many datagrams it dropped.
 */
export function dropUdpTo({ min, max, percent }) {
  return dropUdp({ hook: 'input', match: `udp dport ${min}-${max}`, percent });
}

/**
 * Drops `percent` % of the UDP datagrams sent from the ports `min`..`max` (what the server
 * sends to subscribers), chosen at random; returns the same remover as dropUdpTo.
 */
export function dropUdpFrom({ min, max, percent }) {
  return dropUdp({ hook: 'output', match: `udp sport ${min}-${max}`, percent });
}

function dropUdp({ hook, match, percent }) {
  const table = `mm_loss_${hook}_${process.pid}`;
  nft(`table inet ${table} {
  chain ${hook} {
    type filter hook ${hook} priority 0; policy accept;
    ${match} numgen random mod 100 < ${percent} counter drop
  }
}
`);
  return () => {
    const listed = spawnSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' }).stdout;
    nft(`delete table inet ${table}\n`);
    return Number((listed.match(/counter packets (\d+)/) || [])[1]);
  };
}

/** `n` busy loops (separate processes) competing for the CPU with the browsers and the server. */
export function busyLoops(n) {
  const procs = [];
  for (let i = 0; i < n; i++) procs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return () => { for (const p of procs) p.kill('SIGKILL'); };
}
