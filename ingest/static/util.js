// Small pure helpers: seeds and sizes, times, links, image re-encoding, errors in plain words.

import { ApiProblem, NetworkError } from "./api.js";
import { has, lang, t } from "./i18n.js";
import { SIZE_MAX, SIZE_MIN, SIZE_STEP } from "./state.js";

export function randomSeed() {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return buf[0];
}

export function snap(value) {
  return Math.min(SIZE_MAX, Math.max(SIZE_MIN, Math.round(value / SIZE_STEP) * SIZE_STEP));
}

/** Width and height for a longest side, keeping the photo's aspect ratio (as the server does). */
export function sizeFor(longest, width, height) {
  if (!width || !height) return null;
  const scale = longest / Math.max(width, height);
  return { width: snap(width * scale), height: snap(height * scale) };
}

export function duration(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function clock(when) {
  return new Date(when).toLocaleTimeString(lang(), { hour: "numeric", minute: "2-digit" });
}

export function dayAndTime(when) {
  return new Date(when).toLocaleString(lang(), { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
}

export function bytes(n) {
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function jobLink(id) {
  return `${location.origin}${location.pathname}#job=${id}`;
}

export function setHash(id) {
  const target = id ? `#job=${id}` : " ";
  if ((id && location.hash === `#job=${id}`) || (!id && !location.hash)) return;
  history.replaceState(null, "", id ? target : location.pathname + location.search);
}

const HEIC_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs"]);
const HEIF_BRANDS = new Set(["mif1", "msf1", "mif2"]);

/** The image type from the first bytes, by the same rules as the server (ingest/images.py). */
export function typeFromBytes(head) {
  const ascii = (from, to) => String.fromCharCode(...head.slice(from, to));
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
  if (ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "image/png";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "image/gif";
  if (ascii(4, 8) === "ftyp") {
    if (HEIC_BRANDS.has(ascii(8, 12))) return "image/heic";
    if (HEIF_BRANDS.has(ascii(8, 12))) return "image/heif";
  }
  return null;
}

export async function sniffType(blob) {
  try {
    return typeFromBytes(new Uint8Array(await blob.slice(0, 32).arrayBuffer()));
  } catch {
    return null;
  }
}

export async function decode(blob) {
  try {
    return await createImageBitmap(blob);
  } catch {
    return null;
  }
}

/** Draw into a canvas at most `maxSide` px and encode; JPEG gets a white background. */
export async function encode(source, maxSide, type, quality = 0.92) {
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

export async function convert(blob, type) {
  if (blob.type === type) return blob;
  const bitmap = await decode(blob);
  if (!bitmap) throw new Error("unreadable picture");
  const out = await encode(bitmap, Math.max(bitmap.width, bitmap.height), type);
  bitmap.close();
  return out.blob;
}

export async function scaled(blob, maxSide, type = "image/jpeg", quality = 0.86) {
  if (!blob) return null;
  const bitmap = await decode(blob);
  if (!bitmap) return null;
  const out = await encode(bitmap, maxSide, type, quality);
  bitmap.close();
  return out.blob;
}

/** Plain words for an error: a title, a sentence, and the server's own detail when it adds to it. */
export function explain(error) {
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

export function explainJob(job) {
  const code = job.error ? job.error.code : "";
  const key = `jobError.${code}`;
  return {
    title: t("jobError.title"),
    text: has(key) ? t(key) : t("jobError.default"),
    detail: job.error ? `${job.error.message} (${code})` : "",
  };
}
