"""The delivery service's rules for what enters a conversation's MLS group.

Pure functions of the group state, the parsed message and the directory: the actions
gather those, these decide, and the message store applies the result atomically (a
commit only if the epoch is still the one it was built on).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from services.conversations.models import MlsGroup
from services.core.errors import Aborted, FailedPrecondition, InvalidArgument, invalid_field
from services.e2ee import mls
from services.e2ee.models import Device

MLS_FIELD = "message.mls.message"
WELCOME_FIELD = "message.mls.welcome"


def invalid(field: str, description: str) -> InvalidArgument:
    return invalid_field(field, description, "MLS_MESSAGE_INVALID")


def refused(rule: str, description: str) -> FailedPrecondition:
    return FailedPrecondition("MLS_COMMIT_REFUSED", description, metadata={"rule": rule})


def stale(state: MlsGroup, epoch: int) -> Aborted:
    return Aborted("MLS_EPOCH_STALE",
                   f"built on epoch {epoch}, the group is at epoch {state.epoch}: process the"
                   " messages after the last one you processed (commits included), then"
                   " build it again",
                   metadata={"epoch": str(state.epoch),
                             "commit_sequence": str(state.commit_sequence)})


def removal_pending(leaves: Collection[int]) -> FailedPrecondition:
    listed = ",".join(str(i) for i in sorted(leaves))
    return FailedPrecondition(
        "MLS_REMOVAL_PENDING", f"leaves {listed} must be removed first: commit their removal "
        "(E2eeService.GetGroup lists them), then send again", metadata={"leaves": listed})


def parse(data: bytes) -> mls.Framed:
    try:
        return mls.parse_framed(data)
    except mls.MlsError as exc:
        raise invalid(MLS_FIELD, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Checked:
    """An MLS message the group takes: its kind and epoch, and for a commit the state
    it makes and the devices its Welcome adds."""

    content_type: int
    epoch: int
    state: MlsGroup | None = None  # a commit's next state (commit_sequence unset)
    welcomed: tuple[str, ...] = ()  # device keys


def _header(group_id: bytes, state: MlsGroup, framed: mls.Framed) -> None:
    if framed.group_id != group_id:
        raise invalid(MLS_FIELD, "its group id is not this conversation's group's")
    if framed.epoch != state.epoch:
        raise stale(state, framed.epoch)


def check_application(group_id: bytes, state: MlsGroup, framed: mls.Framed,
                      pending: Collection[int]) -> Checked:
    """An application message: a PrivateMessage of the current epoch, while no leaf
    awaits removal."""
    if framed.content_type != mls.APPLICATION or framed.wire_format != mls.PRIVATE_MESSAGE:
        raise invalid(MLS_FIELD, "must be an application PrivateMessage or a commit"
                      " PublicMessage (proposals go inside commits, by value)")
    _header(group_id, state, framed)
    if pending:
        raise removal_pending(pending)
    return Checked(mls.APPLICATION, framed.epoch)


def _sender_leaves(state: MlsGroup, framed: mls.Framed, sender: Device
                   ) -> tuple[list[str | None], int]:
    """The leaves before the commit, and the group's cipher suite, once the sender is
    known to hold its leaf (the first commit makes its creator leaf 0)."""
    if framed.sender_type != mls.MEMBER:
        raise refused("sender", "commits come from members: devices join by Welcome")
    if state.epoch == 0 and not state.leaves:
        if framed.sender_leaf != 0:
            raise refused("sender", "the first commit comes from leaf 0, the creator")
        leaves: list[str | None] = [sender.key]
        suite = sender.cipher_suite
    else:
        leaves, suite = list(state.leaves), state.cipher_suite
        if framed.sender_leaf >= len(leaves) or leaves[framed.sender_leaf] != sender.key:
            raise refused("sender", f"leaf {framed.sender_leaf} is not the device"
                          f" {sender.device_id!r} of the caller")
    if framed.path_leaf is not None and (
            framed.path_leaf.identity != sender.identity
            or framed.path_leaf.signature_key != sender.signature_key):
        raise refused("credential", "the committer's leaf must keep its device's credential"
                      " and signature key")
    return leaves, suite


def _removals(leaves: list[str | None], framed: mls.Framed, pending: Collection[int]
              ) -> set[int]:
    removed: set[int] = set()
    for proposal in framed.proposals:
        if proposal.kind in (mls.UPDATE, mls.REINIT, mls.EXTERNAL_INIT):
            raise refused("proposal", "commits may add, remove, change extensions and use"
                          " pre-shared keys; an update goes in the commit's path")
        if proposal.kind != mls.REMOVE:
            continue
        index = proposal.removed
        if index >= len(leaves) or leaves[index] is None or index in removed:
            raise refused("remove", f"leaf {index} is blank")
        if index == framed.sender_leaf:
            raise refused("remove", "a committer cannot remove itself")
        if index not in pending:
            raise refused("remove", f"leaf {index} holds a device of a member: only leaves"
                          " of members who left or of deleted devices go")
        removed.add(index)
    return removed


def _added(package: mls.KeyPackage, suite: int, members: Mapping[bytes, Device]) -> Device:
    """The device a KeyPackage adds: a registered device of a member, as registered."""
    device = members.get(package.leaf.identity)
    if device is None:
        raise refused("add_not_member", f"{package.leaf.identity.decode(errors='replace')!r}"
                      " is no registered device of a member of the conversation")
    if package.cipher_suite != suite:
        raise refused("cipher_suite", f"{device.name} uses cipher suite"
                      f" {package.cipher_suite}, the group {suite}")
    if package.leaf.signature_key != device.signature_key:
        raise refused("signature_key", f"the KeyPackage of {device.name} does not carry its"
                      " registered signature key")
    if not package.verify():
        raise refused("signature", f"the KeyPackage of {device.name} is not validly signed")
    return device


def check_commit(group_id: bytes, state: MlsGroup, framed: mls.Framed, welcome: bytes,
                 sender: Device, members: Mapping[bytes, Device], pending: Collection[int]
                 ) -> Checked:
    """A commit from the caller's device `sender`. `members`: the registered devices of
    the conversation's members, by credential identity; `pending`: the leaves whose
    device was deleted or whose user left. Proposals apply as RFC 9420 §12.3 orders
    them: removals, then additions, each into the leftmost blank leaf."""
    if framed.wire_format != mls.PUBLIC_MESSAGE or framed.content_type != mls.COMMIT:
        raise invalid(MLS_FIELD, "a commit must be sent as a PublicMessage, for the delivery"
                      " service to check it")
    _header(group_id, state, framed)
    leaves, suite = _sender_leaves(state, framed, sender)
    for index in _removals(leaves, framed, pending):
        leaves[index] = None
    added = [p.key_package for p in framed.proposals if p.key_package is not None]
    welcomed: list[str] = []
    for package in added:
        device = _added(package, suite, members)
        if device.key in leaves or device.key in welcomed:
            raise refused("add_twice", f"{device.name} is in the group already")
        blank = next((i for i, key in enumerate(leaves) if key is None), len(leaves))
        if blank == len(leaves):
            leaves.append(device.key)
        else:
            leaves[blank] = device.key
        welcomed.append(device.key)
    while leaves and leaves[-1] is None:
        leaves.pop()
    _check_welcome(welcome, suite, added)
    state = replace(state, epoch=state.epoch + 1, cipher_suite=suite, leaves=tuple(leaves))
    return Checked(mls.COMMIT, framed.epoch, state, tuple(welcomed))


def _check_welcome(welcome: bytes, suite: int, added: list[mls.KeyPackage]) -> None:
    if not added:
        if welcome:
            raise invalid(WELCOME_FIELD, "only a commit that adds devices has a Welcome")
        return
    if not welcome:
        raise invalid(WELCOME_FIELD, "a commit that adds devices needs its Welcome")
    try:
        welcome_suite, refs = mls.parse_welcome(welcome)
    except mls.MlsError as exc:
        raise invalid(WELCOME_FIELD, str(exc)) from None
    if welcome_suite != suite or set(refs) != {p.reference() for p in added}:
        raise invalid(WELCOME_FIELD, "must welcome exactly the devices the commit adds")
