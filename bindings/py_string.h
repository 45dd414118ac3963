// Python str -> C++ text, for every place the host reads a string the code may have
// made. PyUnicode_AsUTF8 returns NULL for a str holding lone surrogates ("\ud800",
// and the "\udcXX" that surrogateescape makes of undecodable bytes): these helpers
// say so instead, and never leave a Python error set.
//
//   std::optional<std::string> name = pyhost::Utf8(value);      // decisions: exact text or nothing
//   if (!name) return Refuse(pyhost::DisplayText(value));       // messages: always some text
//   std::optional<std::string> path = pyhost::FsEncoded(value);  // the bytes the OS would get
//
// A name that cannot be encoded must never be matched as something else: judge with
// Utf8/FsEncoded (nullopt is "cannot be judged"), show with DisplayText only.
// All read the str's C-level content (a str subclass runs none of its methods).
// Thread-safety: the GIL must be held.
#ifndef PYHOST_BINDINGS_PY_STRING_H_
#define PYHOST_BINDINGS_PY_STRING_H_

#include <Python.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace pyhost {

// The UTF-8 text of `value`; nullopt if it is not a str or UTF-8 cannot encode it.
std::optional<std::string> Utf8(PyObject* value);

// What the OS gets for `value` as a path: a str in the filesystem encoding (with
// surrogateescape, as os and io use it), or a bytes object as is; nullopt for
// anything else or a str the filesystem encoding cannot encode.
std::optional<std::string> FsEncoded(PyObject* value);

// For messages, never for decisions: the UTF-8 text of a str with what UTF-8 cannot
// encode written as backslash escapes ("\ud800"); "" if `value` is not a str.
std::string DisplayText(PyObject* value);

// For messages: a new str of `text` read as UTF-8, bytes that are not UTF-8 (a path's,
// say) written as "\xff". Null only with a Python error set (out of memory).
PyObject* DisplayStr(absl::string_view text);

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_PY_STRING_H_
