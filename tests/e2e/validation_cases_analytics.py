"""One case per contract rule of the analytics service (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.analytics.v1 import analytics_service_pb2 as pb
from caas.analytics.v1 import resources_pb2 as res
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
DAY = 86_400


def interval(days: float, start: int = 1_767_225_600) -> res.Interval:
    """From `start` (2026-01-01) for `days`."""
    return res.Interval(start_time=timestamp_pb2.Timestamp(seconds=start),
                        end_time=timestamp_pb2.Timestamp(seconds=start + int(days * DAY)))


def series(**fields: object) -> pb.QueryTimeSeriesRequest:
    request = {"parent": APP, "metrics": [res.METRIC_MESSAGES], "interval": interval(1),
               "granularity": res.GRANULARITY_DAY, **fields}
    return pb.QueryTimeSeriesRequest(**request)  # type: ignore[arg-type]


def top(**fields: object) -> pb.QueryTopListRequest:
    request = {"parent": APP, "ranking": res.RANKING_MOST_ACTIVE_USERS,
               "interval": interval(1), **fields}
    return pb.QueryTopListRequest(**request)  # type: ignore[arg-type]


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("analytics QueryTimeSeries parent pattern", "QueryTimeSeries", series(parent="apps/X"),
     {"parent": "string.pattern"}),
    ("analytics QueryTimeSeries metrics required", "QueryTimeSeries", series(metrics=[]),
     {"metrics": "required"}),
    ("analytics QueryTimeSeries metric unspecified", "QueryTimeSeries",
     series(metrics=[res.METRIC_MESSAGES, 0]), {"metrics[1]": "enum.not_in"}),
    ("analytics QueryTimeSeries metric undefined", "QueryTimeSeries", series(metrics=[99]),
     {"metrics[0]": "enum.defined_only"}),
    ("analytics QueryTimeSeries metric twice", "QueryTimeSeries",
     series(metrics=[res.METRIC_MESSAGES, res.METRIC_MESSAGES]),
     {"metrics": "repeated.unique"}),
    ("analytics QueryTimeSeries too many metrics", "QueryTimeSeries",
     series(metrics=list(range(1, 13))), {"metrics": "repeated.max_items",
                                          "metrics[11]": "enum.defined_only"}),
    ("analytics QueryTimeSeries interval required", "QueryTimeSeries",
     pb.QueryTimeSeriesRequest(parent=APP, metrics=[res.METRIC_MESSAGES],
                               granularity=res.GRANULARITY_DAY),
     {"interval": "required"}),
    ("analytics QueryTimeSeries interval end required", "QueryTimeSeries",
     series(interval=res.Interval(start_time=timestamp_pb2.Timestamp(seconds=1))),
     {"interval.end_time": "required"}),
    ("analytics QueryTimeSeries interval start required", "QueryTimeSeries",
     series(interval=res.Interval(end_time=timestamp_pb2.Timestamp(seconds=1))),
     {"interval.start_time": "required"}),
    ("analytics QueryTimeSeries interval before 1970", "QueryTimeSeries",
     series(interval=interval(1, start=-DAY)), {"interval.start_time": "timestamp.gte_lt"}),
    ("analytics QueryTimeSeries interval after 2099", "QueryTimeSeries",
     series(interval=interval(2, start=4_102_444_800 - DAY)),
     {"interval.end_time": "timestamp.gte_lte"}),
    ("analytics QueryTimeSeries interval backwards", "QueryTimeSeries",
     series(interval=interval(-1)),
     {"": "query_time_series.interval_order"}),
    ("analytics QueryTimeSeries interval empty", "QueryTimeSeries", series(interval=interval(0)),
     {"": "query_time_series.interval_order"}),
    ("analytics QueryTimeSeries hours over 31 days", "QueryTimeSeries",
     series(granularity=res.GRANULARITY_HOUR, interval=interval(31.01)),
     {"": "query_time_series.interval_length"}),
    ("analytics QueryTimeSeries days over 400 days", "QueryTimeSeries",
     series(interval=interval(401)),
     {"": "query_time_series.interval_length"}),
    ("analytics QueryTimeSeries months over 3660 days", "QueryTimeSeries",
     series(granularity=res.GRANULARITY_MONTH, interval=interval(3661)),
     {"": "query_time_series.interval_length"}),
    ("analytics QueryTimeSeries granularity required", "QueryTimeSeries", series(granularity=0),
     {"granularity": "required"}),
    ("analytics QueryTimeSeries granularity undefined", "QueryTimeSeries", series(granularity=7),
     {"granularity": "enum.defined_only"}),
    ("analytics QueryTimeSeries breakdown undefined", "QueryTimeSeries", series(breakdown=9),
     {"breakdown": "enum.defined_only", "": "query_time_series.breakdown"}),
    ("analytics QueryTimeSeries method breakdown of messages", "QueryTimeSeries",
     series(metrics=[res.METRIC_API_CALLS, res.METRIC_MESSAGES],
            breakdown=res.BREAKDOWN_METHOD), {"": "query_time_series.breakdown"}),
    ("analytics QueryTimeSeries outcome breakdown of API calls", "QueryTimeSeries",
     series(metrics=[res.METRIC_API_CALLS], breakdown=res.BREAKDOWN_OUTCOME),
     {"": "query_time_series.breakdown"}),
    ("analytics QueryTopList parent pattern", "QueryTopList", top(parent="apps/"),
     {"parent": "string.pattern"}),
    ("analytics QueryTopList ranking required", "QueryTopList", top(ranking=0),
     {"ranking": "required"}),
    ("analytics QueryTopList ranking undefined", "QueryTopList", top(ranking=5),
     {"ranking": "enum.defined_only"}),
    ("analytics QueryTopList interval required", "QueryTopList",
     pb.QueryTopListRequest(parent=APP, ranking=res.RANKING_MOST_ACTIVE_USERS),
     {"interval": "required"}),
    ("analytics QueryTopList interval start required", "QueryTopList",
     top(interval=res.Interval(end_time=timestamp_pb2.Timestamp(seconds=1))),
     {"interval.start_time": "required"}),
    ("analytics QueryTopList interval end required", "QueryTopList",
     top(interval=res.Interval(start_time=timestamp_pb2.Timestamp(seconds=1))),
     {"interval.end_time": "required"}),
    ("analytics QueryTopList interval before 1970", "QueryTopList",
     top(interval=interval(1, start=-DAY)), {"interval.start_time": "timestamp.gte_lt"}),
    ("analytics QueryTopList interval after 2099", "QueryTopList",
     top(interval=interval(1, start=4_102_444_800)),
     {"interval.start_time": "timestamp.gte_lt", "interval.end_time": "timestamp.gte_lte"}),
    ("analytics QueryTopList interval backwards", "QueryTopList", top(interval=interval(-2)),
     {"": "query_top_list.interval_order"}),
    ("analytics QueryTopList over 400 days", "QueryTopList", top(interval=interval(400.5)),
     {"": "query_top_list.interval_length"}),
    ("analytics QueryTopList limit", "QueryTopList", top(limit=101), {"limit": "int32.gte_lte"}),
    ("analytics QueryTopList negative limit", "QueryTopList", top(limit=-1),
     {"limit": "int32.gte_lte"}),
]
