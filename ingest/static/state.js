// Shared by the page's modules: constants, the one state object, DOM shortcuts and the toast.

export const DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration";
export const PRESETS = [
  ["preset.classic", DEFAULT_PROMPT],
  ["preset.meadow", "Ghibli Studio style, sunny summer meadow, tall cumulus clouds, gentle breeze, hand-drawn anime illustration"],
  ["preset.rain", "Ghibli Studio style, quiet rainy evening, warm glowing windows, soft reflections, hand-drawn anime illustration"],
  ["preset.seaside", "Ghibli Studio style, seaside town, bright blue sky, watercolor background, hand-drawn anime illustration"],
  ["preset.forest", "Ghibli Studio style, deep green forest, dappled sunlight, little forest spirits, hand-drawn anime illustration"],
  ["preset.golden", "Ghibli Studio style, golden hour light, long soft shadows, nostalgic mood, hand-drawn anime illustration"],
];
export const SIZE_MIN = 256;
export const SIZE_MAX = 1024;
export const SIZE_STEP = 64;
export const SEED_MAX = 4294967295;
export const UPLOAD_MAX_SIDE = 2048; // the server keeps at most 2048 px: no need to upload more
export const PASS_THROUGH = new Set(["image/jpeg", "image/png", "image/webp"]);
export const JOB_ID = /^[0-9a-f]{32}$/;
export const KEYS = { theme: "ghibli.theme", prompt: "ghibli.prompt", size: "ghibli.size", seed: "ghibli.seed", lock: "ghibli.seedLock" };

export const $ = (selector) => document.querySelector(selector);
export const $$ = (selector) => [...document.querySelectorAll(selector)];

export const state = {
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

export function toast(message) {
  const box = $("#toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 3200);
}
