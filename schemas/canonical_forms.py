#!/usr/bin/python3
"""Prints "<fullname>\\t<Parsing Canonical Form>" for each schema given (default: all
schemas/*.avsc), computed by python3-avro: the second implementation that
tests/unit/test_serde.c checks lib/serde.c's canonical forms against.

One correction is applied to python3-avro 1.11's output. For a primitive that carries a
logical type ({"type": "long", "logicalType": "timestamp-micros"}) it writes
{"type":"long"}; the spec's [STRIP] and [PRIMITIVES] rules (and the Java reference
implementation) give "long". Every catalogue schema has timestamps, so without the
correction no fingerprint would match Java's. Anything else is python3-avro's own output.
"""
import glob
import json
import os
import sys

import avro.schema

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def fix_primitives(node):
    if isinstance(node, dict):
        if set(node) == {"type"} and node["type"] in PRIMITIVES:
            return node["type"]
        return {k: fix_primitives(v) for k, v in node.items()}
    if isinstance(node, list):
        return [fix_primitives(v) for v in node]
    return node


def main(paths):
    if not paths:
        top = os.path.dirname(os.path.abspath(__file__))
        paths = sorted(glob.glob(os.path.join(top, "*.avsc")))
    for path in paths:
        with open(path, encoding="utf-8") as f:
            schema = avro.schema.parse(f.read())
        # canonical_form is json.dumps(to_canonical_json(), separators=(",", ":"))
        pcf = json.dumps(fix_primitives(schema.to_canonical_json()), separators=(",", ":"))
        print(f"{schema.fullname}\t{pcf}")


if __name__ == "__main__":
    main(sys.argv[1:])
