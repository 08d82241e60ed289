from typing import Any, ClassVar

class InvalidProof(Exception): ...

class MerkleProof:
    kind: ClassVar[str | None]
    algorithm: str
    security: bool
    size: int
    rule: list[int]
    path: list[bytes]
    def __init__(self, algorithm: str, security: bool, size: int, rule: list[int],
                 path: list[bytes]) -> None: ...
    def get_metadata(self) -> dict[str, Any]: ...
    def serialize(self) -> dict[str, Any]: ...
    def compute_root(self) -> bytes: ...

class InclusionProof(MerkleProof):
    index: int
    def __init__(self, algorithm: str, security: bool, size: int, index: int, rule: list[int],
                 path: list[bytes]) -> None: ...
    def verify(self, base: bytes, root: bytes, index: int | None = None, size: int | None = None,
               algorithm: str | None = None, security: bool = True) -> None: ...

class ConsistencyProof(MerkleProof):
    prior_size: int
    subset: list[int]
    def __init__(self, algorithm: str, security: bool, size: int, prior_size: int,
                 rule: list[int], subset: list[int], path: list[bytes]) -> None: ...
    def retrieve_prior_state(self) -> bytes: ...
    def verify(self, prior_state: bytes, later_state: bytes, prior_size: int | None = None,
               later_size: int | None = None, algorithm: str | None = None,
               security: bool = True) -> None: ...

def verify_inclusion(base: bytes, root: bytes, proof: InclusionProof, index: int | None = None,
                     size: int | None = None, algorithm: str | None = None,
                     security: bool = True) -> None: ...
def verify_consistency(prior_state: bytes, later_state: bytes, proof: ConsistencyProof,
                       prior_size: int | None = None, later_size: int | None = None,
                       algorithm: str | None = None, security: bool = True) -> None: ...
