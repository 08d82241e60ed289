// The explorer's RFC 9162 verifiers (tlog/server/explorer/static/merkle.js) against the
// transparency-dev/merkle vectors in tests/data/merkle/, as tests/test_merkle.py runs them
// against the Python ones. Run by tests/test_explorer_js.py: `node --test tests/js/`.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { leafHash, ProofError, verifyConsistency, verifyInclusion } from
  "../../tlog/server/explorer/static/merkle.js";

const VECTORS = fileURLToPath(new URL("../data/merkle/", import.meta.url));
const b64 = (s) => new Uint8Array(Buffer.from(s ?? "", "base64"));

function vectors(kind) {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".json")) out.push(path);
    }
  };
  walk(join(VECTORS, kind));
  return out;
}

async function outcome(check) {
  try {
    await check();
    return "verified";
  } catch (e) {
    assert.ok(e instanceof ProofError, `not a ProofError: ${e}`);
    return "refused";
  }
}

for (const kind of ["inclusion", "consistency"]) {
  const paths = vectors(kind);
  test(`the ${kind} vectors are there`, () => assert.ok(paths.length > 50));
  for (const path of paths) {
    const v = JSON.parse(readFileSync(path, "utf8"));
    const proof = (v.proof ?? []).map(b64);
    test(`${kind}: ${path.slice(VECTORS.length)}`, async () => {
      const check = kind === "inclusion"
        ? () => verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proof, b64(v.root))
        : () => verifyConsistency(v.size1, v.size2, proof, b64(v.root1), b64(v.root2));
      assert.equal(await outcome(check), v.wantErr ? "refused" : "verified");
    });
  }
}

test("leaf hash of the empty entry is RFC 6962's", async () => {
  // SHA-256(0x00): the first leaf of the vectors' tree.
  assert.equal(Buffer.from(await leafHash(new Uint8Array())).toString("hex"),
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
});

test("indexes past 2^32 shift as 64-bit numbers", async () => {
  // A leaf at 2^33 in a tree of 2^33 + 1 leaves: its path is the one root of the left
  // 2^33 leaves. Number's 32-bit `>>` would lose the high bits and refuse it.
  const leaf = await leafHash(Uint8Array.of(1));
  const left = new Uint8Array(32).fill(7);
  const root = new Uint8Array(await crypto.subtle.digest("SHA-256", Buffer.concat([Buffer.of(1), left, leaf])));
  await verifyInclusion(2n ** 33n, 2n ** 33n + 1n, leaf, [left], root);
});
