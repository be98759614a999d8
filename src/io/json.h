// io/json: checks on JSON text that the cJSON parser cannot make.
//
// cJSON decodes the escape \u0000 into a NUL byte inside a C string, so the
// string is silently cut there ("ab\u0000cd" reads as "ab"). Every loader that
// reads strings from JSON calls json_find_nul on the text first and refuses the
// file (or line), naming the field, instead of using a shortened value.
#ifndef RLHF_IO_JSON_H
#define RLHF_IO_JSON_H

#include <stddef.h>

// Looks for a string (key or value) holding the escape \u0000 in text[0, len).
// Returns 1 and writes where it is into where[cap] -- a quoted path such as
// `"messages[2].content"` or `"chosen"`, or `a key in "weight_map"` -- or 0
// when there is none (where may be NULL). Never fails on invalid JSON (the path is then a best guess; the
// parser reports the syntax error).
int json_find_nul(const char *text, size_t len, char *where, size_t cap);

#endif
