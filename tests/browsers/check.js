// One check of an attnviz page, run inside the page by every browser driver
// (Firefox through puppeteer-core's WebDriver BiDi, WebKit through Selenium).
// Resolves with what it saw; the Python test compares it with the arrays.
async function attnvizCheck() {
  const wait = async (test, ms = 15000) => {
    const start = Date.now();
    while (!test()) {
      if (Date.now() - start > ms) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await wait(() => document.body.dataset.ready === "1");
  const out = { errors: [] };
  const lines = () => Number(document.getElementById("lines").dataset.lines);
  const select = (id, value) => {
    const s = document.getElementById(id);
    s.value = value;
    s.dispatchEvent(new Event("change"));
  };
  // the page opens on its most structured head; the check starts from layer 0, all heads
  select("view", "head");
  select("layer", "0");
  select("head", "all");
  out.tokens = document.querySelectorAll("#left li").length;
  out.text = document.querySelector("#meta dd:nth-of-type(2)").textContent;
  out.swatches = document.querySelectorAll("#legend button").length;
  out.linesAll = lines();
  document.querySelector("#legend button").click();
  out.linesWithoutHead0 = lines();
  out.pressed0 = document.querySelector("#legend button").getAttribute("aria-pressed");
  select("view", "matrix");
  select("layer", "1");
  select("head", "2");
  out.matrixTitle = document.getElementById("matrix").dataset.title;
  out.matrixMax = Number(document.getElementById("matrix").dataset.max);
  select("view", "grid");
  out.gridCells = document.querySelectorAll("#grid button").length;
  out.layerPickerHidden = document.getElementById("layer-label").hidden;
  select("view", "rollout");
  out.rolloutTitle = document.getElementById("matrix").dataset.title;
  out.pwned = window.__pwned === undefined ? null : window.__pwned;
  return out;
}
