// Home (the log, its latest checkpoint checked in the browser, how to pin it, recent
// entries) and search (`/?q=QUERY`, paged with `&before=LOG_INDEX`).

import {
  API, ApiError, byId, el, fillSearch, formatTime, fromBase64, getText, hex, logKey, postJson,
  retrieve, setStatus, verifyCheckpoint,
} from "./common.js";

const RECENT = 10; // entries on the home page
const PAGE = 20; // search results a page
const MAX_QUERY = 1024; // characters of a query the page reads (the API's longest identity)

/** The digest an entry's body records: a hashedrekord's artifact, an attestation's payload
 * (Rekor's dsse 0.0.1 `spec.payloadHash`, intoto 0.0.2 `spec.content.payloadHash`). */
const recordedHash = (spec) => spec?.data?.hash ?? spec?.payloadHash ?? spec?.content?.payloadHash;

/** One entry as a list item: index, time, link to its page. */
function entryItem(e, note) {
  const body = JSON.parse(new TextDecoder().decode(fromBase64(e.body)));
  const hash = recordedHash(body.spec);
  return el("li", {},
    el("a", { href: `/entry/${e.uuid}` }, `#${e.logIndex}`), " ",
    el("span", { class: "muted" }, formatTime(e.integratedTime)), " ",
    `${body.kind} `, hash && !body.spec.data ? "payload " : null,
    hash ? el("code", {}, `${hash.algorithm}:${hash.value}`) : null,
    note ? el("span", { class: "muted" }, ` — ${note}`) : null);
}

async function showLog() {
  const status = byId("checkpoint-status");
  byId("pin-command").textContent = `tlog trust add ${location.origin}`;
  try {
    const key = await logKey();
    const note = await getText("/checkpoint");
    const cp = await verifyCheckpoint(note, key);
    byId("log-name").textContent = cp.origin;
    byId("tree-size").textContent = cp.size.toString();
    byId("root-hash").textContent = hex(cp.root);
    byId("log-id").textContent = hex(key.logId);
    byId("checkpoint-text").textContent = note;
    byId("signatures").replaceChildren(...cp.signatures.map((s) => el("li", {},
      el("strong", {}, s.name), ` key ID ${s.keyId}: `,
      s.log ? "the log's signature, verified in your browser"
        : s.timestamp !== null ? `witness cosignature of ${formatTime(s.timestamp)} (not checked here: the explorer does not know this witness's key)`
          : s.name === cp.origin ? "the log's C2SP Ed25519 line (the same key under its note key ID)"
            : "another signature (not checked here)")));
    setStatus(status, "ok", `Checkpoint signature verified in your browser with the ${key.algorithm} log key (logID ${hex(key.logId).slice(0, 16)}…).`);
    const size = Number(cp.size);
    const indexes = [];
    for (let i = size - 1; i >= Math.max(0, size - RECENT); i--) indexes.push(i);
    const recent = await retrieve("logIndexes", indexes);
    byId("recent").replaceChildren(...recent.map((e) => entryItem(e)));
    if (!recent.length) byId("recent").replaceChildren(el("li", { class: "muted" }, "The log is empty."));
  } catch (e) {
    setStatus(status, "bad", `The checkpoint could not be verified: ${e.message}`);
  }
}

/** UUIDs of a search API answer, and the `before` of its next page if there is one. */
async function searchPage(path, init) {
  const response = init ? await postJson(path, init) : await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new ApiError(response.status, (await response.json()).message);
  return { uuids: await response.json(), next: response.headers.get("X-Tlog-Next-Before") };
}

/**
 * What a query asks for: a list of searches, each {label, run(before) → {uuids, next}}.
 * A bare 64-hex value may be an entry UUID, a SHA-256 artifact digest or a key fingerprint:
 * all three are asked. A digest is looked up in the log's one digest index (POST
 * /api/v1/index/retrieve {hash}), which holds hashedrekord artifacts, attestation payload
 * and envelope hashes, and every in-toto subject digest (Rekor's IndexKeys). An email or a
 * URI is a signing certificate's identity (its SAN): POST /api/v1/index/retrieve {identity}.
 */
function plan(q) {
  const withBefore = (path, before) => (before === null ? path : `${path}?before=${before}`);
  const digest = (hash) => ({
    label: `artifact or subject digest ${hash}`,
    run: (before) => searchPage(withBefore(`${API}/index/retrieve`, before), { hash }),
  });
  const uuid = (u) => ({
    label: "entry UUID",
    // The retrieve route answers an unknown UUID with nothing rather than a 404.
    run: async () => ({ uuids: (await retrieve("entryUUIDs", [u])).map((e) => e.uuid), next: null }),
  });
  const identity = (id) => ({
    label: `certificate identity ${id}`,
    run: (before) => searchPage(withBefore(`${API}/index/retrieve`, before), { identity: id }),
  });
  const fingerprint = (f) => ({
    label: "key fingerprint",
    run: (before) => searchPage(withBefore(`${API}/index/fingerprint/${f}`, before)),
  });
  if (/^[0-9]{1,19}$/.test(q)) {
    return [{
      label: "log index",
      run: async () => {
        const found = await retrieve("logIndexes", [Number(q)]);
        return { uuids: found.map((e) => e.uuid), next: null };
      },
    }];
  }
  const lower = q.toLowerCase();
  if (/^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}|[0-9a-f]{96}|[0-9a-f]{128})$/.test(lower)) {
    return [digest(lower)];
  }
  if (/^[0-9a-f]{80}$/.test(lower)) return [uuid(lower)];
  if (/^[0-9a-f]{64}$/.test(lower)) return [uuid(lower), digest(`sha256:${lower}`), fingerprint(lower)];
  if (q.includes("@") || /^[a-z][a-z0-9+.-]*:\/\//i.test(q)) return [identity(q)];
  throw new Error("not a query the explorer understands: give an artifact or in-toto subject digest (sha256:HEX), an entry "
    + "UUID, a log index, a key fingerprint, or a certificate's email or URI identity");
}

async function search(q, before) {
  byId("results").hidden = false;
  const status = byId("results-status");
  try {
    if (q.length > MAX_QUERY) throw new Error(`a query is at most ${MAX_QUERY} characters`);
    const found = new Map(); // UUID → what matched
    let more = false;
    for (const s of plan(q)) {
      const page = await s.run(before);
      // Each search answers in log order, oldest first: its newest PAGE can fill this page.
      for (const u of page.uuids.slice(-PAGE)) found.set(u, [...(found.get(u) ?? []), s.label]);
      more ||= page.uuids.length > PAGE || page.next !== null;
    }
    const entries = (await retrieve("entryUUIDs", [...found.keys()]))
      .filter((e) => before === null || e.logIndex < Number(before))
      .sort((a, b) => b.logIndex - a.logIndex);
    const shown = entries.slice(0, PAGE);
    byId("results-list").replaceChildren(...shown.map((e) => entryItem(e, `matched by ${found.get(e.uuid).join(", ")}`)));
    const pager = byId("results-pager");
    pager.replaceChildren();
    if ((more || entries.length > PAGE) && shown.length) {
      // Everything newer than the oldest entry shown is on this page or a newer one.
      const params = new URLSearchParams({ q, before: String(shown[shown.length - 1].logIndex) });
      pager.append(el("a", { href: `/?${params}`, rel: "next" }, "Older results"));
    }
    setStatus(status, entries.length ? "ok" : "pending", entries.length
      ? `${entries.length === 1 ? "1 entry" : `${entries.length} entries`} found${before === null ? "" : ` below log index ${before}`}.`
      : `No entry found for ${q}.`);
  } catch (e) {
    setStatus(status, "bad", `Search failed: ${e.message}`);
  }
}

fillSearch();
const params = new URLSearchParams(location.search);
const q = (params.get("q") ?? "").trim();
const before = /^[0-9]{1,19}$/.test(params.get("before") ?? "") ? params.get("before") : null;
if (q) search(q, before);
showLog();
