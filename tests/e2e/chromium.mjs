// How every browser suite (tests/e2e/*, ui/e2e) runs Debian's Chromium under playwright-core, and how a
// suite rides out the loads Chromium drops when the host's network changes.
// No imports: each suite passes its own playwright `chromium`.

/** The flags the project runs Chromium with (playwright adds its own on top). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/*
 * Launch options with the flags above, and with one of playwright's defaults undone: it turns off
 * third-party storage partitioning, and a session framed by the UI (its own origin, another site)
 * would then be denied the localStorage that browsers give it, partitioned. The probe launch reads
 * playwright's `--disable-features` list as it really is, so no copy of it is kept here.
 */
/**
 * @param {{ launchServer: (options: { executablePath: string, headless: boolean, args: string[] }) => Promise<{ process: () => { spawnargs: string[] }, close: () => Promise<void> }> }} chromium
 * @param {string} executablePath
 * @returns {Promise<{ executablePath: string, headless: boolean, args: string[], ignoreDefaultArgs?: string[] }>}
 */
export async function launchOptions(chromium, executablePath) {
  const probe = await chromium.launchServer({ executablePath, headless: true, args: CHROMIUM_FLAGS });
  const disabled = probe.process().spawnargs.find((arg) => arg.startsWith('--disable-features=')) ?? '';
  await probe.close();
  if (!disabled) return { executablePath, headless: true, args: CHROMIUM_FLAGS };
  const kept = disabled
    .slice('--disable-features='.length)
    .split(',')
    .filter((feature) => feature !== 'ThirdPartyStoragePartitioning');
  return {
    executablePath,
    headless: true,
    ignoreDefaultArgs: [disabled],
    args: [...CHROMIUM_FLAGS, `--disable-features=${kept.join(',')}`],
  };
}

/**
 * Chromium abandons the loads in flight when the host's network interfaces change
 * (`net::ERR_NETWORK_CHANGED`), and they change here whenever Docker adds or removes a
 * container's interface. Such a load says nothing about the platform, so it is retried rather
 * than failed: the returned function, called from a wait loop, reloads the frame `frameOf()`
 * once for each change seen since the last call, at most `limit` times. `load` loads it again;
 * by default at the URL it has (a page whose URL carries a single-use ticket needs a fresh one).
 *
 * @typedef {{ url: () => string, goto: (url: string, options: { waitUntil: 'load' }) => Promise<unknown> }} Frame
 * @param {{ on: (event: 'requestfailed', listener: (request: { failure: () => { errorText: string } | null }) => void) => unknown }} page
 * @param {() => Frame | null | undefined} frameOf
 * @param {number} [limit]
 * @param {(frame: Frame) => Promise<unknown>} [load]
 * @returns {() => Promise<void>}
 */
export function reloadOnNetworkChange(page, frameOf, limit = 2, load = (frame) => frame.goto(frame.url(), { waitUntil: 'load' })) {
  let changes = 0;
  let reloads = 0;
  page.on('requestfailed', (request) => {
    if (request.failure()?.errorText === 'net::ERR_NETWORK_CHANGED') changes++;
  });
  return async () => {
    const frame = frameOf();
    if (!frame || reloads >= Math.min(changes, limit)) return;
    reloads++;
    console.log(`# the host's network changed during a load; reloading ${frame.url()}`);
    await load(frame);
  };
}
