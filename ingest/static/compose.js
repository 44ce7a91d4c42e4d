// The left card: the photo (picker, camera, drop, paste, preview) and the settings.

import { safeGet, safeSet, t } from "./i18n.js";
import { showView } from "./progress.js";
import { $, $$, DEFAULT_PROMPT, KEYS, PASS_THROUGH, PRESETS, SEED_MAX, state, toast, UPLOAD_MAX_SIDE } from "./state.js";
import { bytes, decode, encode, randomSeed, setHash, sizeFor, sniffType } from "./util.js";

/* ---------------- the photo ---------------- */

export function showPhotoError(message) {
  const box = $("#photo-error");
  box.textContent = message;
  box.hidden = !message;
}

/** A new choice starts over: the last photo's error, or a failed job's, no longer applies. */
function clearErrors() {
  showPhotoError("");
  if (state.shown && state.shown.kind === "error") {
    state.retry = null;
    setHash(null);
    showView("idle");
  }
}

export async function takePhoto(file) {
  clearErrors();
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showPhotoError(t("error.notImage"));
    return;
  }
  let blob = file;
  let name = file.name || "photo.jpg";
  let width = 0;
  let height = 0;
  // The first bytes say what the file is, whatever its name: what the server takes goes as it is
  // (HEIC too, which browsers cannot show); anything else only if this browser can re-encode it.
  const sniffed = await sniffType(file);
  const bitmap = await decode(file);
  if (!sniffed && !bitmap) {
    showPhotoError(t("error.notPhotoBytes", { name }));
    return;
  }
  if (bitmap) {
    width = bitmap.width;
    height = bitmap.height;
    if (Math.max(width, height) > UPLOAD_MAX_SIDE || !PASS_THROUGH.has(sniffed)) {
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
  renderMoreSummary();
}

/** The example photos: fetched from this server and taken like a chosen file. */
async function takeExample(button) {
  try {
    const response = await fetch(button.dataset.src);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    await takePhoto(new File([blob], button.dataset.name, { type: blob.type || "image/jpeg" }));
  } catch {
    showPhotoError(t("examples.failed"));
  }
}

export function renderPhotoFacts() {
  const photo = state.photo;
  if (!photo) return;
  const parts = [photo.name];
  if (photo.width) parts.push(`${photo.width} × ${photo.height}`);
  parts.push(bytes(photo.bytes));
  $("#photo-facts").textContent = parts.join(" · ");
}

export function bindPhotoIntake() {
  const fileInput = $("#file");
  const cameraInput = $("#camera");
  $("#choose").addEventListener("click", () => fileInput.click());
  $("#change").addEventListener("click", () => fileInput.click());
  $("#take").addEventListener("click", () => cameraInput.click());
  for (const button of $$(".example")) button.addEventListener("click", () => takeExample(button));
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

export function renderPresets() {
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

export function selectedLongest() {
  const checked = $("#sizes input:checked");
  return checked ? Number(checked.value) : 768;
}

export function renderSizes() {
  const photo = state.photo;
  for (const dims of $$("#sizes .dims")) {
    const size = photo ? sizeFor(Number(dims.dataset.long), photo.width, photo.height) : null;
    dims.textContent = size ? `${size.width} × ${size.height}` : `${dims.dataset.long} px`;
  }
  renderMoreSummary();
}

/** What "More options" holds, shown on its summary line while it is folded. */
export function renderMoreSummary() {
  const checked = $("#sizes input:checked");
  const dims = checked && checked.parentElement.querySelector(".dims");
  const name = checked && checked.parentElement.querySelector("b");
  const size = `${name ? name.textContent : ""}${dims ? ` ${dims.textContent}` : ""}`;
  const raw = $("#seed").value.trim();
  const seed = isLocked() && raw ? t("more.seedLocked", { seed: raw }) : t("more.seedNew");
  $("#more-summary").textContent = t("more.summary", { size, seed });
}

export function isLocked() {
  return $("#lock").getAttribute("aria-pressed") === "true";
}

export function renderLock() {
  const locked = isLocked();
  const lock = $("#lock");
  const label = locked ? t("seed.unlock") : t("seed.lock");
  lock.setAttribute("aria-label", label);
  lock.title = label;
  $("#seed-hint").textContent = locked ? t("seed.hintLocked") : t("seed.hintUnlocked");
  renderMoreSummary();
}

/** The seed field's value, null when empty; undefined (and an inline error) when invalid. */
export function readSeed() {
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

export function bindSettings() {
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
    input.addEventListener("change", () => {
      safeSet(KEYS.size, input.value);
      renderMoreSummary();
    });
  }

  const seed = $("#seed");
  const locked = safeGet(KEYS.lock) === "1";
  $("#lock").setAttribute("aria-pressed", String(locked));
  seed.value = locked && safeGet(KEYS.seed) ? safeGet(KEYS.seed) : String(randomSeed());
  seed.addEventListener("input", () => {
    if (readSeed() !== undefined && isLocked()) safeSet(KEYS.seed, seed.value.trim());
    renderMoreSummary();
  });
  $("#dice").addEventListener("click", () => {
    seed.value = String(randomSeed());
    readSeed();
    if (isLocked()) safeSet(KEYS.seed, seed.value);
    renderMoreSummary();
  });
  $("#lock").addEventListener("click", () => {
    const now = !isLocked();
    $("#lock").setAttribute("aria-pressed", String(now));
    safeSet(KEYS.lock, now ? "1" : "0");
    if (now) safeSet(KEYS.seed, seed.value.trim());
    renderLock();
  });
}
