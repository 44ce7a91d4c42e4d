// The finished picture: before/after slider, downloads, copy link, regenerate.

import { fetchResult, FORMATS } from "./api.js";
import { isLocked } from "./compose.js";
import { safeSet, t } from "./i18n.js";
import { paint } from "./job.js";
import { showView } from "./progress.js";
import { $, KEYS, state, toast } from "./state.js";
import { convert, duration, explain, jobLink, randomSeed, setHash } from "./util.js";

export function showPicture(record, source = null) {
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

export function renderPictureMeta() {
  const p = state.picture;
  if (!p) return;
  const parts = [t("result.meta", { w: p.params.width, h: p.params.height, seed: p.params.seed, time: p.tookMs != null ? duration(p.tookMs) : "—" })];
  if (p.cached) parts.push(t("result.cached"));
  if (p.engine && p.engine.kind === "offline-demo") parts.push(t("result.demo"));
  $("#result-meta").textContent = parts.join(" · ");
}

export async function download(fmt) {
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

export async function copyLink() {
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

export function regenerate() {
  const p = state.picture;
  if (!p || !p.source || state.active) return;
  const seed = randomSeed();
  $("#seed").value = String(seed);
  if (isLocked()) safeSet(KEYS.seed, String(seed));
  paint({ source: p.source, params: { prompt: p.params.prompt, width: p.params.width, height: p.params.height, seed } });
}
