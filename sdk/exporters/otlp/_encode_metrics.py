"""MetricsData to OTLP's ``ExportMetricsServiceRequest``, with opentelemetry-proto's messages.

Metrics are encoded once per export interval, off the recording path, so the generated
messages serve (spans, encoded per span on the hot path, have the hand-written encoder in
``_encode``). OTLP/JSON writes trace and span ids as hex, not base64: ``encode_metrics_json``
converts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from telemetry_run.sdk.metrics.data import (
    Exemplar,
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)

__all__ = ["encode_metrics", "encode_metrics_json", "metrics_request"]


def _any_value(target: Any, value: object) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list | tuple):
        array = target.array_value
        for item in value:
            _any_value(array.values.add(), item)
    else:
        target.string_value = str(value)


def _attributes(target: Any, attributes: Mapping[str, object] | None) -> None:
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        pair = target.add()
        pair.key = str(key)
        _any_value(pair.value, value)


def _number(target: Any, value: float) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 63):
        target.as_int = value
    else:
        target.as_double = float(value)


def _exemplars(target: Any, exemplars: tuple[Exemplar, ...] | Any) -> None:
    for exemplar in exemplars:
        message = target.add()
        _attributes(message.filtered_attributes, exemplar.filtered_attributes)
        message.time_unix_nano = exemplar.time_unix_nano
        _number(message, exemplar.value)
        if exemplar.trace_id:
            message.trace_id = exemplar.trace_id.to_bytes(16, "big")
            message.span_id = exemplar.span_id.to_bytes(8, "big")


def _common(message: Any, point: Any) -> None:
    """What every data point has: attributes, start time and time."""
    _attributes(message.attributes, point.attributes)
    message.start_time_unix_nano = point.start_time_unix_nano
    message.time_unix_nano = point.time_unix_nano


def _metric(target: Any, metric: Metric) -> None:
    target.name = metric.name
    target.description = metric.description
    target.unit = metric.unit
    data = metric.data
    if isinstance(data, Sum | Gauge):
        if isinstance(data, Sum):
            block = target.sum
            block.aggregation_temporality = int(data.aggregation_temporality)
            block.is_monotonic = data.is_monotonic
        else:
            block = target.gauge
        for point in data.data_points:
            message = block.data_points.add()
            _common(message, point)
            _number(message, point.value)
            _exemplars(message.exemplars, point.exemplars)
    elif isinstance(data, Histogram):
        block = target.histogram
        block.aggregation_temporality = int(data.aggregation_temporality)
        for hpoint in data.data_points:
            message = block.data_points.add()
            _common(message, hpoint)
            message.count = hpoint.count
            message.sum = hpoint.sum
            message.bucket_counts.extend(hpoint.bucket_counts)
            message.explicit_bounds.extend(hpoint.explicit_bounds)
            if hpoint.count and not math.isinf(hpoint.min):
                message.min = hpoint.min
                message.max = hpoint.max
            _exemplars(message.exemplars, hpoint.exemplars)
    elif isinstance(data, ExponentialHistogram):
        block = target.exponential_histogram
        block.aggregation_temporality = int(data.aggregation_temporality)
        for epoint in data.data_points:
            message = block.data_points.add()
            _common(message, epoint)
            message.count = epoint.count
            message.sum = epoint.sum
            message.scale = epoint.scale
            message.zero_count = epoint.zero_count
            message.positive.offset = epoint.positive_offset
            message.positive.bucket_counts.extend(epoint.positive_bucket_counts)
            message.negative.offset = epoint.negative_offset
            message.negative.bucket_counts.extend(epoint.negative_bucket_counts)
            if epoint.count and not math.isinf(epoint.min):
                message.min = epoint.min
                message.max = epoint.max
            _exemplars(message.exemplars, epoint.exemplars)


def metrics_request(data: MetricsData) -> Any:
    """The ``ExportMetricsServiceRequest`` message of ``data``."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    request = metrics_service_pb2.ExportMetricsServiceRequest()
    for resource_metrics in data.resource_metrics:
        rm = request.resource_metrics.add()
        _attributes(rm.resource.attributes, resource_metrics.resource.attributes)
        rm.schema_url = resource_metrics.schema_url
        for scope_metrics in resource_metrics.scope_metrics:
            sm = rm.scope_metrics.add()
            scope = scope_metrics.scope
            sm.scope.name = scope.name
            sm.scope.version = scope.version or ""
            _attributes(sm.scope.attributes, scope.attributes)
            sm.schema_url = scope_metrics.schema_url
            for metric in scope_metrics.metrics:
                _metric(sm.metrics.add(), metric)
    return request


def encode_metrics(data: MetricsData) -> bytes:
    """``data`` as a serialized ``ExportMetricsServiceRequest`` (OTLP/protobuf)."""
    body: bytes = metrics_request(data).SerializeToString()
    return body


def encode_metrics_json(data: MetricsData) -> bytes:
    """``data`` as OTLP/JSON: protobuf's JSON mapping, with hex trace and span ids."""
    import base64
    import json

    from google.protobuf import json_format

    document = json_format.MessageToDict(metrics_request(data))

    def hex_ids(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hex_ids(value)
        elif isinstance(node, list):
            for item in node:
                hex_ids(item)

    hex_ids(document)
    return json.dumps(document, separators=(",", ":")).encode()
