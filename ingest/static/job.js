// A job's life: submit, follow (SSE), finish, cancel, and jobs opened from a #job= link.

import * as pictures from "./history.js";
import { ApiProblem, cancelJob, fetchResult, followJob, getJob, isTerminal, submitJob } from "./api.js";
import { isLocked, readSeed, selectedLongest, showPhotoError } from "./compose.js";
import { noteEngine } from "./engine.js";
import { renderHistory } from "./gallery.js";
import { t } from "./i18n.js";
import { renderJob, revealStage, setBusy, showError, showView, startTicker, stopTicker } from "./progress.js";
import { showPicture } from "./result.js";
import { $, JOB_ID, state, toast } from "./state.js";
import { explain, explainJob, randomSeed, scaled, setHash, sizeFor } from "./util.js";

/* ---------------- a job's life ---------------- */

export async function paint({ source = state.photo, params = null } = {}) {
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
      $("#more").open = true;
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
  state.link = "live";
  showView("active");
  $("#outage-note").hidden = true;
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
  revealStage();
  let job;
  try {
    job = await submitJob(source.blob, source.name, chosen);
  } catch (error) {
    state.active = null;
    setBusy(false);
    // Trying again helps when the server was unreachable or busy, not when it refused the photo.
    const passing = !(error instanceof ApiProblem) || error.status === 429 || error.status >= 500;
    showError(explain(error), passing ? () => paint({ source, params: chosen }) : null);
    return;
  }
  follow(job, source);
}

export function follow(job, source) {
  state.active = { id: job.id, job, source, stop: null, seenAt: Date.now() };
  state.link = "live";
  setHash(job.id);
  showView("active", job.id);
  noteEngine(job.engine);
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

export function endActive() {
  if (state.active && state.active.stop) state.active.stop();
  state.active = null;
  stopTicker();
  setBusy(false);
}

export async function onJob(job) {
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

export async function finished(job, source, watching) {
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
    engine: job.engine || null,
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
  // Once the page below it has its new height (the history grew), or the scroll would be undone.
  if (watching && state.shown && state.shown.kind === "picture" && state.shown.id === job.id) revealStage();
}

export async function cancelActive() {
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

/* ---------------- links: #job=<id> ---------------- */

export async function openLink() {
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
