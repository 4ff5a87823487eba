"""caas.users.v1.UsersService: protobuf in, domain calls, protobuf out — nothing else."""

from __future__ import annotations

from caas.users.v1 import resources_pb2 as res
from caas.users.v1 import users_service_pb2 as pb

from services.core.names import parse_app, parse_user, user_name
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.users.actions import UsersActions
from services.users.models import Block, User, UserChanges


def user_proto(user: User) -> res.User:
    return res.User(
        name=user_name(user.app_id, user.user_id), display_name=user.display_name,
        image_uri=user.image_uri, metadata=dict(user.metadata),
        state=res.User.STATE_DELETED if user.deleted else res.User.STATE_ACTIVE,
        create_time=timestamp(user.create_time), update_time=timestamp(user.update_time),
        delete_time=timestamp(user.delete_time), role=user.role)


def block_proto(block: Block) -> res.Block:
    return res.Block(name=f"{user_name(block.app_id, block.user_id)}/blocks/{block.blocked_id}",
                     blocked_user_id=block.blocked_id,
                     create_time=timestamp(block.create_time))


def _changes(user: res.User, paths: set[str] | None) -> UserChanges:
    """The profile fields to write: those in `paths`, or all set ones when None."""
    def wanted(field: str) -> bool:
        return field in paths if paths is not None else True

    return UserChanges(
        display_name=user.display_name if wanted("display_name") else None,
        image_uri=user.image_uri if wanted("image_uri") else None,
        metadata=dict(user.metadata) if wanted("metadata") else None,
        role=user.role if wanted("role") and (paths is not None or user.role) else None)


def _parse_block(name: str) -> tuple[str, str, str]:
    parent, _, blocked_id = name.partition("/blocks/")
    app_id, user_id = parse_user(parent, "name")
    return app_id, user_id, blocked_id


class UsersServicer:
    def __init__(self, actions: UsersActions) -> None:
        self._actions = actions

    async def CreateUser(self, request: pb.CreateUserRequest, call: Call
                         ) -> pb.CreateUserResponse:
        user = await self._actions.do_create_user(
            call.principal, parse_app(request.parent, "parent"), request.user_id,
            _changes(request.user, None))
        return pb.CreateUserResponse(user=user_proto(user))

    async def GetUser(self, request: pb.GetUserRequest, call: Call) -> pb.GetUserResponse:
        user = await self._actions.get_user(call.principal, *parse_user(request.name, "name"))
        return pb.GetUserResponse(user=user_proto(user))

    async def ListUsers(self, request: pb.ListUsersRequest, call: Call) -> pb.ListUsersResponse:
        page = await self._actions.list_users(call.principal, parse_app(request.parent, "parent"),
                                              request.page_size, request.page_token,
                                              request.filter, request.order_by)
        return pb.ListUsersResponse(users=[user_proto(u) for u in page.items],
                                    next_page_token=page.next_page_token)

    async def UpdateUser(self, request: pb.UpdateUserRequest, call: Call
                         ) -> pb.UpdateUserResponse:
        app_id, user_id = parse_user(request.user.name, "user.name")
        user = await self._actions.do_update_user(
            call.principal, app_id, user_id,
            _changes(request.user, set(request.update_mask.paths)), request.allow_missing)
        return pb.UpdateUserResponse(user=user_proto(user))

    async def DeleteUser(self, request: pb.DeleteUserRequest, call: Call
                         ) -> pb.DeleteUserResponse:
        user = await self._actions.do_delete_user(call.principal,
                                                  *parse_user(request.name, "name"))
        return pb.DeleteUserResponse(user=user_proto(user))

    async def CreateBlock(self, request: pb.CreateBlockRequest, call: Call
                          ) -> pb.CreateBlockResponse:
        app_id, user_id = parse_user(request.parent)
        block = await self._actions.do_create_block(call.principal, app_id, user_id,
                                                    request.block.blocked_user_id)
        return pb.CreateBlockResponse(block=block_proto(block))

    async def DeleteBlock(self, request: pb.DeleteBlockRequest, call: Call
                          ) -> pb.DeleteBlockResponse:
        await self._actions.do_delete_block(call.principal, *_parse_block(request.name))
        return pb.DeleteBlockResponse()

    async def ListBlocks(self, request: pb.ListBlocksRequest, call: Call
                         ) -> pb.ListBlocksResponse:
        app_id, user_id = parse_user(request.parent)
        page = await self._actions.list_blocks(call.principal, app_id, user_id,
                                               request.page_size, request.page_token)
        return pb.ListBlocksResponse(blocks=[block_proto(b) for b in page.items],
                                     next_page_token=page.next_page_token)
