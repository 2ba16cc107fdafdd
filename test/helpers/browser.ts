/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), each run in a fresh
 * profile. Collects console errors and page errors, and saves screenshots under test/artifacts/.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM = process.env.WHARF_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
}

export interface ConsoleProblem {
  text: string;
  url: string;
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions seen so far. */
  problems: ConsoleProblem[];
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function openBrowser(label: string, viewport = { width: 1280, height: 860 }): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'wharf-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
  const page = context.pages()[0] ?? (await context.newPage());
  // Generous for a loaded machine, but a step that cannot happen fails instead of hanging.
  page.setDefaultTimeout(60_000);
  const problems: ConsoleProblem[] = [];
  page.on('console', (msg: ConsoleMessage) => {
    if (msg.type() === 'error') problems.push({ text: msg.text(), url: msg.location().url });
  });
  page.on('pageerror', (err) => problems.push({ text: `uncaught: ${err.message}`, url: page.url() }));
  await mkdir(ARTIFACTS, { recursive: true });
  let n = 0;
  return {
    context,
    page,
    problems,
    async screenshot(name) {
      const path = join(ARTIFACTS, `ui-${label}-${String(++n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
      return path;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `hash` of the UI at `uiUrl` and waits until that route has rendered. */
export async function visit(page: Page, uiUrl: string, hash: string): Promise<void> {
  if (page.url().startsWith(uiUrl)) await page.evaluate((h) => (location.hash = h), hash);
  else await page.goto(`${uiUrl}${hash}`);
  await rendered(page, hash);
}

/** Waits until the UI has finished drawing `hash` (a route it was sent to, or went to by itself). */
export async function rendered(page: Page, hash?: string): Promise<void> {
  await page.waitForFunction(
    (h) => {
      const main = document.getElementById('main');
      return main?.dataset.state === 'ready' && (h === undefined || main.dataset.route === h);
    },
    hash,
    { timeout: 60_000 },
  );
}

/** Controls without an accessible name: buttons, links, inputs, selects. */
export async function unnamedControls(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('button, a[href], input, select, textarea')) {
      const labelled = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el as HTMLInputElement).labels?.length || el.getAttribute('title');
      const text = (el.textContent ?? '').trim();
      if (!labelled && !(el.tagName === 'BUTTON' || el.tagName === 'A' ? text : '')) out.push(el.outerHTML.slice(0, 120));
    }
    return out;
  });
}
