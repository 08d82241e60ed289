// The entry page `/entry/UUID`: what was logged, decoded from the entry's own bytes, and the
// proof that it is in the log, checked here: the body hashes to the UUID (RFC 6962 §2.1
// leaf hash), the checkpoint is signed by the log key, and the inclusion path leads from the
// leaf to the checkpoint's root (RFC 9162 §2.1.3.2). For an attestation (Rekor `dsse` 0.0.1,
// `intoto` 0.0.2) the body records only hashes: the envelope or payload the log keeps beside
// it (`attestation.data`) is shown only once its SHA-256 is the one the body records, a fourth
// check. "Verified" is said only after every check passes.

import {
  API, byId, el, fillSearch, formatTime, fromBase64, fromHex, getJson, hex, logKey, pemBody, row, setStatus,
  verifyCheckpoint,
} from "./common.js";
import { describeCertificate, keyAlgorithm } from "./der.js";
import { equalBytes, leafHash, sha256, verifyInclusion } from "./merkle.js";

const uuid = decodeURIComponent(location.pathname.split("/").pop()).toLowerCase().slice(-64);
const text = (bytes) => new TextDecoder().decode(bytes);
const muted = (s) => el("span", { class: "muted" }, s);

// The in-toto attestation framework: the DSSE payload type of a Statement (Envelope layer),
// and the Statement's `_type` (Statement layer, v1; v0.1 is still read by every verifier).
const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
const STATEMENT_TYPES = ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];
// The digest algorithms the log indexes, and their hex lengths (what a search link can find).
const SEARCHABLE = { sha256: 64, sha384: 96, sha512: 128 };

/** Rows for one signer's key or certificate (base64 of its PEM, as every kind records it). */
async function signerRows(base64Pem) {
  const pem = text(fromBase64(base64Pem ?? ""));
  const der = pemBody(pem);
  let spki = der;
  const rows = [];
  if (pem.includes("BEGIN CERTIFICATE")) {
    const cert = describeCertificate(der);
    spki = cert.spki;
    const identities = [...cert.emails, ...cert.uris];
    rows.push(
      ...row("Signed with", "an X.509 certificate"),
      ...row("Identity", identities.length ? identities.join(", ") : muted("none in the certificate")),
      ...row("OIDC issuer", cert.oidcIssuer ?? muted("none (not a Fulcio certificate)")),
      ...row("Subject", cert.subject || "—"),
      ...row("Certificate issuer", cert.issuer || "—"),
      ...row("Valid", `${cert.notBefore} to ${cert.notAfter}`),
      ...row("Key", cert.key),
    );
  } else {
    rows.push(...row("Signed with", `a public key, ${keyAlgorithm(der)}`));
  }
  // The key fingerprint (SHA-256 of the DER SubjectPublicKeyInfo, a certificate's key's for a
  // certificate): searching for it finds every entry signed with this key.
  const fp = hex(await sha256(spki));
  rows.push(...row("Key fingerprint", el("a", { href: `/?q=${fp}` }, fp)));
  rows.push(...row("Key or certificate (PEM)", el("pre", { tabindex: "0" }, pem)));
  return rows;
}

/** An attestation's signatures, each with its signer in a nested list. */
async function signatureRows(signatures) {
  const rows = [];
  for (const [i, s] of signatures.entries()) {
    rows.push(...row(`Signature ${i + 1}`, el("code", {}, s.signature),
      el("dl", { class: "signer" }, ...(await signerRows(s.verifier)))));
  }
  return rows;
}

const hashText = (h) => el("code", {}, `${h?.algorithm}:${h?.value}`);

/**
 * What each kind's body records (Rekor's canonical bodies, tlog.core.entries), and for the
 * attestation kinds what the log keeps beside it: `kept` names that, `keptHash` is the
 * SHA-256 the body records for it, `open` reads the DSSE payload and its type out of it.
 */
const KINDS = {
  "hashedrekord 0.0.1": {
    rows: async (spec) => [
      ...row("Artifact digest", hashText(spec.data?.hash)),
      ...row("Signature", el("code", {}, spec.signature?.content ?? "")),
      ...(await signerRows(spec.signature?.publicKey?.content)),
    ],
    signatures: () => 1,
  },
  // spec: {envelopeHash, payloadHash, signatures: [{signature, verifier}]}; the log keeps the
  // DSSE envelope (envelope.md: {payload: base64, payloadType, signatures}) as submitted.
  "dsse 0.0.1": {
    rows: async (spec) => [
      ...row("Payload hash", hashText(spec.payloadHash)),
      ...row("Envelope hash", hashText(spec.envelopeHash)),
      ...(await signatureRows(spec.signatures ?? [])),
    ],
    signatures: (spec) => spec.signatures?.length ?? 0,
    kept: "envelope",
    keptHash: (spec) => spec.envelopeHash?.value,
    payloadHash: (spec) => spec.payloadHash?.value,
    open: (spec, kept) => {
      const envelope = JSON.parse(text(kept));
      return { payloadType: envelope.payloadType, payload: fromBase64(envelope.payload ?? "") };
    },
  },
  // spec.content: {envelope: {payloadType, signatures: [{keyid?, publicKey, sig}]}, hash,
  // payloadHash}; `sig` is base64 of the signature's base64 text. The log keeps the payload.
  "intoto 0.0.2": {
    rows: async (spec) => {
      const c = spec.content ?? {};
      return [
        ...row("Payload hash", hashText(c.payloadHash)),
        ...row("Envelope hash", hashText(c.hash), muted(" (as the client computed it)")),
        ...row("Payload type", el("code", {}, c.envelope?.payloadType ?? "")),
        ...(await signatureRows((c.envelope?.signatures ?? []).map((s) => (
          { signature: text(fromBase64(s.sig ?? "")), verifier: s.publicKey })))),
      ];
    },
    signatures: (spec) => spec.content?.envelope?.signatures?.length ?? 0,
    kept: "payload",
    keptHash: (spec) => spec.content?.payloadHash?.value,
    payloadHash: (spec) => spec.content?.payloadHash?.value,
    open: (spec, kept) => ({ payloadType: spec.content?.envelope?.payloadType, payload: kept }),
  },
};

/** One in-toto subject digest (a DigestSet member): a search link where the log indexes it. */
function digestItem(algorithm, value) {
  const q = `${algorithm}:${value}`;
  const searchable = SEARCHABLE[algorithm] === value.length && /^[0-9a-f]+$/.test(value);
  return el("li", {}, searchable ? el("a", { href: `/?q=${q}` }, q) : el("code", {}, q));
}

/** Rows for a DSSE payload: its type and, for an in-toto Statement, predicate type and subjects. */
function payloadRows(payloadType, payload) {
  const rows = [...row("Payload type", el("code", {}, String(payloadType)))];
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    return [...rows, ...row("Payload", `${payload.length} bytes, not an in-toto statement`)];
  }
  // in-toto Statement v1: {_type, subject: [{name, digest: {ALGORITHM: HEX}}], predicateType, predicate}.
  const statement = JSON.parse(text(payload));
  if (!STATEMENT_TYPES.includes(statement._type)) throw new Error("the payload is not an in-toto Statement");
  const subjects = (Array.isArray(statement.subject) ? statement.subject : []).map((s) => el("li", {},
    el("strong", {}, String(s.name ?? "(no name)")),
    el("ul", {}, ...Object.entries(s.digest ?? {}).map(([a, v]) => digestItem(a, String(v))))));
  rows.push(
    ...row("Statement type", el("code", {}, statement._type)),
    ...row("Predicate type", el("code", {}, String(statement.predicateType))),
    ...row("Subjects", el("ul", { id: "subjects" }, ...subjects)),
    ...row("Statement", el("pre", { tabindex: "0" }, JSON.stringify(statement, null, 2))),
  );
  return rows;
}

/**
 * The attestation kept beside an entry (`attestation.data`, base64): checked against the
 * hashes the body records (SHA-256 of the kept bytes, and of the DSSE payload in them), then
 * shown. Returns the check's description, or null if the log keeps nothing for the entry;
 * throws if what it keeps is not what the body records.
 */
async function showAttestation(kind, spec, entry) {
  const section = byId("attestation-section");
  section.hidden = false;
  const out = byId("attestation");
  if (typeof entry.attestation?.data !== "string") {
    out.replaceChildren(...row(`The ${kind.kept}`, muted(
      `not available: the log keeps no ${kind.kept} for this entry, so its payload and subjects cannot be shown`)));
    return null;
  }
  const kept = fromBase64(entry.attestation.data);
  const keptHash = hex(await sha256(kept));
  if (keptHash !== kind.keptHash(spec)) {
    out.replaceChildren(...row(`The ${kind.kept}`, muted("not shown: it is not the one the entry records")));
    throw new Error(`the ${kind.kept} the log keeps hashes to sha256:${keptHash}, not the one the entry records`);
  }
  const { payloadType, payload } = kind.open(spec, kept);
  if (hex(await sha256(payload)) !== kind.payloadHash(spec)) {
    throw new Error(`the kept ${kind.kept}'s payload does not hash to the entry's payloadHash`);
  }
  out.replaceChildren(...payloadRows(payloadType, payload));
  const what = `The ${kind.kept} the log keeps hashes to the entry's ${kind.kept}Hash (SHA-256 ${keptHash.slice(0, 16)}…)`;
  return kind.kept === "envelope" ? `${what}, and its payload to the payloadHash.` : `${what}.`;
}

/** The bundle link, where the server can build one (tlog/server/explorer entry_bundle). */
function showBundleLink(kind, spec, entry) {
  const link = byId("bundle-link");
  const why = !kind ? "this log cannot bundle an entry of this kind"
    : kind.kept && typeof entry.attestation?.data !== "string"
      ? `a Sigstore bundle carries the DSSE envelope, and the log keeps no ${kind.kept} for this entry`
      : kind.signatures(spec) !== 1 ? `a Sigstore bundle names one signer, and this entry has ${kind.signatures(spec)} signatures`
        : null;
  if (why === null) {
    link.href = `${API}/log/entries/${uuid}/bundle`;
    return;
  }
  link.hidden = true;
  byId("bundle-note").hidden = false;
  byId("bundle-note").textContent = `No Sigstore bundle to download: ${why}. The raw LogEntry below has everything the log holds.`;
}

async function main() {
  fillSearch();
  byId("entry-uuid").textContent = uuid;
  const status = byId("verify-status");
  const steps = byId("verify-steps");
  const step = (what) => steps.append(el("li", {}, `✓ ${what}`));
  let entry;
  try {
    const answer = await getJson(`${API}/log/entries/${uuid}`);
    byId("raw").textContent = JSON.stringify(answer, null, 2);
    [entry] = Object.values(answer);
  } catch (e) {
    setStatus(status, "bad", `The entry could not be read: ${e.message}`);
    return;
  }
  const bodyBytes = fromBase64(entry.body);
  const body = JSON.parse(text(bodyBytes));
  const spec = body.spec ?? {};
  const kind = KINDS[`${body.kind} ${body.apiVersion}`];
  const p = entry.verification.inclusionProof;
  byId("summary").replaceChildren(
    ...row("Kind", `${body.kind} ${body.apiVersion}`),
    ...row("Log index", String(entry.logIndex)),
    ...row("Integrated time", formatTime(entry.integratedTime)),
    ...row("Log ID", el("span", { class: "hash" }, entry.logID)),
  );
  showBundleLink(kind, spec, entry);
  byId("proof").replaceChildren(
    ...row("Tree size", String(p.treeSize)),
    ...row("Root hash", el("span", { class: "hash" }, p.rootHash)),
    ...row("Path", el("ol", {}, ...p.hashes.map((h) => el("li", { class: "hash" }, h)))),
    ...row("Checkpoint", el("pre", { tabindex: "0" }, p.checkpoint)),
  );
  try {
    if (!kind) throw new Error(`the explorer does not know ${body.kind} ${body.apiVersion} entries`);
    byId("body").replaceChildren(...(await kind.rows(spec)));
  } catch (e) {
    byId("body").replaceChildren(...row("Could not decode", e.message));
  }
  // The kept attestation is checked against the body whatever the proof says: its outcome
  // joins the other checks below.
  let attested = null;
  let attestationError = null;
  if (kind?.kept) {
    try {
      attested = await showAttestation(kind, spec, entry);
    } catch (e) {
      attestationError = e;
    }
  }
  try {
    const leaf = await leafHash(bodyBytes);
    if (hex(leaf) !== uuid) throw new Error("the body does not hash to this entry's UUID");
    step("The body's RFC 6962 leaf hash is the entry UUID.");
    const key = await logKey();
    if (hex(key.logId) !== entry.logID) throw new Error("the entry's logID is not the log key's");
    const cp = await verifyCheckpoint(p.checkpoint, key);
    step(`The checkpoint (tree size ${cp.size}) is signed by the log's ${key.algorithm} key, logID ${entry.logID.slice(0, 16)}….`);
    if (cp.size !== BigInt(p.treeSize) || !equalBytes(cp.root, fromHex(p.rootHash))) {
      throw new Error("the proof's tree size or root hash is not the signed checkpoint's");
    }
    if (p.logIndex !== entry.logIndex) throw new Error("the proof is for another log index");
    await verifyInclusion(p.logIndex, cp.size, leaf, p.hashes.map(fromHex), cp.root);
    step(`The inclusion path of ${p.hashes.length} hashes leads from the leaf to the checkpoint's root (RFC 9162 §2.1.3.2).`);
    if (attestationError) throw attestationError;
    if (attested) step(attested);
    const unkept = kind?.kept && !attested ? ` The log keeps no ${kind.kept} for it: its payload was not checked.` : "";
    setStatus(status, "ok", `Verified in your browser: entry ${entry.logIndex} is in the log at tree size ${cp.size}.${unkept}`);
  } catch (e) {
    setStatus(status, "bad", `Verification FAILED: ${e.message}. Do not trust this entry.`);
  }
}

main();
