// node firefox.mjs PAGE.html CHECK.js -> prints the check's JSON (Firefox via WebDriver BiDi)
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const [page, check] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
  protocol: "webDriverBiDi",
  headless: true,
  args: ["--no-remote"],
});
try {
  const tab = await browser.newPage();
  const errors = [];
  tab.on("pageerror", (error) => errors.push(String(error)));
  tab.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  await tab.goto(pathToFileURL(page).href);
  const source = readFileSync(check, "utf8");
  const result = await tab.evaluate(`${source}\nattnvizCheck()`);
  result.errors = errors;
  result.engine = "firefox " + (await browser.version());
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
