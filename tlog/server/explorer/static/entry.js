// The entry page `/entry/UUID`: what was logged, decoded from the entry's own bytes, and the
// proof that it is in the log, checked here: the body hashes to the UUID (RFC 6962 §2.1
// leaf hash), the checkpoint is signed by the log key, and the inclusion path leads from the
// leaf to the checkpoint's root (RFC 9162 §2.1.3.2). "Verified" is said only after all three.

import {
  API, byId, el, fillSearch, formatTime, fromBase64, fromHex, getJson, hex, logKey, pemBody, row, setStatus,
  verifyCheckpoint,
} from "./common.js";
import { describeCertificate, keyAlgorithm } from "./der.js";
import { equalBytes, leafHash, sha256, verifyInclusion } from "./merkle.js";

const uuid = decodeURIComponent(location.pathname.split("/").pop()).toLowerCase().slice(-64);

/** The signed content of a hashedrekord body: digest, signature, key or certificate. */
async function showBody(body) {
  const spec = body.spec ?? {};
  const hash = spec.data?.hash ?? {};
  const pem = new TextDecoder().decode(fromBase64(spec.signature?.publicKey?.content ?? ""));
  const der = pemBody(pem);
  let spki = der;
  const rows = [
    ...row("Artifact digest", el("code", {}, `${hash.algorithm}:${hash.value}`)),
    ...row("Signature", el("code", {}, spec.signature?.content ?? "")),
  ];
  if (pem.includes("BEGIN CERTIFICATE")) {
    const cert = describeCertificate(der);
    spki = cert.spki;
    const identities = [...cert.emails, ...cert.uris];
    rows.push(
      ...row("Signed with", "an X.509 certificate"),
      ...row("Identity", identities.length ? identities.join(", ") : el("span", { class: "muted" }, "none in the certificate")),
      ...row("OIDC issuer", cert.oidcIssuer ?? el("span", { class: "muted" }, "none (not a Fulcio certificate)")),
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
  byId("body").replaceChildren(...rows);
}

async function main() {
  fillSearch();
  byId("entry-uuid").textContent = uuid;
  byId("bundle-link").href = `${API}/log/entries/${uuid}/bundle`;
  const status = byId("verify-status");
  const steps = byId("verify-steps");
  const step = (text) => steps.append(el("li", {}, `✓ ${text}`));
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
  const body = JSON.parse(new TextDecoder().decode(bodyBytes));
  const p = entry.verification.inclusionProof;
  byId("summary").replaceChildren(
    ...row("Kind", `${body.kind} ${body.apiVersion}`),
    ...row("Log index", String(entry.logIndex)),
    ...row("Integrated time", formatTime(entry.integratedTime)),
    ...row("Log ID", el("span", { class: "hash" }, entry.logID)),
  );
  byId("proof").replaceChildren(
    ...row("Tree size", String(p.treeSize)),
    ...row("Root hash", el("span", { class: "hash" }, p.rootHash)),
    ...row("Path", el("ol", {}, ...p.hashes.map((h) => el("li", { class: "hash" }, h)))),
    ...row("Checkpoint", el("pre", { tabindex: "0" }, p.checkpoint)),
  );
  try {
    await showBody(body);
  } catch (e) {
    byId("body").replaceChildren(...row("Could not decode", e.message));
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
    setStatus(status, "ok", `Verified in your browser: entry ${entry.logIndex} is in the log at tree size ${cp.size}.`);
  } catch (e) {
    setStatus(status, "bad", `Verification FAILED: ${e.message}. Do not trust this entry's proof.`);
  }
}

main();
