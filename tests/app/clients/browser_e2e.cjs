// Drives samples/web in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no
// browser download). Started by tests/clients/test_browser.py, which checks the tokens in the emulator.
//
// The page is served from its own origin, so every API call is cross-origin (CORS preflights).
// Proactive refresh without waiting an hour: Playwright's clock API fakes the page's Date and timers,
// then jumps 51 minutes ahead, so the credential's own timer (due 10 minutes before the 60-minute
// token expires) fires and calls the page's tokenRefresher; the network stays real.
//
// Usage: node browser_e2e.cjs '<json: {pageUrl, apiBase, user, screenshot, executablePath}>'
// At each checkpoint it prints one JSON line {"checkpoint": name, ...what the page showed} and waits
// for a line on stdin, so the test can ask the emulator about the tokens at that very moment (before
// "sign out everywhere" revokes them). Exits non-zero on any failure.
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const config = JSON.parse(process.argv[2]);
const STEP_TIMEOUT_MS = 20000;
const consoleErrors = []; // includes Chromium's own "Failed to load resource" line for each 4xx
const pageErrors = []; // uncaught exceptions and unhandled rejections in the page
const apiCalls = [];

const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Report what the page shows now, then wait (bounded) until the test says go on. */
async function checkpoint(name, data) {
  console.log(JSON.stringify({ checkpoint: name, ...data }));
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no go-ahead after ${name}`)), 60000); });
  try {
    const { done } = await Promise.race([stdinLines.next(), timeout]);
    if (done) throw new Error(`stdin closed at ${name}`);
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const browser = await chromium.launch({ executablePath: config.executablePath, headless: true, timeout: 60000 });
  try {
    const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("response", (response) => {
      if (response.url().startsWith(config.apiBase)) {
        apiCalls.push({ method: response.request().method(), url: response.url(), status: response.status() });
      }
    });
    await page.clock.install(); // before the page's scripts run: they get the fake Date and timers

    const url = `${config.pageUrl}/?api=${encodeURIComponent(config.apiBase)}`;
    await page.goto(url, { waitUntil: "load" });
    const text = (id) => page.locator(`#${id}`).textContent();
    const refreshCountIs = (n) => page.waitForFunction((n) => document.getElementById("refresh-count").textContent === String(n), n);

    // 1. sign in: the page shows the identity, the scopes, the expiry and the token the credential holds
    await page.getByLabel("User name").fill(config.user);
    await page.getByRole("button", { name: "Sign in and get a token" }).click();
    await page.locator("#session:not([hidden]), #error:not([hidden])").first().waitFor();
    if (await page.locator("#error").isVisible()) throw new Error(`sign-in failed on the page: ${await text("error")}`);
    await page.waitForFunction(() => document.getElementById("token").textContent.length > 20);
    const signedIn = {
      apiBaseField: await page.locator("#api-base").inputValue(),
      userId: await text("user-id"),
      scopes: await text("scopes"),
      expiresOn: await text("expires-on"),
      expiresIn: await text("expires-in"),
      status: await text("status"),
      token: await text("token"),
    };
    await checkpoint("signed-in", { signedIn });

    // 2. proactive: 51 minutes later (page clock only), the credential refreshes by itself
    await page.clock.fastForward("51:00");
    await refreshCountIs(1);
    const proactive = { token: await text("token"), lastRefresh: await text("last-refresh") };

    // 3. "Refresh now" forces one
    await page.getByRole("button", { name: "Refresh now" }).click();
    await refreshCountIs(2);
    await page.waitForFunction((old) => document.getElementById("token").textContent !== old, proactive.token);
    const manual = { token: await text("token"), lastRefresh: await text("last-refresh"), status: await text("status") };
    await page.screenshot({ path: config.screenshot, fullPage: true });
    await checkpoint("refreshed", { proactive, manual });

    // 4. "Sign out everywhere" revokes (the test then asks the emulator)
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Signed out everywhere"));
    const signedOut = { status: await text("status"), sessionHidden: await page.locator("#session").isHidden() };
    await checkpoint("signed-out", { signedOut });

    // 5. the service's error message is shown: no scope ticked -> 400 from the API
    for (const box of await page.locator("input[name=scope]").all()) await box.uncheck();
    await page.getByRole("button", { name: "Sign in and get a token" }).click();
    await page.locator("#error").waitFor({ state: "visible" });
    const errorText = await text("error");

    console.log(JSON.stringify({ checkpoint: "done", errorText, pageOrigin: new URL(page.url()).origin, apiCalls, consoleErrors, pageErrors }));
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0), // stdin stays open: do not wait for it
  (error) => {
    console.error(error?.stack || String(error));
    console.error(JSON.stringify({ consoleErrors, pageErrors, apiCalls }));
    process.exit(1);
  },
);
