// The painting engine this server sends jobs to (GET /readyz, and each job's status JSON): while it
// is the offline demo engine, one line says so, so nobody takes a photo filter for the model.

import { $ } from "./state.js";

export function noteEngine(engine) {
  if (!engine || !engine.kind || engine.kind === "unknown") return;
  const note = $("#engine-note");
  note.dataset.kind = engine.kind;
  note.hidden = engine.kind !== "offline-demo";
}

export async function loadEngine() {
  try {
    const response = await fetch("/readyz", { cache: "no-store", headers: { Accept: "application/json" } });
    if (response.ok) noteEngine((await response.json()).engine);
  } catch {
    /* not reachable right now: a job's status names the engine too */
  }
}
