"""Parses an OpenMetrics exposition (stdin) with the Prometheus project's own Python parser,
prometheus_client.openmetrics.parser, which refuses anything off the format (a missing
# EOF, a bad label, a counter without _total...). Prints one JSON line per sample:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(
            json.dumps(
                {
                    "family": family.name,
                    "type": family.type,
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": sample.value,
                }
            )
        )
