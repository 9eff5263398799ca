// The chat page end to end in Debian's chromium (headless, driven by playwright-core): attach an image, ask,
// watch the reply stream in, ask a follow-up (the history goes with it), take a screenshot, clear.
// usage: node tests/web/page_test.mjs BASE_URL SCREENSHOT.png IMAGE
import { chromium } from "playwright-core";

const [url, shot, image] = process.argv.slice(2);
const fail = (msg) => { console.error("page test: " + msg); process.exit(1); };
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.setInputFiles("#file", image);
  await page.waitForSelector("#preview", { state: "visible" });
  await page.fill("#max_tokens", "12");
  await page.fill("#num_beams", "1");
  // Count the reply's text updates: a streamed reply arrives in several.
  await page.evaluate(() => {
    window.updates = 0;
    new MutationObserver(() => window.updates++).observe(document.getElementById("log"),
      { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#text", "What is in the image?");
  await page.click("#send");
  await page.waitForSelector(".msg .stats", { timeout: 60000 });
  const msgs = page.locator(".msg");
  if (await msgs.count() !== 2) fail("expected the question and one reply");
  if (await msgs.nth(0).locator("img").count() !== 1) fail("the question does not show its image");
  const reply = await msgs.nth(1).locator("span").innerText();
  const updates = await page.evaluate(() => window.updates);
  const pieces = Number(await msgs.nth(1).getAttribute("data-pieces"));
  if (!reply.length) fail("empty reply");
  // Streamed: the page applied the reply event by event (how many reached it per network read varies).
  if (pieces < 2 || updates < 2) fail(`the reply did not stream (${pieces} events, ${updates} updates)`);
  const stats = await msgs.nth(1).locator(".stats").innerText();
  if (!/tokens\/s/.test(stats)) fail("no tokens/s line: " + stats);
  await page.fill("#text", "How many shapes are there?");
  await page.press("#text", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg .stats").length === 2, null, { timeout: 60000 });
  if (await msgs.count() !== 4) fail("expected two questions and two replies");
  await page.screenshot({ path: shot, fullPage: true });
  await page.click("#clear");
  if (await msgs.count() !== 0) fail("clear left messages");
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log(`page test: ok (first reply ${JSON.stringify(reply)}, ${pieces} events, ${updates} updates; ${stats})`);
} finally {
  await browser.close();
}
