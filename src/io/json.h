// io/json: checks on JSON text that the cJSON parser cannot make.
//
// cJSON decodes the escape \u0000 into a NUL byte inside a C string, so the
// string is silently cut there ("ab\u0000cd" reads as "ab"). Every loader that
// reads strings from JSON calls json_find_nul on the text first and refuses the
// file (or line), naming the field, instead of using a shortened value.
#ifndef RLHF_IO_JSON_H
#define RLHF_IO_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/base.h"

// Looks for a string (key or value) holding the escape \u0000 in text[0, len).
// Returns 1 and writes where it is into where[cap] -- a quoted path such as
// `"messages[2].content"` or `"chosen"`, or `a key in "weight_map"` -- or 0
// when there is none (where may be NULL). Never fails on invalid JSON (the path is then a best guess; the
// parser reports the syntax error).
int json_find_nul(const char *text, size_t len, char *where, size_t cap);

// Reads the file at path as one JSON document (a settings or metadata file such
// as task.json, vpl.json, ensemble.json). NULL + err naming the file when it
// cannot be read, when a string in it holds \u0000 (json_find_nul's path is
// named), or when it is not valid JSON. Free with cJSON_Delete.
cJSON *json_read_doc(const char *path, rlhf_err *err);
// The same, and NULL + err ("PATH: not a JSON object") unless it is an object.
cJSON *json_read_object(const char *path, rlhf_err *err);

#endif
