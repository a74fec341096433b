// Shared pieces of the browser journeys: one headless Chromium per user, step
// timeouts, polling, WebRTC stats read from the page, a PNG generator and
// screenshots. The daemon is started by ../run, which passes its URL in QM_URL.
import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..', '..');

export const BASE_URL = process.env.QM_URL || '';
if (!BASE_URL) throw new Error('QM_URL is not set: run the journeys through tests/browser/run');
const url = new URL(BASE_URL);
if (url.hostname !== '127.0.0.1') throw new Error('the journeys only talk to 127.0.0.1, not ' + url.hostname);

export const CHROMIUM = process.env.QM_CHROMIUM || '/usr/bin/chromium';
/** Where every run writes its screenshots; `run --update-screenshots` copies the chosen ones to docs/. */
export const ARTIFACTS = process.env.QM_ARTIFACTS || join(here, '..', 'artifacts');
const DOCS_SHOTS = join(REPO, 'docs', 'screenshots');

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--ignore-certificate-errors',
];

const VIEWPORT = { width: 1100, height: 680 };
/** The emulated monitor; Chromium's fake screen capture has its size. */
const SCREEN = { width: 1280, height: 720 };

/** Milliseconds since `t0`, for the timing log. */
const since = (t0) => `${Date.now() - t0} ms`;

/**
 * Run one step with its own deadline and log how long it took.
 * @template T
 * @param {string} name
 * @param {number} ms
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function step(name, ms, fn) {
  const t0 = Date.now();
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" timed out after ${ms} ms`)), ms);
  });
  try {
    const out = await Promise.race([fn(), deadline]);
    console.log(`  ✓ ${name} (${since(t0)})`);
    return out;
  } catch (err) {
    console.log(`  ✗ ${name} (${since(t0)})`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Poll `read` until `ok(value)` holds; the last value is in the error otherwise.
 * @template T
 * @param {() => Promise<T>} read
 * @param {(v: T) => boolean} ok
 * @param {{timeout?: number, interval?: number, what?: string}} [opts]
 * @returns {Promise<T>}
 */
export async function poll(read, ok, opts = {}) {
  const { timeout = 20_000, interval = 250, what = 'condition' } = opts;
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`${what} not reached in ${timeout} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Record every RTCPeerConnection the page creates, for the media checks. Injected
 * by the test harness through the DevTools protocol before the app's modules run:
 * the app itself exposes nothing and its CSP stays as it is.
 */
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  const all = [];
  Object.defineProperty(window, '__qmTestPeers', { value: all });
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      all.push(this);
    }
  };
}

/**
 * One user's browser: a fresh profile in its own headless Chromium.
 */
export class Browser {
  /** @param {string} label */
  constructor(label) {
    this.label = label;
    this.context = null;
    this.page = null;
    this.profile = '';
    /** Console errors and page errors, shown when a journey fails. */
    this.errors = [];
  }

  async launch() {
    this.profile = await mkdtemp(join(tmpdir(), `qm-browser-${this.label}-`));
    this.context = await chromium.launchPersistentContext(this.profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      ignoreHTTPSErrors: true,
      viewport: VIEWPORT,
      screen: SCREEN,
      deviceScaleFactor: 1,
      colorScheme: 'light',
      timeout: 30_000,
    });
    this.context.setDefaultTimeout(15_000);
    await this.context.addInitScript(recordPeerConnections);
    this.page = this.context.pages()[0] || (await this.context.newPage());
    this.page.on('console', (m) => {
      if (m.type() === 'error') this.errors.push(`[${this.label} console] ${m.text()}`);
    });
    this.page.on('pageerror', (e) => this.errors.push(`[${this.label} pageerror] ${e.message}`));
    await this.page.goto(BASE_URL + '/', { waitUntil: 'domcontentloaded' });
    return this;
  }

  async close() {
    if (this.context) await this.context.close().catch(() => {});
    this.context = null;
    if (this.profile) await rm(this.profile, { recursive: true, force: true }).catch(() => {});
  }

  /** Sign up through the form and wait for the signed-in shell. */
  async signup(username, displayName, password) {
    const p = this.page;
    await p.getByRole('button', { name: 'Create an account' }).click();
    await p.locator('#username').fill(username);
    await p.locator('#displayName').fill(displayName);
    await p.locator('#password').fill(password);
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.locator('.sidebar .me-text strong', { hasText: displayName }).waitFor();
    // Connected: the WebSocket said `ready` (no banner, socket open).
    await p.waitForFunction(() => !document.body.classList.contains('offline'));
  }

  /** Find someone by search and open the DM with them. */
  async openDmBySearch(query, displayName) {
    const p = this.page;
    await p.getByRole('searchbox', { name: 'Search people' }).fill(query);
    const hit = p.getByRole('list', { name: 'Search results' }).getByRole('button', { name: displayName });
    await hit.click();
    await p.locator('.chat-pane .chat-title', { hasText: displayName }).waitFor();
  }

  /** Open a conversation from the sidebar list. */
  async openConversation(title) {
    const p = this.page;
    await p.getByRole('list', { name: 'Conversations' }).getByRole('button', { name: title }).click();
    await p.locator('.chat-pane .chat-title', { hasText: title }).waitFor();
  }

  /**
   * State and inbound media of every live RTCPeerConnection in the page.
   * @returns {Promise<{state: string, framesDecoded: number, audioBytes: number, width: number, height: number}[]>}
   */
  peerStats() {
    return this.page.evaluate(async () => {
      const pcs = /** @type {RTCPeerConnection[]} */ (window.__qmTestPeers || []).filter((pc) => pc.signalingState !== 'closed');
      return Promise.all(
        pcs.map(async (pc) => {
          const out = { state: pc.connectionState, framesDecoded: 0, audioBytes: 0, width: 0, height: 0 };
          const report = await pc.getStats();
          report.forEach((r) => {
            if (r.type !== 'inbound-rtp') return;
            if (r.kind === 'video') {
              out.framesDecoded += r.framesDecoded || 0;
              if (r.frameWidth) {
                out.width = r.frameWidth;
                out.height = r.frameHeight;
              }
            } else if (r.kind === 'audio') {
              out.audioBytes += r.bytesReceived || 0;
            }
          });
          return out;
        }),
      );
    });
  }

  /** Save a screenshot to the artifacts folder (and to docs/ with --update-screenshots). */
  async screenshot(name) {
    await mkdir(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, name + '.png');
    await this.page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    if (process.env.QM_UPDATE_SCREENSHOTS === '1') {
      await mkdir(DOCS_SHOTS, { recursive: true });
      await copyFile(file, join(DOCS_SHOTS, name + '.png'));
    }
    return file;
  }
}

/** True when every live peer connection is connected and receives video frames and audio. */
export function mediaFlows(stats, peers) {
  return stats.length === peers && stats.every((s) => s.state === 'connected' && s.framesDecoded > 0 && s.audioBytes > 0);
}

// --- a small PNG, made here so the test ships no binary ----------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An RGB PNG of `w`×`h` with a diagonal gradient and a border. */
export function makePng(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const edge = x < 4 || y < 4 || x >= w - 4 || y >= h - 4;
      const i = row + 1 + x * 3;
      raw[i] = edge ? 30 : Math.round((x / w) * 255);
      raw[i + 1] = edge ? 30 : Math.round((y / h) * 200) + 40;
      raw[i + 2] = edge ? 30 : 230;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
