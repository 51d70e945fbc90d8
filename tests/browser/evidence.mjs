// Evidence the browser tests leave or check beyond behaviour: screenshots kept as artifacts
// (artifacts/, git-ignored, kept by CI), and accessibility checks with axe-core.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = process.env.MM_ARTIFACTS_DIR ? path.resolve(process.env.MM_ARTIFACTS_DIR) : path.join(here, 'artifacts');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** Saves a screenshot as artifacts/<name>-<size>.png (size: 'phone' | 'desktop'). */
export async function screenshot(peer, name, size) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}-${size}-${peer.kind}.png`);
  await peer.screenshot(file);
  const bytes = fs.statSync(file).size;
  if (bytes < 2000) throw new Error(`screenshot ${file} is only ${bytes} bytes: the page did not render`);
  return file;
}

/**
 * Runs axe-core's WCAG 2 A/AA rules on the page as it is now; returns one line per violation
 * (rule, where, the elements and axe's summary), [] when clean.
 */
export async function axeViolations(peer, where) {
  const loaded = await peer.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await peer.addScript(AXE);
  const violations = await peer.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return result.violations.map((v) => ({
      id: v.id,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`),
    }));
  });
  return violations.flatMap((v) => v.nodes.map((n) => `[${where}] ${v.id}: ${n}`));
}
