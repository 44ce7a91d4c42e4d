// The jobs API, as the page uses it: submit, follow (SSE, polling where SSE fails), cancel, result.

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const FORMATS = { webp: "image/webp", png: "image/png", jpeg: "image/jpeg" };

export function isTerminal(status) {
  return TERMINAL.has(status);
}

/** An API error: the problem document's stable code, title and detail (RFC 9457). */
export class ApiProblem extends Error {
  constructor(status, body) {
    const detail = (body && (body.detail || body.title)) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = (body && body.code) || `http_${status}`;
    this.title = (body && body.title) || "";
    this.detail = detail;
  }
}

/** The server could not be reached at all (as opposed to answering with a problem). */
export class NetworkError extends Error {}

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", ...init });
  } catch (err) {
    throw new NetworkError(String(err && err.message ? err.message : err));
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    throw new ApiProblem(response.status, body);
  }
  return response;
}

/** POST the photo; only fields with a value are sent (an empty field would be parsed as a value). */
export async function submitJob(photo, fileName, params) {
  const form = new FormData();
  form.append("image", photo, fileName || "photo.jpg");
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    form.append(name, String(value));
  }
  const response = await request("/v1/jobs", { method: "POST", body: form });
  return response.json();
}

export async function getJob(id) {
  const response = await request(`/v1/jobs/${encodeURIComponent(id)}`, {
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  return response.json();
}

export async function cancelJob(id) {
  await request(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
}

/** The picture as a Blob, as stored (fmt omitted) or converted by the server. */
export async function fetchResult(id, fmt) {
  const query = fmt ? `?format=${encodeURIComponent(fmt)}` : "";
  const response = await request(`/v1/jobs/${encodeURIComponent(id)}/result${query}`);
  return response.blob();
}

/** Whether the server answers at all (its liveness probe), within a few seconds. */
export async function serverAnswers() {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), 4000);
  try {
    const response = await fetch("/healthz", { cache: "no-store", signal: timeout.signal });
    return response.ok;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** A failure that means the service is out of reach (as opposed to a refusal). */
function isOutage(err) {
  return err instanceof NetworkError || (err instanceof ApiProblem && [502, 503, 504].includes(err.status));
}

/**
 * Follow a job until it ends. Calls onJob(view) for every new version, onLink(state) with
 * "live" | "polling" | "reconnecting" (the stream dropped, the server answers) | "offline" (the
 * server does not answer: an outage), and onGone(problem) when the job no longer exists.
 * Never gives up on a live job by itself: a job may wait hours for GPU quota and still finish, and
 * it resumes by itself after an outage. Returns a function that stops following.
 */
export function followJob(id, { onJob, onLink = () => {}, onGone = () => {} }) {
  let stopped = false;
  let source = null;
  let pollTimer = null;
  let lastVersion = -1;
  let failures = 0;
  let outage = false;
  let streamRetries = 0;

  const deliver = (job) => {
    if (stopped) return;
    if (job.version > lastVersion || isTerminal(job.status)) {
      lastVersion = job.version;
      onJob(job);
    }
    if (isTerminal(job.status)) stop();
  };

  const stop = () => {
    stopped = true;
    if (source) source.close();
    source = null;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  };

  const poll = async () => {
    pollTimer = null;
    if (stopped) return;
    try {
      deliver(await getJob(id));
      failures = 0;
      if (outage && !stopped && typeof EventSource !== "undefined" && streamRetries < 3) {
        // Back after an outage: live events again rather than polling for good.
        outage = false;
        streamRetries += 1;
        openStream();
        return;
      }
      onLink("polling");
    } catch (err) {
      if (err instanceof ApiProblem && (err.status === 404 || err.status === 410)) {
        stop();
        onGone(err);
        return;
      }
      failures += 1;
      outage = outage || isOutage(err);
      onLink(isOutage(err) ? "offline" : "reconnecting");
    }
    if (!stopped) pollTimer = setTimeout(poll, Math.min(10000, 1500 * 2 ** Math.min(failures, 3)));
  };

  // The stream dropped and the browser is reconnecting: say "offline" at once when the server does
  // not answer at all, "reconnecting" only when it keeps failing although the server is up.
  const streamTrouble = async () => {
    failures += 1;
    const answers = await serverAnswers();
    if (stopped || !source) return;
    if (!answers) {
      outage = true;
      onLink("offline");
    } else if (failures > 1) {
      onLink("reconnecting");
    }
  };

  const openStream = () => {
    if (typeof EventSource === "undefined") {
      poll();
      return;
    }
    source = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events`);
    // Connected (again): the server sends a snapshot only if the job changed meanwhile.
    source.addEventListener("open", () => {
      failures = 0;
      outage = false;
      onLink("live");
    });
    source.addEventListener("status", (event) => {
      failures = 0;
      outage = false;
      onLink("live");
      try {
        deliver(JSON.parse(event.data));
      } catch {
        /* a malformed event: the next one or the snapshot after a reconnect replaces it */
      }
    });
    source.addEventListener("error", () => {
      if (stopped || !source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (an HTTP error, or a proxy that breaks SSE): poll.
        source = null;
        poll();
      } else {
        // The browser reconnects by itself, resuming with Last-Event-ID.
        streamTrouble();
      }
    });
  };

  openStream();
  return stop;
}
