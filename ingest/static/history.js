// Recent pictures, kept in this browser (IndexedDB): the original (scaled down), the result and a
// thumbnail, so a picture stays viewable after the server has dropped it. Falls back to memory
// where IndexedDB is unavailable (some private modes).

const DB_NAME = "ghibli-pictures";
const STORE = "pictures";
const KEEP = 40;

let dbPromise = null;
const memory = new Map();
let persistent = true;

function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve) => {
    let req;
    try {
      req = indexedDB.open(DB_NAME, 1);
    } catch {
      resolve(null);
      return;
    }
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: "id" });
      store.createIndex("created", "created");
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => resolve(null);
    req.onblocked = () => resolve(null);
  }).then((db) => {
    persistent = Boolean(db);
    return db;
  });
  return dbPromise;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export async function isPersistent() {
  await openDb();
  return persistent;
}

export async function listPictures() {
  const db = await openDb();
  if (!db) return [...memory.values()].sort((a, b) => b.created - a.created);
  const tx = db.transaction(STORE, "readonly");
  const req = tx.objectStore(STORE).getAll();
  await done(tx);
  return req.result.sort((a, b) => b.created - a.created);
}

export async function getPicture(id) {
  const db = await openDb();
  if (!db) return memory.get(id) || null;
  const tx = db.transaction(STORE, "readonly");
  const req = tx.objectStore(STORE).get(id);
  await done(tx);
  return req.result || null;
}

export async function savePicture(record) {
  const db = await openDb();
  if (!db) {
    memory.set(record.id, record);
    return;
  }
  try {
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(record);
    await done(tx);
  } catch {
    // Quota exceeded or storage disabled mid-way: keep it for this page at least.
    persistent = false;
    memory.set(record.id, record);
    return;
  }
  await prune(db);
}

export async function deletePicture(id) {
  memory.delete(id);
  const db = await openDb();
  if (!db) return;
  const tx = db.transaction(STORE, "readwrite");
  tx.objectStore(STORE).delete(id);
  await done(tx);
}

async function prune(db) {
  const all = await listPictures();
  if (all.length <= KEEP) return;
  const tx = db.transaction(STORE, "readwrite");
  for (const old of all.slice(KEEP)) tx.objectStore(STORE).delete(old.id);
  await done(tx);
}
