#include "audit_hooks/stdlib_bytecode.h"

#include <Python.h>

#include <limits.h>
#include <stdlib.h>

#include <cstdint>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bindings/user_file.h"

namespace pyhost {
namespace {

constexpr size_t kPycHeaderSize = 16;  // magic, flags, and mtime+size or a hash

// The text of the marshal string whose characters start at `at`, if the bytes before
// it are a string's header: a type (FLAG_REF aside) and its length, one byte for the
// short forms, four little-endian bytes for the others.
std::optional<absl::string_view> StringAt(absl::string_view data, size_t at) {
  auto type = [&](size_t i) { return static_cast<unsigned char>(data[i]) & 0x7f; };
  if (at >= 2 && (type(at - 2) == 'z' || type(at - 2) == 'Z')) {
    size_t length = static_cast<unsigned char>(data[at - 1]);
    if (length <= data.size() - at) return data.substr(at, length);
  }
  if (at >= 5) {
    int t = type(at - 5);
    if (t == 'a' || t == 'A' || t == 'u' || t == 't') {
      uint32_t length = 0;
      for (size_t i = 1; i <= 4; ++i)
        length = length << 8 | static_cast<unsigned char>(data[at - i]);
      if (length <= data.size() - at) return data.substr(at, length);
    }
  }
  return std::nullopt;
}

// The cached bytecode of `source`, if `source` is a plain path (no "..", ".", or
// empty parts) to a .py file whose cache resolves to a regular file inside
// `stdlib_dir` holding at most `max_bytes` of bytecode (what it is compared with:
// never read more).
std::optional<std::string> GenuineBytecode(absl::string_view source, const std::string& stdlib_dir,
                                           size_t max_bytes) {
  if (absl::StrContains(source, "/../") || absl::StrContains(source, "/./") ||
      absl::StrContains(source, "//")) {
    return std::nullopt;
  }
  char resolved[PATH_MAX];
  std::string cached = CachedBytecodePath(source);
  if (realpath(cached.c_str(), resolved) == nullptr ||
      !absl::StartsWith(resolved, absl::StrCat(stdlib_dir, "/"))) {
    return std::nullopt;
  }
  absl::StatusOr<std::string> contents =
      ReadUserFile(resolved, kPycHeaderSize + max_bytes, "bytecode");
  if (!contents.ok() || contents->size() < kPycHeaderSize) return std::nullopt;
  return contents->substr(kPycHeaderSize);
}

}  // namespace

std::string CachedBytecodePath(absl::string_view source) {
  size_t slash = source.rfind('/');
  absl::string_view dir = slash == absl::string_view::npos ? "." : source.substr(0, slash);
  absl::string_view name = source.substr(slash == absl::string_view::npos ? 0 : slash + 1);
  if (absl::EndsWith(name, ".py")) name.remove_suffix(3);
  return absl::StrCat(dir, "/__pycache__/", name, ".cpython-", PY_MAJOR_VERSION, PY_MINOR_VERSION,
                      ".pyc");
}

bool IsTrustedFilename(absl::string_view filename, const std::string& stdlib_dir) {
  return absl::StartsWith(filename, absl::StrCat(stdlib_dir, "/")) ||
         absl::StartsWith(filename, "<frozen") || absl::StartsWith(filename, "<pyhost");
}

absl::Status CheckStdlibClaim(absl::string_view data, const std::string& stdlib_dir) {
  const std::string prefix = absl::StrCat(stdlib_dir, "/");
  // A claim: the stdlib directory anywhere, or a string that starts "<frozen"/"<pyhost".
  std::string claimed;
  if (data.find(prefix) != absl::string_view::npos) claimed = prefix;
  for (absl::string_view name : {"<frozen", "<pyhost"}) {
    for (size_t at = data.find(name); claimed.empty() && at != absl::string_view::npos;
         at = data.find(name, at + 1)) {
      if (std::optional<absl::string_view> text = StringAt(data, at)) claimed = std::string(*text);
    }
  }
  if (claimed.empty()) return absl::OkStatus();
  for (size_t at = data.find(prefix); at != absl::string_view::npos;
       at = data.find(prefix, at + 1)) {
    std::optional<absl::string_view> text = StringAt(data, at);
    if (!text || !absl::EndsWith(*text, ".py")) continue;
    if (claimed == prefix) claimed = std::string(*text);
    std::optional<std::string> genuine = GenuineBytecode(*text, stdlib_dir, data.size());
    if (genuine && *genuine == data) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("bytecode naming ", claimed,
                   " is not the stdlib's own (code may not pass itself off as the stdlib)"));
}

}  // namespace pyhost
