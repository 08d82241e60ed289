# Type stubs for pymerkle 7, which ships none: the API tlog and its tests use, with the types
# its docstrings give. tlog.server.tree subclasses BaseMerkleTree; tests cross-check proofs.
from pymerkle.backends import InmemoryTree as InmemoryTree
from pymerkle.core import BaseMerkleTree as BaseMerkleTree, InvalidChallenge as InvalidChallenge
from pymerkle.proof import (
    ConsistencyProof as ConsistencyProof,
    InclusionProof as InclusionProof,
    InvalidProof as InvalidProof,
    MerkleProof as MerkleProof,
    verify_consistency as verify_consistency,
    verify_inclusion as verify_inclusion,
)

__version__: str
