// What every explorer page shares: talking to the log's API, building the page (text only,
// never HTML from the log), and checking signed checkpoints with the log's key in WebCrypto.

import { ecdsaRaw, keyAlgorithm } from "./der.js";
import { equalBytes, sha256 } from "./merkle.js";

export const API = "/api/v1";

// -- bytes ---------------------------------------------------------------------------------
export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
export const fromHex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
export const fromBase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
export const utf8 = (s) => new TextEncoder().encode(s);

/** The DER inside a PEM block. */
export function pemBody(pem) {
  return fromBase64(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
}

// -- the API -------------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(path, init) {
  const response = await fetch(path, { ...init, headers: { Accept: "application/json", ...init?.headers } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message ?? message;
    } catch {
      // not Rekor's JSON error: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

export const getJson = async (path) => (await call(path)).json();
export const getText = async (path) => (await call(path)).text();
export const postJson = (path, body) =>
  call(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });

/** Up to 10 entries a request (Rekor's retrieve limit): LogEntry objects, flattened. */
export async function retrieve(field, values) {
  const out = [];
  for (let i = 0; i < values.length; i += 10) {
    const answer = await (await postJson(`${API}/log/entries/retrieve`, { [field]: values.slice(i, i + 10) })).json();
    for (const entry of answer) {
      const [[uuid, e]] = Object.entries(entry);
      out.push({ uuid, ...e });
    }
  }
  return out;
}

// -- the page ------------------------------------------------------------------------------
/** An element with attributes and children (strings become text nodes: nothing is parsed). */
export function el(tag, attributes = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  node.append(...kids.filter((k) => k !== null && k !== undefined));
  return node;
}

export const byId = (id) => document.getElementById(id);
export const formatTime = (seconds) => new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");

/** Show the outcome of a check in a status box: "ok", "bad" or "pending". */
export function setStatus(node, state, message) {
  node.className = `status ${state}`;
  node.textContent = message;
}

/** A row of a definition list. */
export const row = (term, ...value) => [el("dt", {}, term), el("dd", {}, ...value)];

/** The search box in the header of every page: keep what was asked. */
export function fillSearch() {
  const q = new URLSearchParams(location.search).get("q");
  if (q) byId("q").value = q;
}

// -- checkpoints ---------------------------------------------------------------------------
/** The log's key as this server publishes it: {logId, keyId (note key hint), verify}. */
export async function logKey() {
  const der = pemBody(await getText(`${API}/log/publicKey`));
  const algorithm = keyAlgorithm(der);
  const logId = await sha256(der); // RFC 6962 §3.2 key ID: SHA-256 of the DER SubjectPublicKeyInfo
  let verify;
  if (algorithm === "Ed25519") {
    const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
    verify = (sig, msg) => crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
  } else if (algorithm === "ECDSA P-256") {
    const key = await crypto.subtle.importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    // Checkpoints carry ASN.1 DER signatures over SHA-256 of the note text (DESIGN §2).
    verify = (sig, msg) => crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, ecdsaRaw(sig), msg);
  } else {
    throw new Error(`the log key is ${algorithm}; the explorer checks Ed25519 and ECDSA P-256`);
  }
  return { algorithm, logId, keyId: logId.subarray(0, 4), verify };
}

/**
 * Parse a signed note (C2SP signed-note) holding a checkpoint (C2SP tlog-checkpoint) and
 * check the log's signature on it: the line whose key ID is the first 4 bytes of the logID,
 * signed with the log key over the note text. Throws unless that signature verifies.
 * Returns {origin, size (BigInt), root, text, signatures: [{name, keyId, timestamp, log}]}.
 */
export async function verifyCheckpoint(note, key) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("the checkpoint is not a signed note (no blank line before the signatures)");
  const text = note.slice(0, split + 1);
  const [origin, sizeText, rootText] = text.split("\n");
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText ?? "")) throw new Error("the checkpoint's tree size is malformed");
  const root = fromBase64(rootText ?? "");
  const signatures = [];
  let checked = false;
  for (const line of note.slice(split + 2).split("\n").filter((l) => l)) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Error("a signature line of the checkpoint is malformed");
    const raw = fromBase64(m[2]);
    const sig = { name: m[1], keyId: hex(raw.subarray(0, 4)), log: false, timestamp: null };
    if (m[1] === origin && equalBytes(raw.subarray(0, 4), key.keyId)) {
      if (!(await key.verify(raw.subarray(4), utf8(text)))) {
        throw new Error("the log's signature on the checkpoint does not verify with the log key");
      }
      sig.log = checked = true;
    } else if (raw.length === 4 + 8 + 64) {
      // C2SP tlog-cosignature/v1: a big-endian u64 timestamp, then the Ed25519 signature.
      sig.timestamp = new DataView(raw.buffer, 4, 8).getBigUint64(0);
    }
    signatures.push(sig);
  }
  if (!checked) throw new Error("the checkpoint carries no signature by the log key");
  return { origin, size: BigInt(sizeText), root, text, signatures };
}
