// Just enough DER (ITU-T X.690) to show what an entry's key or certificate says, read from
// the very bytes the inclusion proof covers: the key's algorithm and curve, and of an X.509
// certificate (RFC 5280) its subject, issuer, validity, SAN email/URI identities and the
// Fulcio OIDC issuer extension. Nothing here is trusted for verification: judging a
// certificate is a verifier's job (`tlog verify`, cosign), this is for people to read.

export class DerError extends Error {}

/** One TLV at `at`: {tag, at, start (of the contents), end}. Definite lengths only (DER). */
export function readTlv(bytes, at = 0, limit = bytes.length) {
  if (at + 2 > limit) throw new DerError("truncated DER");
  const tag = bytes[at];
  let len = bytes[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new DerError("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[start + i];
    start += n;
  }
  if (start + len > limit) throw new DerError("DER length past the end");
  return { tag, at, start, end: start + len };
}

/** The TLVs inside a constructed one. */
export function children(bytes, tlv) {
  const out = [];
  for (let at = tlv.start; at < tlv.end; at = out[out.length - 1].end) out.push(readTlv(bytes, at, tlv.end));
  return out;
}

/** An OBJECT IDENTIFIER's contents as dotted text (X.690 §8.19). */
export function oid(bytes, tlv) {
  const arcs = [];
  let value = 0;
  for (let i = tlv.start; i < tlv.end; i++) {
    value = value * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = Math.min(Math.floor(arcs[0] / 40), 2);
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join(".");
}

const text = (bytes, tlv) => new TextDecoder().decode(bytes.subarray(tlv.start, tlv.end));

const NAMES = { "2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C" };
const ALGORITHMS = {
  "1.2.840.10045.2.1": "ECDSA", "1.2.840.113549.1.1.1": "RSA", "1.3.101.112": "Ed25519",
};
const CURVES = { "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521" };
const SAN = "2.5.29.17";
// Fulcio's OIDC issuer: 1.1 holds the raw string (deprecated), 1.8 a DER UTF8String.
const FULCIO_ISSUER = "1.3.6.1.4.1.57264.1.1";
const FULCIO_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8";

/** RFC 5280 Name: "CN=…, O=…" of the attributes we know. */
function name(bytes, tlv) {
  const parts = [];
  for (const rdn of children(bytes, tlv)) {
    for (const atv of children(bytes, rdn)) {
      const [type, value] = children(bytes, atv);
      const key = NAMES[oid(bytes, type)];
      if (key) parts.push(`${key}=${text(bytes, value)}`);
    }
  }
  return parts.join(", ");
}

/** UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5) as an ISO date. */
function time(bytes, tlv) {
  let t = text(bytes, tlv);
  if (tlv.tag === 0x17) t = (Number(t.slice(0, 2)) < 50 ? "20" : "19") + t;
  return `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(8, 10)}:${t.slice(10, 12)}:${t.slice(12, 14)}Z`;
}

/** A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): "ECDSA P-256", "RSA", "Ed25519". */
export function keyAlgorithm(bytes, spki = readTlv(bytes)) {
  const [algorithm] = children(bytes, spki);
  const [id, parameters] = children(bytes, algorithm);
  const kind = ALGORITHMS[oid(bytes, id)] ?? `key ${oid(bytes, id)}`;
  const curve = parameters && parameters.tag === 0x06 ? CURVES[oid(bytes, parameters)] : undefined;
  return curve ? `${kind} ${curve}` : kind;
}

/** What a person wants to see of an X.509 certificate. */
export function describeCertificate(bytes) {
  const [tbs] = children(bytes, readTlv(bytes));
  const fields = children(bytes, tbs);
  const rest = fields[0].tag === 0xa0 ? fields.slice(1) : fields; // [0] version is optional
  const [, , issuer, validity, subject, spki, ...optional] = rest;
  const [notBefore, notAfter] = children(bytes, validity);
  const out = {
    subject: name(bytes, subject), issuer: name(bytes, issuer),
    notBefore: time(bytes, notBefore), notAfter: time(bytes, notAfter),
    key: keyAlgorithm(bytes, spki), spki: bytes.subarray(spki.at, spki.end),
    emails: [], uris: [], oidcIssuer: null,
  };
  const extensions = optional.find((t) => t.tag === 0xa3);
  if (!extensions) return out;
  for (const ext of children(bytes, children(bytes, extensions)[0])) {
    const parts = children(bytes, ext);
    const id = oid(bytes, parts[0]);
    const value = parts[parts.length - 1]; // OCTET STRING, after the optional critical flag
    if (id === SAN) {
      for (const general of children(bytes, readTlv(bytes, value.start, value.end))) {
        if (general.tag === 0x81) out.emails.push(text(bytes, general)); // [1] rfc822Name
        if (general.tag === 0x86) out.uris.push(text(bytes, general)); // [6] URI
      }
    } else if (id === FULCIO_ISSUER_V2) {
      out.oidcIssuer = text(bytes, readTlv(bytes, value.start, value.end));
    } else if (id === FULCIO_ISSUER && out.oidcIssuer === null) {
      out.oidcIssuer = text(bytes, value);
    }
  }
  return out;
}

/** An ECDSA signature's DER SEQUENCE {r, s} as the r‖s WebCrypto verifies (IEEE P1363). */
export function ecdsaRaw(der, size = 32) {
  const [r, s] = children(der, readTlv(der));
  const out = new Uint8Array(2 * size);
  for (const [i, n] of [r, s].entries()) {
    let v = der.subarray(n.start, n.end);
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new DerError("ECDSA signature integer too long");
    out.set(v, (i + 1) * size - v.length);
  }
  return out;
}
