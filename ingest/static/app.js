// The page's behaviour: photo intake, settings, one active job followed live, the result with a
// before/after slider, downloads, and recent pictures kept in this browser.

import {
  ApiProblem,
  FORMATS,
  NetworkError,
  cancelJob,
  fetchResult,
  followJob,
  getJob,
  isTerminal,
  submitJob,
} from "./api.js";
import * as pictures from "./history.js";
import { detectLang, has, lang, safeGet, safeSet, setLang, t } from "./i18n.js";

const DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration";
const PRESETS = [
  ["preset.classic", DEFAULT_PROMPT],
  ["preset.meadow", "Ghibli Studio style, sunny summer meadow, tall cumulus clouds, gentle breeze, hand-drawn anime illustration"],
  ["preset.rain", "Ghibli Studio style, quiet rainy evening, warm glowing windows, soft reflections, hand-drawn anime illustration"],
  ["preset.seaside", "Ghibli Studio style, seaside town, bright blue sky, watercolor background, hand-drawn anime illustration"],
  ["preset.forest", "Ghibli Studio style, deep green forest, dappled sunlight, little forest spirits, hand-drawn anime illustration"],
  ["preset.golden", "Ghibli Studio style, golden hour light, long soft shadows, nostalgic mood, hand-drawn anime illustration"],
];
const SIZE_MIN = 256;
const SIZE_MAX = 1024;
const SIZE_STEP = 64;
const SEED_MAX = 4294967295;
const UPLOAD_MAX_SIDE = 2048; // the server keeps at most 2048 px: no need to upload more
const PASS_THROUGH = new Set(["image/jpeg", "image/png", "image/webp"]);
const JOB_ID = /^[0-9a-f]{32}$/;
const KEYS = { theme: "ghibli.theme", prompt: "ghibli.prompt", size: "ghibli.size", seed: "ghibli.seed", lock: "ghibli.seedLock" };

const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => [...document.querySelectorAll(selector)];

const state = {
  photo: null, // the prepared upload: {blob, name, width, height, url, bytes}
  active: null, // the job being followed: {id, job, source, stop, seenAt}
  shown: null, // what the stage shows: {kind: "active"|"picture"|"error"|"idle", id}
  picture: null, // the shown finished picture: {id, params, blob, url, beforeUrl, source, tookMs, cached}
  ticker: null,
  thumbUrls: [],
  statusText: "",
  link: "live",
  retry: null,
};

/* ---------------- small helpers ---------------- */

function toast(message) {
  const box = $("#toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 3200);
}

function randomSeed() {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return buf[0];
}

function snap(value) {
  return Math.min(SIZE_MAX, Math.max(SIZE_MIN, Math.round(value / SIZE_STEP) * SIZE_STEP));
}

/** Width and height for a longest side, keeping the photo's aspect ratio (as the server does). */
function sizeFor(longest, width, height) {
  if (!width || !height) return null;
  const scale = longest / Math.max(width, height);
  return { width: snap(width * scale), height: snap(height * scale) };
}

function duration(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function clock(when) {
  return new Date(when).toLocaleTimeString(lang(), { hour: "numeric", minute: "2-digit" });
}

function dayAndTime(when) {
  return new Date(when).toLocaleString(lang(), { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
}

function bytes(n) {
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function jobLink(id) {
  return `${location.origin}${location.pathname}#job=${id}`;
}

function setHash(id) {
  const target = id ? `#job=${id}` : " ";
  if ((id && location.hash === `#job=${id}`) || (!id && !location.hash)) return;
  history.replaceState(null, "", id ? target : location.pathname + location.search);
}

async function decode(blob) {
  try {
    return await createImageBitmap(blob);
  } catch {
    return null;
  }
}

/** Draw into a canvas at most `maxSide` px and encode; JPEG gets a white background. */
async function encode(source, maxSide, type, quality = 0.92) {
  const scale = Math.min(1, maxSide / Math.max(source.width, source.height));
  const w = Math.max(1, Math.round(source.width * scale));
  const h = Math.max(1, Math.round(source.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  if (type === "image/jpeg") {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
  }
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, w, h);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, type, quality));
  return { blob, width: w, height: h };
}

async function convert(blob, type) {
  if (blob.type === type) return blob;
  const bitmap = await decode(blob);
  if (!bitmap) throw new Error("unreadable picture");
  const out = await encode(bitmap, Math.max(bitmap.width, bitmap.height), type);
  bitmap.close();
  return out.blob;
}

async function scaled(blob, maxSide, type = "image/jpeg", quality = 0.86) {
  if (!blob) return null;
  const bitmap = await decode(blob);
  if (!bitmap) return null;
  const out = await encode(bitmap, maxSide, type, quality);
  bitmap.close();
  return out.blob;
}

/** Plain words for an error: a title, a sentence, and the server's own detail when it adds to it. */
function explain(error) {
  if (error instanceof NetworkError) {
    return { title: t("error.title"), text: t("error.network"), detail: "" };
  }
  if (error instanceof ApiProblem) {
    const key = `problem.${error.code}`;
    const text = has(key) ? t(key) : error.title || t("error.generic");
    const detail = error.detail && error.detail !== text ? error.detail : "";
    return { title: t("error.title"), text, detail };
  }
  return { title: t("error.title"), text: t("error.generic"), detail: String(error && error.message ? error.message : error) };
}

function explainJob(job) {
  const code = job.error ? job.error.code : "";
  const key = `jobError.${code}`;
  return {
    title: t("jobError.title"),
    text: has(key) ? t(key) : t("jobError.default"),
    detail: job.error ? `${job.error.message} (${code})` : "",
  };
}

/* ---------------- theme and language ---------------- */

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

function applyTheme(choice) {
  const root = document.documentElement;
  if (choice === "light" || choice === "dark") root.dataset.theme = choice;
  else delete root.dataset.theme;
  const effective = root.dataset.theme || (darkQuery.matches ? "dark" : "light");
  root.dataset.effectiveTheme = effective;
  const label = effective === "dark" ? t("theme.toLight") : t("theme.toDark");
  const button = $("#theme-toggle");
  button.setAttribute("aria-label", label);
  button.title = label;
}

function toggleTheme() {
  const next = document.documentElement.dataset.effectiveTheme === "dark" ? "light" : "dark";
  safeSet(KEYS.theme, next);
  applyTheme(next);
}

function toggleLang() {
  setLang(lang() === "zh-CN" ? "en" : "zh-CN", true);
  refreshWords();
}

/** Everything whose words are computed rather than static. */
function refreshWords() {
  applyTheme(safeGet(KEYS.theme));
  renderPresets();
  renderSizes();
  renderLock();
  renderPhotoFacts();
  if (state.shown && state.shown.kind === "active" && state.active) renderJob(state.active.job, true);
  if (state.shown && state.shown.kind === "picture" && state.picture) renderPictureMeta();
  if (state.shown && state.shown.kind === "error" && state.errorInfo) renderError(state.errorInfo);
  renderHistory();
}

/* ---------------- the photo ---------------- */

function showPhotoError(message) {
  const box = $("#photo-error");
  box.textContent = message;
  box.hidden = !message;
}

async function takePhoto(file) {
  showPhotoError("");
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showPhotoError(t("error.notImage"));
    return;
  }
  let blob = file;
  let name = file.name || "photo.jpg";
  let width = 0;
  let height = 0;
  const bitmap = await decode(file);
  if (bitmap) {
    width = bitmap.width;
    height = bitmap.height;
    if (Math.max(width, height) > UPLOAD_MAX_SIDE || !PASS_THROUGH.has(file.type)) {
      const out = await encode(bitmap, UPLOAD_MAX_SIDE, "image/jpeg", 0.92);
      if (out.blob) {
        blob = out.blob;
        ({ width, height } = out);
        name = `${name.replace(/\.[^.]+$/, "") || "photo"}.jpg`;
      }
    }
    bitmap.close();
  }
  state.photo = { blob, name, width, height, bytes: file.size, url: bitmap ? URL.createObjectURL(blob) : null };
  const drop = $("#drop");
  drop.dataset.state = "photo";
  const preview = $("#preview");
  preview.hidden = !state.photo.url;
  $("#no-preview").hidden = Boolean(state.photo.url);
  if (state.photo.url) preview.src = state.photo.url;
  else preview.removeAttribute("src");
  renderPhotoFacts();
  renderSizes();
}

function renderPhotoFacts() {
  const photo = state.photo;
  if (!photo) return;
  const parts = [photo.name];
  if (photo.width) parts.push(`${photo.width} × ${photo.height}`);
  parts.push(bytes(photo.bytes));
  $("#photo-facts").textContent = parts.join(" · ");
}

function bindPhotoIntake() {
  const fileInput = $("#file");
  const cameraInput = $("#camera");
  $("#choose").addEventListener("click", () => fileInput.click());
  $("#change").addEventListener("click", () => fileInput.click());
  $("#take").addEventListener("click", () => cameraInput.click());
  for (const input of [fileInput, cameraInput]) {
    input.addEventListener("change", () => {
      if (input.files && input.files[0]) takePhoto(input.files[0]);
      input.value = "";
    });
  }

  // Drop anywhere on the page; the drop zone lights up while a file is dragged over the window.
  const drop = $("#drop");
  let depth = 0;
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    drop.classList.add("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) drop.classList.remove("dragging");
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    drop.classList.remove("dragging");
    const file = [...event.dataTransfer.files].find((f) => !f.type || f.type.startsWith("image/"));
    if (file) takePhoto(file);
    else showPhotoError(t("error.notImage"));
  });

  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    const file = files.find((f) => f.type.startsWith("image/"));
    if (!file) return;
    event.preventDefault();
    takePhoto(file);
    toast(t("toast.pasted"));
  });
}

/* ---------------- settings: prompt, size, seed ---------------- */

function renderPresets() {
  const box = $("#presets");
  const current = $("#prompt").value.trim();
  if (!box.children.length) {
    for (const [key, prompt] of PRESETS) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.dataset.key = key;
      chip.addEventListener("click", () => {
        $("#prompt").value = prompt;
        safeSet(KEYS.prompt, prompt);
        renderPresets();
      });
      box.append(chip);
    }
  }
  PRESETS.forEach(([key, prompt], i) => {
    const chip = box.children[i];
    chip.textContent = t(key);
    chip.title = prompt;
    chip.setAttribute("aria-pressed", String(current === prompt));
  });
}

function selectedLongest() {
  const checked = $("#sizes input:checked");
  return checked ? Number(checked.value) : 768;
}

function renderSizes() {
  const photo = state.photo;
  for (const dims of $$("#sizes .dims")) {
    const size = photo ? sizeFor(Number(dims.dataset.long), photo.width, photo.height) : null;
    dims.textContent = size ? `${size.width} × ${size.height}` : photo ? t("size.auto") : `${dims.dataset.long} px`;
  }
}

function isLocked() {
  return $("#lock").getAttribute("aria-pressed") === "true";
}

function renderLock() {
  const locked = isLocked();
  const lock = $("#lock");
  const label = locked ? t("seed.unlock") : t("seed.lock");
  lock.setAttribute("aria-label", label);
  lock.title = label;
  $("#seed-hint").textContent = locked ? t("seed.hintLocked") : t("seed.hintUnlocked");
}

/** The seed field's value, null when empty; undefined (and an inline error) when invalid. */
function readSeed() {
  const raw = $("#seed").value.trim();
  const error = $("#seed-error");
  error.hidden = true;
  $("#seed").removeAttribute("aria-invalid");
  if (!raw) return null;
  if (!/^\d+$/.test(raw) || Number(raw) > SEED_MAX) {
    error.textContent = t("seed.invalid");
    error.hidden = false;
    $("#seed").setAttribute("aria-invalid", "true");
    return undefined;
  }
  return Number(raw);
}

function bindSettings() {
  const prompt = $("#prompt");
  prompt.value = safeGet(KEYS.prompt) || DEFAULT_PROMPT;
  prompt.addEventListener("input", () => {
    safeSet(KEYS.prompt, prompt.value);
    renderPresets();
  });

  const savedSize = safeGet(KEYS.size);
  const sizeInput = savedSize && $(`#sizes input[value="${CSS.escape(savedSize)}"]`);
  if (sizeInput) sizeInput.checked = true;
  for (const input of $$("#sizes input")) {
    input.addEventListener("change", () => safeSet(KEYS.size, input.value));
  }

  const seed = $("#seed");
  const locked = safeGet(KEYS.lock) === "1";
  $("#lock").setAttribute("aria-pressed", String(locked));
  seed.value = locked && safeGet(KEYS.seed) ? safeGet(KEYS.seed) : String(randomSeed());
  seed.addEventListener("input", () => {
    if (readSeed() !== undefined && isLocked()) safeSet(KEYS.seed, seed.value.trim());
  });
  $("#dice").addEventListener("click", () => {
    seed.value = String(randomSeed());
    readSeed();
    if (isLocked()) safeSet(KEYS.seed, seed.value);
  });
  $("#lock").addEventListener("click", () => {
    const now = !isLocked();
    $("#lock").setAttribute("aria-pressed", String(now));
    safeSet(KEYS.lock, now ? "1" : "0");
    if (now) safeSet(KEYS.seed, seed.value.trim());
    renderLock();
  });
}

/* ---------------- the stage ---------------- */

function showView(kind, id = null) {
  state.shown = { kind, id };
  $("#stage").dataset.view = kind === "active" ? "progress" : kind === "picture" ? "result" : kind;
  for (const item of $$(".history-item")) {
    item.setAttribute("aria-current", String(kind === "picture" && item.dataset.id === id));
  }
}

function setBusy(busy, percent = null) {
  const go = $("#go");
  go.disabled = busy;
  const label = busy ? t("go.busy") + (percent !== null ? ` ${percent}%` : "") : t("go");
  $("#go-label").textContent = label;
}

function statusLine(job) {
  switch (job.status) {
    case "queued":
      return t("status.queued");
    case "running":
      return job.phase === "in_queue" ? t("status.inQueue") : t("status.running");
    case "retrying":
      return t("status.retrying", { n: job.attempt + 1 });
    case "waiting_for_quota":
      return job.resume_at ? t("status.quota", { time: clock(job.resume_at) }) : t("status.quotaSoon");
    case "succeeded":
      return t("status.done");
    case "cancelled":
      return t("status.cancelled");
    default:
      return t("jobError.title");
  }
}

function phaseWords(job) {
  const key = job.status === "running" ? `phase.${job.phase || "starting"}` : `phase.${job.status}`;
  if (has(key)) return t(key);
  return job.phase || t("fact.unknown");
}

/** The percentage to show: never backwards within one attempt (a Space may report several
 * progress series, e.g. denoising and then painting), and 100 only once it succeeded. */
function shownPercent(job) {
  const active = state.active;
  const raw = Math.round((job.progress || 0) * 100);
  if (job.status === "succeeded") return 100;
  if (!active || job.status !== "running") return Math.min(raw, 99);
  if (active.attempt !== job.attempt) {
    active.attempt = job.attempt;
    active.peak = 0;
  }
  active.peak = Math.max(active.peak || 0, Math.min(raw, 99));
  return active.peak;
}

function renderJob(job, force = false) {
  const percent = shownPercent(job);
  setBusy(true, job.status === "running" ? percent : null);
  if (!state.shown || state.shown.kind !== "active") return;
  let line = statusLine(job);
  if (state.link === "reconnecting") line = t("status.reconnecting");
  if (line !== state.statusText || force) {
    state.statusText = line;
    $("#status-text").textContent = line;
  }
  const bar = $("#bar");
  bar.style.setProperty("--p", `${percent}%`);
  bar.setAttribute("aria-valuenow", String(percent));
  const waiting = job.status !== "running" || job.phase === "in_queue" || job.phase === "starting";
  bar.dataset.waiting = String(waiting && percent === 0);
  bar.dataset.paused = String(job.status === "waiting_for_quota" || job.status === "retrying");
  $("#f-percent").textContent = `${percent}%`;
  $("#f-phase").textContent = phaseWords(job);
  const queue = job.queue;
  const inQueue = job.status === "running" && queue && queue.rank !== null && queue.rank !== undefined;
  $("#f-queue-wrap").hidden = !inQueue;
  if (inQueue) {
    $("#f-queue").textContent = queue.size
      ? t("fact.queuePos", { rank: queue.rank + 1, size: queue.size })
      : t("fact.queuePosNoSize", { rank: queue.rank + 1 });
  }
  const quota = job.status === "waiting_for_quota";
  $("#quota-note").hidden = !quota;
  $("#cancel").disabled = false;
  tick();
}

/** Once a second: elapsed time and the estimate of what is left. */
function tick() {
  const active = state.active;
  if (!active || !state.shown || state.shown.kind !== "active") return;
  const job = active.job;
  const now = Date.now();
  $("#f-elapsed").textContent = duration(now - Date.parse(job.created_at));
  let left = null;
  if (job.status === "waiting_for_quota" && job.resume_at) {
    left = Date.parse(job.resume_at) - now;
  } else if (job.status === "running" && job.phase === "in_queue" && job.queue && job.queue.eta_seconds != null) {
    left = job.queue.eta_seconds * 1000 - (now - active.seenAt);
  } else if (job.status === "running" && job.progress > 0.03 && job.started_at) {
    const ran = now - Date.parse(job.started_at);
    left = (ran * (1 - job.progress)) / job.progress;
  }
  $("#f-eta").textContent = left === null ? t("fact.unknown") : t("fact.about", { t: duration(Math.max(0, left)) });
}

function startTicker() {
  if (!state.ticker) state.ticker = setInterval(tick, 1000);
}

function stopTicker() {
  clearInterval(state.ticker);
  state.ticker = null;
}

function renderError(info) {
  state.errorInfo = info;
  $("#error-title").textContent = info.title;
  $("#error-text").textContent = info.text;
  $("#error-detail").textContent = info.detail || "";
  $("#error-detail").hidden = !info.detail;
  $("#retry").hidden = !state.retry;
}

function showError(info, retry = null) {
  state.retry = retry;
  renderError(info);
  showView("error");
}

/* ---------------- a job's life ---------------- */

async function paint({ source = state.photo, params = null } = {}) {
  if (!source) {
    showPhotoError(t("go.needPhoto"));
    $("#choose").focus();
    return;
  }
  if (state.active) return;
  let chosen = params;
  if (!chosen) {
    let seed = readSeed();
    if (seed === undefined) {
      $("#seed").focus();
      return;
    }
    if (!isLocked() || seed === null) {
      seed = randomSeed();
      $("#seed").value = String(seed);
    }
    const size = sizeFor(selectedLongest(), source.width, source.height);
    const prompt = $("#prompt").value.trim();
    chosen = { prompt: prompt || undefined, width: size && size.width, height: size && size.height, seed };
  }
  state.active = { id: null, job: null, source, stop: null, seenAt: Date.now() };
  state.statusText = "";
  showView("active");
  $("#status-text").textContent = t("status.submitting");
  $("#bar").dataset.waiting = "true";
  $("#f-percent").textContent = "0%";
  $("#f-phase").textContent = t("fact.unknown");
  $("#f-eta").textContent = t("fact.unknown");
  $("#f-elapsed").textContent = "0:00";
  $("#f-queue-wrap").hidden = true;
  $("#quota-note").hidden = true;
  $("#cancel").disabled = true;
  setBusy(true);
  let job;
  try {
    job = await submitJob(source.blob, source.name, chosen);
  } catch (error) {
    state.active = null;
    setBusy(false);
    showError(explain(error), () => paint({ source, params: chosen }));
    return;
  }
  follow(job, source);
}

function follow(job, source) {
  state.active = { id: job.id, job, source, stop: null, seenAt: Date.now() };
  state.link = "live";
  setHash(job.id);
  showView("active", job.id);
  renderJob(job, true);
  startTicker();
  state.active.stop = followJob(job.id, {
    onJob: (view) => onJob(view),
    onLink: (link) => {
      if (link === state.link) return;
      state.link = link;
      if (state.active && state.active.job) renderJob(state.active.job, true);
    },
    onGone: (problem) => {
      const gone = state.active;
      endActive();
      if (state.shown && state.shown.kind === "active") showError(explain(problem));
      if (gone) setHash(null);
    },
  });
}

function endActive() {
  if (state.active && state.active.stop) state.active.stop();
  state.active = null;
  stopTicker();
  setBusy(false);
}

async function onJob(job) {
  const active = state.active;
  if (!active || job.id !== active.id) return;
  active.job = job;
  active.seenAt = Date.now();
  if (!isTerminal(job.status)) {
    renderJob(job);
    return;
  }
  const watching = state.shown && state.shown.kind === "active";
  endActive();
  if (job.status === "succeeded") {
    await finished(job, active.source, watching);
  } else if (job.status === "cancelled") {
    if (watching) showView("idle");
    toast(t("status.cancelled"));
    setHash(null);
  } else if (watching) {
    showError(explainJob(job), active.source ? () => paint({ source: active.source, params: job.params }) : null);
  } else {
    toast(explainJob(job).text);
  }
}

async function finished(job, source, watching) {
  let blob;
  try {
    blob = await fetchResult(job.id);
  } catch (error) {
    if (watching) showError(explain(error));
    return;
  }
  const tookMs = job.finished_at ? Date.parse(job.finished_at) - Date.parse(job.created_at) : null;
  const record = {
    id: job.id,
    created: Date.now(),
    params: job.params,
    tookMs,
    cached: Boolean(job.cache_hit),
    result: blob,
    original: source ? await scaled(source.blob, 1024) : null,
    thumb: await scaled(blob, 360, "image/jpeg", 0.82),
  };
  if (watching) {
    showPicture(record, source);
    $("#status-text").textContent = t("status.done");
  } else {
    toast(t("status.done"));
  }
  try {
    await pictures.savePicture(record);
  } catch {
    /* history is a convenience: the picture is on screen and downloadable */
  }
  await renderHistory();
}

function showPicture(record, source = null) {
  const previous = state.picture;
  if (previous && previous.url) URL.revokeObjectURL(previous.url);
  if (previous && previous.ownBefore) URL.revokeObjectURL(previous.beforeUrl);
  let beforeUrl = source && source.url ? source.url : null;
  let ownBefore = false;
  if (!beforeUrl && record.original) {
    beforeUrl = URL.createObjectURL(record.original);
    ownBefore = true;
  }
  const url = URL.createObjectURL(record.result);
  const params = record.params;
  state.picture = {
    ...record,
    url,
    beforeUrl,
    ownBefore,
    // Regenerating needs the photo: the one picked here, else the copy kept in history.
    source: source || (record.original ? { blob: record.original, name: "photo.jpg", width: params.width, height: params.height } : null),
  };
  const compare = $("#compare");
  compare.style.setProperty("--ar", `${params.width} / ${params.height}`);
  compare.dataset.mode = beforeUrl ? "compare" : "single";
  $("#after").src = url;
  if (beforeUrl) $("#before").src = beforeUrl;
  else $("#before").removeAttribute("src");
  $("#no-original").hidden = Boolean(beforeUrl);
  const range = $("#compare-range");
  range.value = "50";
  compare.style.setProperty("--pos", "50%");
  $("#regenerate").hidden = !state.picture.source;
  renderPictureMeta();
  setHash(record.id);
  showView("picture", record.id);
}

function renderPictureMeta() {
  const p = state.picture;
  if (!p) return;
  const parts = [t("result.meta", { w: p.params.width, h: p.params.height, seed: p.params.seed, time: p.tookMs != null ? duration(p.tookMs) : "—" })];
  if (p.cached) parts.push(t("result.cached"));
  $("#result-meta").textContent = parts.join(" · ");
}

async function cancelActive() {
  const active = state.active;
  if (!active || !active.id) return;
  $("#cancel").disabled = true;
  active.stop();
  try {
    await cancelJob(active.id);
  } catch (error) {
    if (!(error instanceof ApiProblem && error.status === 404)) {
      toast(explain(error).text);
      $("#cancel").disabled = false;
      follow(active.job, active.source);
      return;
    }
  }
  endActive();
  setHash(null);
  showView("idle");
  toast(t("cancel.done"));
}

async function download(fmt) {
  const p = state.picture;
  if (!p) return;
  const type = FORMATS[fmt];
  const name = `ghibli-${p.id.slice(0, 8)}-${p.params.seed}.${fmt === "jpeg" ? "jpg" : fmt}`;
  let blob;
  try {
    blob = await fetchResult(p.id, fmt);
    if (blob.type !== type) blob = await convert(blob, type);
  } catch (error) {
    try {
      // Expired on the server (or offline): convert the copy this page already has.
      blob = await convert(p.result, type);
    } catch {
      toast(t("download.failed", { why: explain(error).text }));
      return;
    }
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 30000);
}

async function copyLink() {
  const id = (state.shown && state.shown.id) || (state.active && state.active.id) || (state.picture && state.picture.id);
  if (!id) return;
  const url = jobLink(id);
  try {
    await navigator.clipboard.writeText(url);
    toast(t("copyLink.done"));
    return;
  } catch {
    /* no clipboard API (plain http on a LAN address): the old way */
  }
  const area = document.createElement("textarea");
  area.value = url;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  toast(copied ? t("copyLink.done") : `${t("copyLink.manual")} ${url}`);
}

function regenerate() {
  const p = state.picture;
  if (!p || !p.source || state.active) return;
  const seed = randomSeed();
  $("#seed").value = String(seed);
  if (isLocked()) safeSet(KEYS.seed, String(seed));
  paint({ source: p.source, params: { prompt: p.params.prompt, width: p.params.width, height: p.params.height, seed } });
}

/* ---------------- links: #job=<id> ---------------- */

async function openLink() {
  const match = /^#job=([0-9a-f]+)$/.exec(location.hash);
  if (!match || !JOB_ID.test(match[1])) return;
  const id = match[1];
  if (state.active && state.active.id === id) {
    showView("active", id);
    renderJob(state.active.job, true);
    return;
  }
  if (state.shown && state.shown.id === id) return;
  const kept = await pictures.getPicture(id);
  if (kept) {
    showPicture(kept);
    return;
  }
  let job;
  try {
    job = await getJob(id);
  } catch (error) {
    showError(explain(error));
    return;
  }
  if (job.status === "succeeded") {
    await finished(job, null, true);
  } else if (job.status === "failed") {
    showError(explainJob(job));
  } else if (job.status === "cancelled") {
    showView("idle");
    toast(t("status.cancelled"));
  } else if (!state.active) {
    follow(job, null);
  }
}

/* ---------------- recent pictures ---------------- */

async function renderHistory() {
  let items = [];
  try {
    items = await pictures.listPictures();
  } catch {
    items = [];
  }
  for (const url of state.thumbUrls) URL.revokeObjectURL(url);
  state.thumbUrls = [];
  const list = $("#history-list");
  list.replaceChildren(
    ...items.map((item) => {
      const when = dayAndTime(item.created);
      const li = document.createElement("li");
      li.className = "history-item";
      li.dataset.id = item.id;
      li.setAttribute("aria-current", String(Boolean(state.shown && state.shown.kind === "picture" && state.shown.id === item.id)));

      const open = document.createElement("button");
      open.type = "button";
      open.className = "history-open";
      open.setAttribute("aria-label", t("history.open", { when, seed: item.params.seed }));
      const img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      const thumb = item.thumb || item.result;
      if (thumb) {
        const url = URL.createObjectURL(thumb);
        state.thumbUrls.push(url);
        img.src = url;
      }
      const caption = document.createElement("span");
      caption.className = "history-caption";
      caption.textContent = `${when} · ${item.params.width}×${item.params.height}`;
      open.append(img, caption);
      open.addEventListener("click", () => showPicture(item));

      const del = document.createElement("button");
      del.type = "button";
      del.className = "history-delete";
      del.setAttribute("aria-label", t("history.delete", { when }));
      del.title = t("history.delete", { when });
      del.innerHTML = '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>';
      del.addEventListener("click", () => forget(item.id));
      li.append(open, del);
      return li;
    }),
  );
  $("#history-empty").hidden = items.length > 0;
  const persistent = await pictures.isPersistent();
  $("#history-hint").textContent = persistent ? t("history.hint") : t("history.unavailable");
}

async function forget(id) {
  await pictures.deletePicture(id);
  // The server's copy too: the visitor asked for the picture to be gone.
  cancelJob(id).catch(() => {});
  if (state.shown && state.shown.kind === "picture" && state.shown.id === id) {
    setHash(null);
    showView("idle");
  }
  await renderHistory();
  toast(t("history.deleted"));
}

/* ---------------- wiring ---------------- */

function bindStage() {
  $("#form").addEventListener("submit", (event) => {
    event.preventDefault();
    paint();
  });
  $("#cancel").addEventListener("click", cancelActive);
  for (const button of $$(".copy-link")) button.addEventListener("click", copyLink);
  for (const button of $$(".fmt")) button.addEventListener("click", () => download(button.dataset.fmt));
  $("#regenerate").addEventListener("click", regenerate);
  $("#retry").addEventListener("click", () => {
    const retry = state.retry;
    state.retry = null;
    if (retry) retry();
  });
  $("#dismiss").addEventListener("click", () => {
    setHash(null);
    showView("idle");
  });
  const range = $("#compare-range");
  range.addEventListener("input", () => $("#compare").style.setProperty("--pos", `${range.value}%`));
  $("#lang-toggle").addEventListener("click", toggleLang);
  $("#theme-toggle").addEventListener("click", toggleTheme);
  darkQuery.addEventListener("change", () => applyTheme(safeGet(KEYS.theme)));
  window.addEventListener("hashchange", openLink);
}

function start() {
  setLang(detectLang());
  bindSettings();
  bindPhotoIntake();
  bindStage();
  refreshWords();
  showView("idle");
  openLink();
  document.documentElement.dataset.ready = "true";
}

start();
