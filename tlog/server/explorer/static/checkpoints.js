// Checkpoint history and consistency (`/checkpoints?first=A&second=B`): the signed
// checkpoints the log published, each signature checked here, and the RFC 9162 §2.1.4.2
// consistency proof between two of them checked here too.

import {
  API, byId, el, fillSearch, formatTime, fromHex, getJson, hex, logKey, setStatus, verifyCheckpoint,
} from "./common.js";
import { equalBytes, verifyConsistency } from "./merkle.js";

const PAGE = 20; // checkpoints a page
const SIZE = /^[0-9]{1,19}$/;

/** The signed checkpoint of exactly `size`, its signature checked, or an error. */
async function signedAt(size, key) {
  const [found] = await getJson(`${API}/log/checkpoints?before=${BigInt(size) + 1n}&limit=1`);
  if (!found || BigInt(found.treeSize) !== BigInt(size)) {
    throw new Error(`the log published no checkpoint at size ${size}; pick a size from the history below`);
  }
  return verifyCheckpoint(found.checkpoint, key);
}

async function checkConsistency(first, second, key) {
  const status = byId("consistency-status");
  const steps = byId("consistency-steps");
  const step = (text) => steps.append(el("li", {}, `✓ ${text}`));
  byId("first").value = first;
  byId("second").value = second;
  setStatus(status, "pending", `Checking that the tree of size ${first} is a prefix of the tree of size ${second}…`);
  try {
    if (BigInt(first) < 1n || BigInt(first) > BigInt(second)) {
      throw new Error("pick a first size of at least 1 and no larger than the second");
    }
    const a = await signedAt(first, key);
    const b = await signedAt(second, key);
    step(`The checkpoints at sizes ${first} and ${second} are signed by the log key.`);
    const proof = await getJson(`${API}/log/proof?firstSize=${first}&lastSize=${second}`);
    if (!equalBytes(fromHex(proof.rootHash), b.root)) throw new Error("the proof's root is not the signed one");
    await verifyConsistency(a.size, b.size, proof.hashes.map(fromHex), a.root, b.root);
    step(`The consistency proof of ${proof.hashes.length} hashes leads to both roots (RFC 9162 §2.1.4.2).`);
    setStatus(status, "ok", `Verified in your browser: the log at size ${second} extends the log at size ${first}.`);
  } catch (e) {
    setStatus(status, "bad", `Consistency NOT verified: ${e.message}`);
  }
}

async function showHistory(before, key) {
  const query = before === null ? `limit=${PAGE}` : `before=${before}&limit=${PAGE}`;
  const history = await getJson(`${API}/log/checkpoints?${query}`);
  const rows = [];
  for (const c of history) {
    let signature;
    try {
      const cp = await verifyCheckpoint(c.checkpoint, key);
      signature = cp.size === BigInt(c.treeSize) && hex(cp.root) === c.rootHash ? "✓ verified" : "✗ differs from its note";
    } catch (e) {
      signature = `✗ ${e.message}`;
    }
    rows.push(el("tr", {},
      el("td", {}, String(c.treeSize)), el("td", {}, formatTime(c.created)),
      el("td", { class: "hash" }, c.rootHash), el("td", {}, signature)));
  }
  byId("history").tBodies[0].replaceChildren(...rows);
  if (history.length === PAGE) {
    const last = history[history.length - 1].treeSize;
    byId("history-pager").replaceChildren(el("a", { href: `/checkpoints?before=${last}`, rel: "next" }, "Older checkpoints"));
  }
  return history;
}

async function main() {
  fillSearch();
  const params = new URLSearchParams(location.search);
  const before = SIZE.test(params.get("before") ?? "") ? params.get("before") : null;
  const key = await logKey();
  const history = await showHistory(before, key);
  let first = params.get("first");
  let second = params.get("second");
  if (SIZE.test(first ?? "") && SIZE.test(second ?? "")) {
    await checkConsistency(first, second, key);
  } else if (history.length >= 2) {
    // Suggest the oldest non-empty and the newest checkpoint shown.
    const sizes = history.map((c) => c.treeSize).filter((s) => s > 0);
    second = sizes[0];
    first = sizes[sizes.length - 1];
    byId("first").value = first;
    byId("second").value = second;
  }
}

main().catch((e) => setStatus(byId("consistency-status"), "bad", `The log could not be read: ${e.message}`));
