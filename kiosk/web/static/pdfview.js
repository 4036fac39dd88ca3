/* PDFs in the page with pdf.js (shipped under vendor/pdfjs): one page at a time, as wide as the
   screen, bigger on request, turned by big buttons or a swipe. No download, print or pen buttons,
   and every touch here is seen by the idle timer (Chromium's own viewer hid them in a plugin). */
import * as pdfjs from "./vendor/pdfjs/pdf.min.mjs";

const view = document.getElementById("pdfview");
const sheet = document.getElementById("pdfsheet");
const canvas = document.getElementById("pdfpage");
const counter = document.getElementById("pdfcounter");
const prev = document.getElementById("pdfprev"), next = document.getElementById("pdfnext");
const bigger = document.getElementById("pdfbigger"), smaller = document.getElementById("pdfsmaller");
const vendor = view.getAttribute("data-vendor");
const ZOOMS = [1, 1.5, 2, 3];
let doc = null, at = 1, zoom = 0, drawing = null, again = false;

pdfjs.GlobalWorkerOptions.workerSrc = vendor + "pdf.worker.min.mjs";

const poke = () => { if (window.kioskPoke) window.kioskPoke(); };

async function draw() {
  if (drawing) { again = true; return; }
  const n = at;
  drawing = (async () => {
    const page = await doc.getPage(n);
    const base = page.getViewport({ scale: 1 });
    const width = sheet.clientWidth - 4;
    const scale = (width / base.width) * ZOOMS[zoom];
    const vp = page.getViewport({ scale: scale * (window.devicePixelRatio || 1) });
    canvas.width = Math.floor(vp.width); canvas.height = Math.floor(vp.height);
    canvas.style.width = Math.floor(vp.width / (window.devicePixelRatio || 1)) + "px";
    await page.render({ canvasContext: canvas.getContext("2d"), viewport: vp }).promise;
  })();
  try { await drawing; } finally { drawing = null; }
  counter.textContent = counter.getAttribute("data-fmt").replace("{n}", n).replace("{m}", doc.numPages);
  prev.disabled = n <= 1; next.disabled = n >= doc.numPages;
  bigger.disabled = zoom >= ZOOMS.length - 1; smaller.disabled = zoom <= 0;
  view.setAttribute("data-page", String(n));
  view.setAttribute("data-zoom", String(ZOOMS[zoom]));
  if (again) { again = false; draw(); }
}

function turn(by) {
  const to = Math.min(Math.max(at + by, 1), doc ? doc.numPages : 1);
  if (!doc || to === at) return;
  at = to; sheet.scrollTo(0, 0); poke(); draw();
}
function resize(by) {
  const to = Math.min(Math.max(zoom + by, 0), ZOOMS.length - 1);
  if (to === zoom) return;
  zoom = to; poke(); draw();
}

prev.addEventListener("click", () => turn(-1));
next.addEventListener("click", () => turn(1));
bigger.addEventListener("click", () => resize(1));
smaller.addEventListener("click", () => resize(-1));

// A swipe sideways turns the page, unless the page is enlarged and can itself move sideways.
let x0 = null, y0 = null;
sheet.addEventListener("pointerdown", (e) => { x0 = e.clientX; y0 = e.clientY; });
sheet.addEventListener("pointerup", (e) => {
  if (x0 === null) return;
  const dx = e.clientX - x0, dy = e.clientY - y0; x0 = null;
  const canPan = sheet.scrollWidth > sheet.clientWidth + 2;
  if (Math.abs(dx) > 60 && Math.abs(dx) > 1.5 * Math.abs(dy) && !canPan) turn(dx < 0 ? 1 : -1);
});
sheet.addEventListener("scroll", poke, { passive: true });
window.addEventListener("resize", () => { if (doc) draw(); });

pdfjs.getDocument({
  url: view.getAttribute("data-src"),
  cMapUrl: vendor + "cmaps/", cMapPacked: true,
  standardFontDataUrl: vendor + "standard_fonts/",
  isEvalSupported: false, enableXfa: false,
}).promise.then((d) => {
  doc = d;
  view.classList.remove("loading");
  return draw();
}).catch(() => {
  view.classList.remove("loading");
  view.classList.add("failed");
});
