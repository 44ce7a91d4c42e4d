// Recent pictures kept in this browser, with thumbnails and delete.

import * as pictures from "./history.js";
import { cancelJob } from "./api.js";
import { t } from "./i18n.js";
import { showView } from "./progress.js";
import { showPicture } from "./result.js";
import { $, state, toast } from "./state.js";
import { dayAndTime, setHash } from "./util.js";

/* ---------------- recent pictures ---------------- */

export async function renderHistory() {
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

export async function forget(id) {
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
