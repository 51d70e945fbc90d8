// The two browsers the tests drive, behind one small interface so that a test body runs in
// either: Chromium through playwright-core, Firefox ESR through puppeteer-core (WebDriver
// BiDi). Neither package downloads a browser: both drive the Debian packages.
//
// A test gets a `Browser` (launchChromium / launchFirefox), opens participants with
// `browser.openPeer(url, label, options)` and talks to each page through `Peer` (evaluate,
// click, fill, press, screenshot), never through the driver's own page object.

import fs from 'node:fs';
import { LineLog } from './log.mjs';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/lib/chromium/chromium';
export const FIREFOX_PATH = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';

export const CHROMIUM_ARGS = [
  '--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-gpu',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--auto-select-desktop-capture-source=Entire screen',
  // Headless pages are never "visible" to the user: keep timers and rendering at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/**
 * Firefox preferences for headless runs with fake devices on a loopback-only network.
 * `permission.fake` matters beyond the prompt: without it a fake capture does not count as
 * "actively capturing", Firefox then gathers only its default-route address (none in a
 * private network namespace), never 127.0.0.1, and ICE fails.
 */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.navigator.permission.fake': true,
  'media.peerconnection.ice.loopback': true,
  // Let pages play sound without a click, like Chromium's fake-UI flag does.
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // Nothing in the profile should try to reach the network.
  'app.update.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};

/** Fails (never skips) with what to install when a browser is missing. */
export function checkBrowser(kind) {
  if (kind === 'chromium' && !fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}: install it with \`apt-get install chromium\`, or point CHROMIUM_PATH at a Chromium binary`);
  }
  if (kind === 'firefox' && !fs.existsSync(FIREFOX_PATH)) {
    throw new Error(`Firefox not found at ${FIREFOX_PATH}: install it with \`apt-get install firefox-esr\`, or point FIREFOX_PATH at a Firefox binary`);
  }
}

async function importOrExplain(name) {
  try {
    return await import(name);
  } catch (err) {
    throw new Error(`${name} is not installed (${err.message}): run \`npm ci\` in tests/browser`);
  }
}

export const DESKTOP = { width: 800, height: 600 };
export const PHONE = { width: 390, height: 844 };
export const WIDE = { width: 1280, height: 800 };

/** One participant's page, whichever browser it runs in. */
export class Peer {
  constructor({ label, kind, page, close }) {
    this.label = label;
    this.kind = kind; // 'chromium' | 'firefox'
    this.page = page; // the driver's page; tests use the methods below
    this._close = close;
    this.log = new LineLog(300);
    this.peerId = null;
    page.on('console', (msg) => this.log.write(`[${label}] ${msg.type()}: ${msg.text()}\n`));
    page.on('pageerror', (err) => this.log.write(`[${label}] pageerror: ${err.stack || err.message || err}\n`));
  }

  /** Runs `fn(arg)` in the page and returns its (JSON-able) result. */
  evaluate(fn, arg) {
    return arg === undefined ? this.page.evaluate(fn) : this.page.evaluate(fn, arg);
  }

  click(selector) {
    return this.page.click(selector);
  }

  /** Replaces the value of a text input as typing would (input events included). */
  async fill(selector, value) {
    if (this.kind === 'chromium') return this.page.fill(selector, value);
    await this.page.$eval(selector, (el) => { el.value = ''; el.focus(); });
    if (value) await this.page.type(selector, value);
    return undefined;
  }

  /** Picks an <option> by value, as a person choosing in the list would. */
  select(selector, value) {
    return this.kind === 'chromium' ? this.page.selectOption(selector, value) : this.page.select(selector, value);
  }

  /** A key press on the focused element ("Enter", "m", "Escape"). */
  press(key) {
    return this.page.keyboard.press(key);
  }

  screenshot(file) {
    return this.page.screenshot({ path: file });
  }

  /**
   * Runs a script file (e.g. axe-core) in the page. Evaluated through the driver rather than
   * added as a <script> tag: the server's Content-Security-Policy (script-src 'self') rightly
   * refuses inline scripts, and tests must not weaken it.
   */
  addScript(file) {
    const source = fs.readFileSync(file, 'utf8');
    return this.page.evaluate(`${source}\n;undefined`);
  }

  goto(url) {
    return this.page.goto(url);
  }

  async setViewport({ width, height }) {
    if (this.kind === 'chromium') await this.page.setViewportSize({ width, height });
    else await this.page.setViewport({ width, height });
  }

  close() {
    return this._close();
  }
}

/** Headless Chromium with fake camera, microphone and screen. */
export async function launchChromium({ args = [] } = {}) {
  checkBrowser('chromium');
  const { chromium } = await importOrExplain('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, ...args] });
  return {
    kind: 'chromium',
    async openPeer(url, label, { initScript, viewport = DESKTOP, permissions = [] } = {}) {
      const context = await browser.newContext({ permissions: ['camera', 'microphone', ...permissions], viewport });
      if (initScript) await context.addInitScript(initScript);
      const page = await context.newPage();
      const peer = new Peer({ label, kind: 'chromium', page, close: () => context.close() });
      page.on('crash', () => peer.log.write(`[${label}] page crashed\n`));
      await page.goto(url);
      return peer;
    },
    close: () => browser.close(),
  };
}

/** Headless Firefox ESR over WebDriver BiDi, with fake camera and microphone. */
export async function launchFirefox() {
  checkBrowser('firefox');
  const puppeteer = (await importOrExplain('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX_PATH,
    headless: true,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
  return {
    kind: 'firefox',
    async openPeer(url, label, { initScript, viewport = DESKTOP } = {}) {
      // One user context per participant: its own storage, like a separate person.
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      const peer = new Peer({ label, kind: 'firefox', page, close: () => context.close() });
      await page.setViewport(viewport);
      if (initScript) await page.evaluateOnNewDocument(initScript);
      await page.goto(url);
      return peer;
    },
    close: () => browser.close(),
  };
}

export function launch(kind) {
  return kind === 'firefox' ? launchFirefox() : launchChromium();
}
