#include "bindings/json_text.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

using json = nlohmann::json;

// `text` cut to `limit` bytes at a UTF-8 boundary, the cut marked.
std::string Shown(absl::string_view text, size_t limit) {
  if (text.size() <= limit) return std::string(text);
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return absl::StrCat(text.substr(0, end), "... (", text.size(), " bytes)");
}

// Builds the value as nlohmann's own DOM parser does (the parser itself does not
// recurse), counting depth and keeping integers exact.
class Reader final : public nlohmann::json_sax<json> {
 public:
  Reader(JsonText& out, int max_depth) : out_(out), max_depth_(max_depth) {}

  json TakeRoot() { return std::move(root_); }

  bool null() override { return Put(json(nullptr)); }
  bool boolean(bool value) override { return Put(json(value)); }
  bool number_integer(number_integer_t value) override { return Put(json(value)); }
  bool number_unsigned(number_unsigned_t value) override { return Put(json(value)); }
  bool number_float(number_float_t value, const string_t& text) override {
    // An integer literal arrives here only when it did not fit in 64 bits.
    if (text.find_first_of(".eE") == string_t::npos) return Unfit(text);
    return Put(json(value));
  }
  bool string(string_t& value) override { return Put(json(std::move(value))); }
  bool binary(binary_t& value) override { return Put(json::binary(std::move(value))); }
  bool start_object(std::size_t) override { return Open(json::object()); }
  bool start_array(std::size_t) override { return Open(json::array()); }
  bool key(string_t& key) override {
    frames_.back().key = key;
    return true;
  }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string& token,
                   const nlohmann::detail::exception& e) override {
    constexpr int kNumberOverflow = 406;  // past a double's range: parsing cannot go on
    if (e.id == kNumberOverflow && token.find_first_of(".eE") == std::string::npos) {
      Unfit(token);
      return false;
    }
    return Fail(JsonText::kSyntax, absl::StrCat("not valid JSON: ", Shown(e.what(), 300)));
  }

 private:
  struct Frame {
    json* container;
    std::string key;  // an object's current key
  };

  // Where the next value goes, as "args.xs[2]" (bounded: a deep path is summarized).
  std::string Path() const {
    constexpr size_t kHead = 8, kTail = 4, kKey = 40;
    std::string out;
    for (size_t i = 0; i < frames_.size(); ++i) {
      if (frames_.size() > kHead + kTail && i == kHead) {
        out += "...";
        i = frames_.size() - kTail;
      }
      const Frame& frame = frames_[i];
      if (frame.container->is_array()) {
        bool open_child = i + 1 < frames_.size();  // the last element, still being read
        absl::StrAppend(&out, "[", frame.container->size() - (open_child ? 1 : 0), "]");
      } else {
        absl::StrAppend(&out, i == 0 ? "" : ".", Shown(frame.key, kKey));
      }
    }
    return out.empty() ? "the value" : out;
  }

  // Puts `value` where the next value goes; returns where it is.
  json* Place(json value) {
    if (frames_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Frame& top = frames_.back();
    if (top.container->is_array()) {
      top.container->push_back(std::move(value));
      return &top.container->back();
    }
    json& slot = (*top.container)[top.key];
    slot = std::move(value);
    return &slot;
  }
  bool Put(json value) {
    Place(std::move(value));
    return true;
  }

  bool Open(json container) {
    if (static_cast<int>(frames_.size()) >= max_depth_) {
      return Fail(JsonText::kTooDeep,
                  absl::StrCat("nested deeper than ", max_depth_,
                               " levels of arrays and objects (at ", Path(), ")"));
    }
    frames_.push_back({Place(std::move(container)), ""});
    return true;
  }

  bool Close() {
    frames_.pop_back();
    return true;
  }

  bool Unfit(const string_t& text) {
    std::string shown = Shown(text, 40);
    if (!frames_.empty() && frames_.front().container->is_object()) {
      out_.unfit_top_keys.emplace(frames_.front().key, shown);
    }
    if (out_.problem == JsonText::kNone) {
      out_.problem = JsonText::kUnfitInteger;
      out_.status = absl::InvalidArgumentError(
          absl::StrCat(Path(), ": integer ", shown,
                       " does not fit in 64 bits (integers must lie in [-2^63, 2^64))"));
    }
    return Put(json(nullptr));
  }

  bool Fail(JsonText::Problem problem, std::string message) {
    out_.problem = problem;
    out_.status = absl::InvalidArgumentError(std::move(message));
    return false;
  }

  json root_;
  JsonText& out_;
  const int max_depth_;
  std::vector<Frame> frames_;
};

}  // namespace

JsonText ReadJsonText(absl::string_view text, int max_depth) {
  JsonText out;
  Reader reader(out, max_depth);
  bool done = json::sax_parse(text.begin(), text.end(), &reader);
  if (done && (out.problem == JsonText::kNone || out.problem == JsonText::kUnfitInteger)) {
    out.value = reader.TakeRoot();
  } else {
    out.value = json(json::value_t::discarded);
    if (out.problem != JsonText::kUnfitInteger) out.unfit_top_keys.clear();
  }
  return out;
}

absl::StatusOr<json> ParseJsonText(absl::string_view text, int max_depth) {
  JsonText read = ReadJsonText(text, max_depth);
  if (read.problem != JsonText::kNone) return read.status;
  return std::move(read.value);
}

}  // namespace pyhost
