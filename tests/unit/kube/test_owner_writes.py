"""ownerbatch.write_owners: one read and one checked write for a batch, re-read on conflict."""

import pytest

from metalcubed.controllers.kube import ownerbatch
from metalcubed.core import outcome
from metalcubed.core.api import meta


def ref(name: str, uid: str = "") -> meta.OwnerReference:
    return meta.OwnerReference(api_version="v1", kind="Owner", name=name, uid=uid or name)


class Object:
    """The server's copy; `update` conflicts the first `conflicts` times."""

    def __init__(self, refs: tuple[meta.OwnerReference, ...], conflicts: int = 0) -> None:
        self.current = meta.Secret(metadata=meta.ObjectMeta(
            name="s", resource_version="1", owner_references=refs))
        self.conflicts, self.reads, self.writes = conflicts, 0, 0

    def get(self) -> meta.Resource:
        self.reads += 1
        return self.current

    def update(self, obj: meta.Resource) -> meta.Resource:
        self.writes += 1
        if self.conflicts:
            self.conflicts -= 1
            raise outcome.Conflict("Secret", "s", "Conflict")
        self.current = obj.with_meta(resource_version=str(self.writes + 1))
        return self.current


def test_a_batch_is_one_read_and_one_write() -> None:
    obj = Object((ref("first"),))
    got = ownerbatch.write_owners(obj.get, obj.update, (ref("a"), ref("b")))
    assert [r.name for r in got.metadata.owner_references] == ["first", "a", "b"]
    assert (obj.reads, obj.writes) == (1, 1)


def test_owners_already_there_write_nothing_and_a_re_created_one_is_replaced() -> None:
    obj = Object((ref("a"), ref("b", uid="old")))
    assert ownerbatch.write_owners(obj.get, obj.update, (ref("a"),)) is obj.current
    assert obj.writes == 0
    got = ownerbatch.write_owners(obj.get, obj.update, (ref("b", uid="new"),))
    assert [(r.name, r.uid) for r in got.metadata.owner_references] == [("a", "a"), ("b", "new")]


def test_conflicts_re_read_and_retry_then_give_up() -> None:
    obj = Object((), conflicts=2)
    got = ownerbatch.write_owners(obj.get, obj.update, (ref("a"),))
    assert got.metadata.owner_references == (ref("a"),) and obj.reads == 3
    always = Object((), conflicts=ownerbatch.ATTEMPTS)
    with pytest.raises(outcome.Conflict):
        ownerbatch.write_owners(always.get, always.update, (ref("a"),))
    assert always.writes == ownerbatch.ATTEMPTS
