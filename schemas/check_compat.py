#!/usr/bin/python3
"""make check-schemas: every schemas/*.avsc parses, follows the conventions of
schemas/README.md, and is compatible BOTH ways (old reader/new writer and new
reader/old writer) with its version at the last release tag (release-* or v*).

Prints one line per schema and "schemas: N passed, M failed"; exits 1 on any failure.
Run with the system python (/usr/bin/python3), which has python3-avro.
"""
import glob
import json
import os
import re
import subprocess
import sys

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_RE = re.compile(r"^([a-z][a-z0-9_]*)\.v([1-9][0-9]*)\.avsc$")
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
TS = {"type": "long", "logicalType": "timestamp-micros"}


def git(*args):
    r = subprocess.run(["git", "-C", TOP, *args], capture_output=True, text=True)
    return r.returncode, r.stdout


def last_tag():
    """The last release: a release-* or v* tag, else the commit in schemas/BASELINE."""
    rc, out = git("describe", "--tags", "--abbrev=0", "--match", "release-*", "--match", "v*")
    if rc == 0 and out.strip():
        return out.strip()
    try:
        with open(os.path.join(TOP, "schemas", "BASELINE")) as f:
            lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    except OSError:
        return None
    if lines and git("cat-file", "-e", lines[0] + "^{commit}")[0] == 0:
        return lines[0]
    return None


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def lint(doc, path):
    """The conventions of schemas/README.md that a compatibility check cannot see."""
    problems = []

    def walk_type(t, where):
        if isinstance(t, str):
            return
        if isinstance(t, list):
            if len(t) != 2 or t[0] != "null" or t[1] == "null":
                problems.append(f"{where}: only [\"null\", T] unions are allowed")
            for b in t:
                walk_type(b, where)
            return
        kind = t.get("type")
        if kind in ("record", "enum", "fixed") and not t.get("doc"):
            problems.append(f"{where}: {kind} {t.get('name')} has no doc")
        if kind == "record":
            walk_record(t, where)
        elif kind == "array":
            walk_type(t["items"], where + "[]")
        elif kind == "map":
            walk_type(t["values"], where + "{}")

    def walk_record(rec, where):
        for f in rec.get("fields", []):
            fw = f"{where}.{f['name']}" if where else f["name"]
            t = f["type"]
            if not f.get("doc"):
                problems.append(f"{fw}: field has no doc")
            if isinstance(t, list) and ("default" not in f or f["default"] is not None):
                problems.append(f"{fw}: a [\"null\", T] field must have \"default\": null")
            base = t[1] if isinstance(t, list) and len(t) == 2 else t
            if f["name"].endswith("_minor") and base != "long":
                problems.append(f"{fw}: money amounts (*_minor) are long")
            if f["name"] == "currency" and base != "string":
                problems.append(f"{fw}: currency is a string")
            if f["name"].endswith("_at") and base != TS:
                problems.append(f"{fw}: timestamps (*_at) are long timestamp-micros")
            walk_type(t, fw)

    if not doc.get("doc"):
        problems.append("record has no doc")
    fields = doc.get("fields", [])
    if [f["name"] for f in fields[:2]] != ["message_id", "occurred_at"] or fields[0]["type"] != "string":
        problems.append("the first fields must be message_id (string) and occurred_at")
    m = FILE_RE.match(os.path.basename(path))
    if not m:
        problems.append("file name must be <snake_name>.v<N>.avsc")
    elif m.group(1) != snake(doc["name"].split(".")[-1]):
        problems.append(f"file name must start with {snake(doc['name'].split('.')[-1])}")
    walk_record(doc, "")
    return problems


def enum_orders(schema, out, seen):
    """fullname -> symbols for every enum in a parsed schema."""
    t = schema.type
    if t == "enum":
        out[schema.fullname] = list(schema.symbols)
    elif t in ("record", "error"):
        if schema.fullname in seen:
            return out
        seen.add(schema.fullname)
        for f in schema.fields:
            enum_orders(f.type, out, seen)
    elif t == "array":
        enum_orders(schema.items, out, seen)
    elif t == "map":
        enum_orders(schema.values, out, seen)
    elif t == "union":
        for b in schema.schemas:
            enum_orders(b, out, seen)
    return out


def compat(reader, writer):
    r = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if r.compatibility is SchemaCompatibilityType.compatible:
        return None
    return "; ".join(r.messages) or "incompatible"


def check(path, tag):
    """Returns (ok, note)."""
    rel = os.path.relpath(path, TOP)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
        new = avro.schema.parse(text)
    except Exception as e:  # python3-avro raises several exception types
        return False, f"does not parse: {e}"
    problems = lint(doc, path)
    if problems:
        return False, "; ".join(problems)
    old, against = new, "itself"
    if tag:
        rc, old_text = git("show", f"{tag}:{rel}")
        if rc == 0:
            try:
                old = avro.schema.parse(old_text)
            except Exception as e:
                return False, f"version at {tag} does not parse: {e}"
            against = tag
        else:
            against = f"itself (new since {tag})"
    if old.fullname != new.fullname:
        return False, f"full name changed from {old.fullname} at {against}"
    for direction, reader, writer in (("old reader, new writer", old, new),
                                      ("new reader, old writer", new, old)):
        why = compat(reader, writer)
        if why:
            return False, f"{direction} incompatible with {against}: {why}"
    old_enums, new_enums = enum_orders(old, {}, set()), enum_orders(new, {}, set())
    for name, symbols in old_enums.items():
        if new_enums.get(name, symbols)[: len(symbols)] != symbols:
            return False, f"enum {name} symbols reordered or removed since {against}"
    return True, f"compatible both ways with {against}"


def main():
    paths = sorted(glob.glob(os.path.join(TOP, "schemas", "*.avsc")))
    tag = last_tag()
    if tag:
        print(f"schemas: comparing with release {tag}")
    else:
        print("schemas: no release tag or schemas/BASELINE commit; each schema is checked against itself")
    passed = failed = 0
    for path in paths:
        ok, note = check(path, tag)
        rel = os.path.relpath(path, TOP)
        print(f"  {'ok  ' if ok else 'FAIL'} {rel}: {note}")
        passed, failed = passed + ok, failed + (not ok)
    if tag:
        rc, out = git("ls-tree", "--name-only", tag, "schemas/")
        for rel in out.split() if rc == 0 else []:
            if rel.endswith(".avsc") and not os.path.exists(os.path.join(TOP, rel)):
                print(f"  FAIL {rel}: removed since {tag}; old messages could no longer be decoded")
                failed += 1
    print(f"schemas: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
