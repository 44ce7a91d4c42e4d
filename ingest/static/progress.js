// The stage's views and the live progress of the active job.

import { has, t } from "./i18n.js";
import { $, $$, state } from "./state.js";
import { clock, duration } from "./util.js";

/* ---------------- the stage ---------------- */

export function showView(kind, id = null) {
  state.shown = { kind, id };
  $("#stage").dataset.view = kind === "active" ? "progress" : kind === "picture" ? "result" : kind;
  for (const item of $$(".history-item")) {
    item.setAttribute("aria-current", String(kind === "picture" && item.dataset.id === id));
  }
}

const calm = window.matchMedia("(prefers-reduced-motion: reduce)");

/** Bring the stage into view when what it now shows is mostly off-screen (on a phone it sits under
 * the form; on a desktop the visitor may have scrolled down to the button), and move the focus to
 * its heading so keyboard and screen-reader users follow too. */
export function revealStage() {
  const stage = $("#stage");
  const rect = stage.getBoundingClientRect();
  const seen = Math.min(rect.bottom, window.innerHeight) - Math.max(rect.top, 0);
  if (rect.top < 0 || seen < Math.min(rect.height, window.innerHeight) * 0.6) {
    stage.scrollIntoView({ block: "start", behavior: calm.matches ? "auto" : "smooth" });
  }
  $("#stage-title").focus({ preventScroll: true });
}

export function setBusy(busy, percent = null) {
  const go = $("#go");
  go.disabled = busy;
  const label = busy ? t("go.busy") + (percent !== null ? ` ${percent}%` : "") : t("go");
  $("#go-label").textContent = label;
}

export function statusLine(job) {
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

export function phaseWords(job) {
  const key = job.status === "running" ? `phase.${job.phase || "starting"}` : `phase.${job.status}`;
  if (has(key)) return t(key);
  return job.phase || t("fact.unknown");
}

/** The percentage to show: never backwards within one attempt (a Space may report several
 * progress series, e.g. denoising and then painting), and 100 only once it succeeded. */
export function shownPercent(job) {
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

export function renderJob(job, force = false) {
  const percent = shownPercent(job);
  setBusy(true, job.status === "running" && percent > 0 ? percent : null);
  if (!state.shown || state.shown.kind !== "active") return;
  const offline = state.link === "offline";
  let line = statusLine(job);
  if (state.link === "reconnecting") line = t("status.reconnecting");
  if (offline) line = t("status.offline");
  if (line !== state.statusText || force) {
    state.statusText = line;
    $("#status-text").textContent = line;
  }
  const bar = $("#bar");
  bar.style.setProperty("--p", `${percent}%`);
  bar.setAttribute("aria-valuenow", String(percent));
  const waiting = job.status !== "running" || job.phase === "in_queue" || job.phase === "starting";
  bar.dataset.waiting = String(waiting && percent === 0);
  bar.dataset.paused = String(offline || job.status === "waiting_for_quota" || job.status === "retrying");
  $("#outage-note").hidden = !offline;
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
export function tick() {
  const active = state.active;
  if (!active || !state.shown || state.shown.kind !== "active") return;
  const job = active.job;
  const now = Date.now();
  $("#f-elapsed").textContent = duration(now - Date.parse(job.created_at));
  let left = null;
  if (state.link === "offline" || state.link === "reconnecting") {
    // Nothing is known while the server is out of reach: no estimate rather than a growing one.
    left = null;
  } else if ((job.status === "waiting_for_quota" || job.status === "retrying") && job.resume_at) {
    left = Date.parse(job.resume_at) - now;
  } else if (job.status === "running" && job.phase === "in_queue" && job.queue && job.queue.eta_seconds != null) {
    left = job.queue.eta_seconds * 1000 - (now - active.seenAt);
  } else if (job.status === "running" && job.progress > 0.03 && job.started_at) {
    const ran = now - Date.parse(job.started_at);
    left = (ran * (1 - job.progress)) / job.progress;
  }
  $("#f-eta").textContent = left === null ? t("fact.unknown") : t("fact.about", { t: duration(Math.max(0, left)) });
}

export function startTicker() {
  if (!state.ticker) state.ticker = setInterval(tick, 1000);
}

export function stopTicker() {
  clearInterval(state.ticker);
  state.ticker = null;
}

export function renderError(info) {
  state.errorInfo = info;
  $("#error-title").textContent = info.title;
  $("#error-text").textContent = info.text;
  $("#error-detail").textContent = info.detail || "";
  $("#error-detail").hidden = !info.detail;
  $("#retry").hidden = !state.retry;
}

export function showError(info, retry = null) {
  state.retry = retry;
  renderError(info);
  showView("error");
  revealStage();
}
