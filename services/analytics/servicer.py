"""caas.analytics.v1.AnalyticsService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from datetime import UTC

from caas.analytics.v1 import analytics_service_pb2 as pb
from caas.analytics.v1 import resources_pb2 as res

from services.analytics.actions import AnalyticsActions
from services.analytics.models import Granularity, Metric
from services.core.names import app_name, parse_app
from services.core.protoconv import timestamp
from services.gateway.gateway import Call

METRICS = {res.METRIC_MESSAGES: Metric.MESSAGES,
           res.METRIC_ACTIVE_USERS: Metric.ACTIVE_USERS,
           res.METRIC_NEW_USERS: Metric.NEW_USERS,
           res.METRIC_CONVERSATIONS_CREATED: Metric.CONVERSATIONS_CREATED,
           res.METRIC_ACTIVE_CONVERSATIONS: Metric.ACTIVE_CONVERSATIONS,
           res.METRIC_MEDIA_UPLOADS: Metric.MEDIA_UPLOADS,
           res.METRIC_MEDIA_BYTES: Metric.MEDIA_BYTES,
           res.METRIC_API_CALLS: Metric.API_CALLS,
           res.METRIC_PEAK_STREAMS: Metric.PEAK_STREAMS,
           res.METRIC_WEBHOOK_DELIVERIES: Metric.WEBHOOK_DELIVERIES,
           res.METRIC_WEBHOOK_DEAD_LETTERS: Metric.WEBHOOK_DEAD_LETTERS}
_METRIC_OF = {metric: number for number, metric in METRICS.items()}
GRANULARITIES = {res.GRANULARITY_HOUR: Granularity.HOUR, res.GRANULARITY_DAY: Granularity.DAY,
                 res.GRANULARITY_MONTH: Granularity.MONTH}
BREAKDOWNS = {res.BREAKDOWN_UNSPECIFIED: "", res.BREAKDOWN_METHOD: "method",
              res.BREAKDOWN_CODE: "code", res.BREAKDOWN_OUTCOME: "outcome"}
RANKINGS = {res.RANKING_BUSIEST_CONVERSATIONS: (Metric.CONVERSATION_MESSAGES, "conversations"),
            res.RANKING_MOST_ACTIVE_USERS: (Metric.USER_MESSAGES, "users")}


class AnalyticsServicer:
    def __init__(self, actions: AnalyticsActions) -> None:
        self._actions = actions

    async def QueryTimeSeries(self, request: pb.QueryTimeSeriesRequest, call: Call
                              ) -> pb.QueryTimeSeriesResponse:
        found = await self._actions.query_series(
            call.principal, parse_app(request.parent, "parent"),
            [METRICS[m] for m in request.metrics],
            request.interval.start_time.ToDatetime(tzinfo=UTC),
            request.interval.end_time.ToDatetime(tzinfo=UTC),
            GRANULARITIES[request.granularity], BREAKDOWNS[request.breakdown])
        stamps = {at: timestamp(at) for at, _ in found[0].points} if found else {}
        return pb.QueryTimeSeriesResponse(time_series=[
            res.TimeSeries(metric=_METRIC_OF[series.metric], labels=series.labels,
                           points=[res.Point(start_time=stamps[at], value=value)
                                   for at, value in series.points])
            for series in found])

    async def QueryTopList(self, request: pb.QueryTopListRequest, call: Call
                           ) -> pb.QueryTopListResponse:
        app_id = parse_app(request.parent, "parent")
        metric, collection = RANKINGS[request.ranking]
        found = await self._actions.top_list(
            call.principal, app_id, metric, request.interval.start_time.ToDatetime(tzinfo=UTC),
            request.interval.end_time.ToDatetime(tzinfo=UTC), request.limit)
        return pb.QueryTopListResponse(entries=[
            res.TopEntry(name=f"{app_name(app_id)}/{collection}/{member}", messages=count)
            for member, count in found])
