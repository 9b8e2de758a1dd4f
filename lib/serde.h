/* serde.h - Avro single-object encoding of Kasir messages, with a compiled-in catalogue.
 *
 * Wire format (SPEC 3): 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of
 * the writer schema's Parsing Canonical Form, then the Avro binary body.
 * The catalogue is every schemas/<name>.vN.avsc file, embedded at build time (build/gen/ks_catalog.c).
 * Decoding always uses the writer's schema, found by fingerprint; fields are then mapped
 * by name, which is what lets a reader live with an older or newer writer.
 *
 * Messages cross this API as jansson objects, mapped one to one onto the schema:
 *   record -> object (every field present unless it has a default), long/int -> integer,
 *   string -> string, boolean -> true/false, enum -> its symbol as a string,
 *   array -> array, map -> object, bytes -> base64 string,
 *   union [null, T] (the only unions allowed) -> null or the T value,
 *   timestamp-micros -> integer microseconds since the epoch.
 * Money is always two fields: an amount as long minor units and a currency string.
 * Thread-safe after ks_serde_init(). */
#ifndef KS_SERDE_H
#define KS_SERDE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "err.h"

struct ks_schema; /* opaque; lives until ks_serde_shutdown */

/* Parses the catalogue once; idempotent; KS_ESCHEMA names the schema at fault. */
enum ks_code ks_serde_init(struct ks_err *err) __attribute__((warn_unused_result));
void ks_serde_shutdown(void);

/* Lookup by full name ("kasir.payments.PaymentRequested") or fingerprint; NULL if absent. */
const struct ks_schema *ks_schema_by_name(const char *fullname);
const struct ks_schema *ks_schema_by_fingerprint(uint64_t fp);
const char *ks_schema_name(const struct ks_schema *s);
uint64_t ks_schema_fingerprint(const struct ks_schema *s);
/* Number of catalogue entries and the i-th, for tools. */
size_t ks_schema_count(void);
const struct ks_schema *ks_schema_at(size_t i);

/* Encodes obj with schema s; *out is malloc'd (caller frees), *outlen its size.
 * KS_EINVAL with err->field set to the JSON path of a missing or ill-typed field. */
enum ks_code ks_serde_encode(const struct ks_schema *s, const json_t *obj, void **out,
                             size_t *outlen, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Decodes a single-object message. KS_EPOISON for: too short, bad magic, unknown
 * fingerprint, body that does not decode with the writer schema (err->msg says which).
 * *writer (may be NULL) gets the writer schema; *out a new reference the caller decrefs. */
enum ks_code ks_serde_decode(const void *buf, size_t len, const struct ks_schema **writer,
                             json_t **out, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Finds the writer schema of a single-object message from its header alone, without
 * decoding the body (routing, DLQ tools). KS_EPOISON as ks_serde_decode. */
enum ks_code ks_serde_peek(const void *buf, size_t len, const struct ks_schema **writer,
                           struct ks_err *err) __attribute__((warn_unused_result));

/* The message as compact JSON text, with "$schema": "<full name>" as the first member,
 * for tools (kasir-dlq show, kasir-tap). malloc'd, caller frees; NULL and err filled as
 * ks_serde_decode on failure. */
char *ks_serde_to_json_text(const void *buf, size_t len, struct ks_err *err);

/* More about a catalogue schema, all valid until ks_serde_shutdown:
 * the N of its file name schemas/<name>.vN.avsc (ks_schema_by_name returns the highest),
 * the schema text as in the file (docs included: what an object container file embeds),
 * and its Parsing Canonical Form (what the fingerprint is computed over). */
int ks_schema_version(const struct ks_schema *s);
const char *ks_schema_json(const struct ks_schema *s);
const char *ks_schema_canonical_form(const struct ks_schema *s);

/* Parsing Canonical Form of an Avro schema text (Avro spec "Parsing Canonical Form for
 * Schemas"); malloc'd string, caller frees; NULL + KS_ESCHEMA on malformed input. */
char *ks_avro_canonical_form(const char *schema_json, size_t len, struct ks_err *err);
/* CRC-64-AVRO (Rabin) fingerprint of bytes. */
uint64_t ks_avro_fingerprint64(const void *data, size_t len);

#endif
