// Merkle tree proofs of RFC 9162 (Certificate Transparency 2.0), checked with WebCrypto.
//
// A faithful port of the two verification algorithms: §2.1.3.2 (inclusion) and §2.1.4.2
// (consistency), step by step, over the RFC 6962 §2.1 hashes (SHA-256 with a 0x00 prefix for
// leaves and 0x01 for interior nodes). Sizes and indexes are BigInts: the algorithms shift
// and test bits of 64-bit numbers, which JavaScript's 32-bit bitwise operators cannot do.
// Tested with the transparency-dev/merkle vectors (tests/js/merkle.test.mjs).

const HASH_SIZE = 32;

export class ProofError extends Error {}

/** SHA-256 of bytes (WebCrypto: window.crypto in a browser, globalThis.crypto in Node 20). */
export async function sha256(bytes) {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** RFC 6962 §2.1: MTH({d(0)}) = SHA-256(0x00 || d(0)), the leaf hash of an entry body. */
export function leafHash(body) {
  return sha256(concat(Uint8Array.of(0), body));
}

/** RFC 6962 §2.1: SHA-256(0x01 || left || right), an interior node. */
function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

export function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkHash(h, what) {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new ProofError(`${what} is not a ${HASH_SIZE}-byte hash`);
  }
}

const lsb = (n) => (n & 1n) === 1n;

/**
 * RFC 9162 §2.1.3.2: verify that `leaf` (a leaf hash) is at `index` in the tree of `size`
 * leaves whose root is `root`, given the inclusion path `proof` (an array of hashes).
 * Resolves if it is, throws ProofError if not.
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  index = BigInt(index);
  size = BigInt(size);
  checkHash(leaf, "the leaf hash");
  checkHash(root, "the root hash");
  proof.forEach((p, i) => checkHash(p, `proof hash ${i}`));
  // 1. leaf_index must be below tree_size.
  if (index < 0n || index >= size) {
    throw new ProofError(`leaf index ${index} is not below the tree size ${size}`);
  }
  // 2. fn = leaf_index, sn = tree_size - 1.
  let fn = index;
  let sn = size - 1n;
  // 3. r = hash.
  let r = leaf;
  // 4. For each value p in the inclusion_path array:
  for (const p of proof) {
    // 4a. If sn is 0, stop and fail.
    if (sn === 0n) throw new ProofError("the inclusion proof is longer than the path to the root");
    if (lsb(fn) || fn === sn) {
      // 4b. r = HASH(0x01 || p || r); if LSB(fn) is not set, right-shift fn and sn
      // until LSB(fn) is set or fn is 0.
      r = await nodeHash(p, r);
      while (!lsb(fn) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      // Otherwise r = HASH(0x01 || r || p).
      r = await nodeHash(r, p);
    }
    // 4c. Right-shift fn and sn once.
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5. sn must be 0 and r must equal the root hash.
  if (sn !== 0n) throw new ProofError("the inclusion proof is shorter than the path to the root");
  if (!equalBytes(r, root)) throw new ProofError("the inclusion proof does not lead to the root hash");
}

/**
 * RFC 9162 §2.1.4.2: verify that the tree of `first` leaves with root `firstRoot` is a prefix
 * of the tree of `second` leaves with root `secondRoot`, given the consistency path `proof`.
 * Resolves if it is, throws ProofError if not.
 */
export async function verifyConsistency(first, second, proof, firstRoot, secondRoot) {
  first = BigInt(first);
  second = BigInt(second);
  // §2.1.4: first must be 0 < first ≤ second; a proof from the empty tree proves nothing.
  if (first <= 0n || first > second) {
    throw new ProofError(`no consistency proof exists from size ${first} to size ${second}`);
  }
  // §2.1.4.1: for first == second the proof is empty and the two roots are the same.
  if (first === second) {
    if (proof.length !== 0) throw new ProofError("a proof between equal sizes must be empty");
    if (!equalBytes(firstRoot, secondRoot)) throw new ProofError("equal sizes with different roots");
    return;
  }
  checkHash(firstRoot, "the first root hash");
  checkHash(secondRoot, "the second root hash");
  proof.forEach((p, i) => checkHash(p, `proof hash ${i}`));
  // 1. If consistency_path is empty, fail.
  if (proof.length === 0) throw new ProofError("the consistency proof is empty");
  // 2. If first is an exact power of 2, prepend first_hash to consistency_path.
  const path = (first & (first - 1n)) === 0n ? [firstRoot, ...proof] : [...proof];
  // 3. fn = first - 1, sn = second - 1.
  let fn = first - 1n;
  let sn = second - 1n;
  // 4. If LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
  while (lsb(fn)) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5. fr = sr = the first value of consistency_path.
  let fr = path[0];
  let sr = path[0];
  // 6. For each subsequent value c in consistency_path:
  for (const c of path.slice(1)) {
    // 6a. If sn is 0, stop and fail.
    if (sn === 0n) throw new ProofError("the consistency proof is longer than it can be");
    if (lsb(fn) || fn === sn) {
      // 6b. fr = HASH(0x01 || c || fr), sr = HASH(0x01 || c || sr); if LSB(fn) is not
      // set, right-shift fn and sn until LSB(fn) is set or fn is 0.
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!lsb(fn) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      // Otherwise sr = HASH(0x01 || sr || c).
      sr = await nodeHash(sr, c);
    }
    // 6c. Right-shift fn and sn once.
    fn >>= 1n;
    sn >>= 1n;
  }
  // 7. fr must equal first_hash, sr second_hash, and sn must be 0.
  if (sn !== 0n) throw new ProofError("the consistency proof is shorter than it must be");
  if (!equalBytes(fr, firstRoot)) throw new ProofError("the proof does not lead to the first root");
  if (!equalBytes(sr, secondRoot)) throw new ProofError("the proof does not lead to the second root");
}
