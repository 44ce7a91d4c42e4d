// The page's behaviour: photo intake, settings, one active job followed live, the result with a
// before/after slider, downloads, and recent pictures kept in this browser.

import { bindPhotoIntake, bindSettings, renderLock, renderPhotoFacts, renderPresets, renderSizes } from "./compose.js";
import { loadEngine } from "./engine.js";
import { renderHistory } from "./gallery.js";
import { detectLang, lang, safeGet, safeSet, setLang, t } from "./i18n.js";
import { cancelActive, openLink, paint } from "./job.js";
import { renderError, renderJob, showView } from "./progress.js";
import { copyLink, download, regenerate, renderPictureMeta } from "./result.js";
import { $, $$, KEYS, state } from "./state.js";
import { setHash } from "./util.js";

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
  loadEngine();
  document.documentElement.dataset.ready = "true";
}

start();
