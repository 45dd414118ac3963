#include "audit_hooks/sqlite_database.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace pyhost {
namespace {

// URI text with %XX escapes decoded, as SQLite decodes it; nullopt if malformed or
// if it would hold a NUL (SQLite would stop there).
std::optional<std::string> PercentDecode(absl::string_view text) {
  auto hex = [](char c) {
    return absl::ascii_isdigit(c)    ? c - '0'
           : absl::ascii_isxdigit(c) ? absl::ascii_tolower(c) - 'a' + 10
                                     : -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) return std::nullopt;
    int value = hex(text[i + 1]) * 16 + hex(text[i + 2]);
    if (value == 0) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

}  // namespace

bool SqliteDatabaseAllowed(Sandbox& sandbox, absl::string_view name, std::string* why) {
  if (!sandbox.policy().enforce || name.empty() || name == ":memory:") return true;
  std::string path(name);
  // SQLite's URI filenames: file:[//[localhost]]path[?key=value&...][#fragment].
  if (absl::StartsWith(name, "file:")) {
    absl::string_view rest = name.substr(5);
    rest = rest.substr(0, rest.find('#'));
    size_t question = rest.find('?');
    absl::string_view query = question == absl::string_view::npos ? "" : rest.substr(question + 1);
    rest = rest.substr(0, question);
    if (absl::StartsWith(rest, "//")) {
      rest.remove_prefix(2);
      size_t slash = rest.find('/');
      absl::string_view authority = rest.substr(0, slash);
      if (!authority.empty() && authority != "localhost") {
        *why = "a URI with a host";
        return false;
      }
      rest = slash == absl::string_view::npos ? "" : rest.substr(slash);
    }
    std::optional<std::string> decoded = PercentDecode(rest);
    if (!decoded) {
      *why = "a malformed URI";
      return false;
    }
    path = *decoded;
    // In memory with exactly one mode=memory and no vfs= (several modes: the last
    // wins in SQLite; a VFS of the code's choosing: judged by the path instead).
    int modes = 0;
    bool memory = false, vfs = false;
    for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      size_t equals = pair.find('=');
      std::optional<std::string> key = PercentDecode(pair.substr(0, equals));
      std::optional<std::string> value =
          PercentDecode(equals == absl::string_view::npos ? "" : pair.substr(equals + 1));
      if (!key || !value) {
        *why = "a malformed URI";
        return false;
      }
      if (*key == "mode") {
        ++modes;
        memory = *value == "memory";
      }
      vfs = vfs || *key == "vfs";
      // SQLite's shared cache is the process's: a named in-memory database with it
      // is seen by every execution's connection of that name.
      if (*key == "cache" && *value == "shared") {
        *why = "a shared cache (cache=shared) is shared by every execution in the host";
        return false;
      }
    }
    if ((modes == 1 && memory && !vfs) || path.empty() || path == ":memory:") return true;
  }
  if (sandbox.CanWrite(path)) return true;
  *why = "outside the writable paths (WORK_DIR, OUTPUT_DIR and the policy's)";
  return false;
}

}  // namespace pyhost
