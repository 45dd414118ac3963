#include "cli/serve.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/stop_signals.h"
#include "protocol/request_codec.h"
#include "protocol/requests.h"
#include "pyhost/outcome.h"

namespace pyhost::cli {
namespace {

using json = nlohmann::json;

json ErrorAnswer(const json& id, absl::string_view type, absl::string_view message) {
  return json{{"id", id},
              {"ok", false},
              {"error", {{"type", std::string(type)}, {"message", std::string(message)}}}};
}

// `invalid` names what an InvalidArgument means for this op.
json StatusAnswer(const json& id, const absl::Status& status,
                  absl::string_view invalid = error_type::kBadRequest) {
  return ErrorAnswer(id, ErrorTypeForStatus(status, invalid), status.message());
}

json Exec(Host& host, const json& id, const json& request) {
  absl::StatusOr<ExecRequest> exec = protocol::ExecRequestFromJson(request);
  if (!exec.ok()) return StatusAnswer(id, exec.status());
  absl::StatusOr<ExecResult> result = host.Execute(*exec);
  if (!result.ok()) return StatusAnswer(id, result.status());
  json answer = result->ToJson();
  answer["id"] = id;
  return answer;
}

json Call(Host& host, const json& id, const json& request) {
  absl::StatusOr<protocol::CallRequest> call = protocol::CallRequestFromJson(request);
  if (!call.ok()) return StatusAnswer(id, call.status());
  absl::StatusOr<ToolCallResult> result = host.CallTool(call->name, call->args);
  if (!result.ok()) return StatusAnswer(id, result.status());
  json answer = result->envelope;
  answer["id"] = id;
  answer["stdout"] = result->stdout_stream.text;
  answer["stderr"] = result->stderr_stream.text;
  answer["stats"] = result->stats.ToJson();
  return answer;
}

json Register(Host& host, const json& id, const json& request) {
  absl::StatusOr<protocol::RegisterRequest> tool = protocol::RegisterRequestFromJson(request);
  if (!tool.ok()) return StatusAnswer(id, tool.status());
  absl::Status registered = host.RegisterTool(tool->name, tool->source, tool->options);
  if (!registered.ok()) return StatusAnswer(id, registered, error_type::kToolLoad);
  return json{{"id", id}, {"ok", true}, {"name", tool->name}};
}

// A fixed set of threads running queued jobs; the destructor drains the queue. Post
// blocks while the queue is full (kMaxQueuedRequests jobs waiting, or the jobs not
// yet finished hold kMaxPendingRequestBytes): the reader's backpressure.
class Workers {
 public:
  struct Job {
    json id;
    std::function<void()> run;
    size_t bytes = 0;  // what the job holds until it finishes (its request's text)
    // Set by whoever answers the request: the job, or a forced exit's last words.
    std::shared_ptr<std::atomic<bool>> answered = std::make_shared<std::atomic<bool>>(false);
  };

  explicit Workers(int count) {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Workers() {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }
  void Post(Job job) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    struct Room {
      Workers* w;
      size_t bytes;
    } room{this, job.bytes};
    // One job is always admitted when nothing is pending, whatever its size.
    mu_.Await(absl::Condition(
        +[](Room* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->w->mu_) {
          return r->w->pending_bytes_ == 0 ||
                 (r->w->jobs_.size() < kMaxQueuedRequests &&
                  r->w->pending_bytes_ + r->bytes <= kMaxPendingRequestBytes);
        },
        &room));
    pending_bytes_ += job.bytes;
    jobs_.push_back(std::move(job));
  }
  // Waits until every job posted so far has finished.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Workers* w)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->jobs_.empty() && w->running_ == 0; },
        this));
  }
  // The jobs running now: their ids and answered flags.
  std::vector<std::pair<json, std::shared_ptr<std::atomic<bool>>>> Running()
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return running_jobs_;
  }
  // Removes the jobs not started yet and returns their ids.
  std::vector<json> Withdraw() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    std::vector<json> ids;
    for (Job& job : jobs_) {
      ids.push_back(std::move(job.id));
      pending_bytes_ -= job.bytes;
    }
    jobs_.clear();
    return ids;
  }

 private:
  void Loop() {
    StopSignals::PrepareThread();  // code runs here: its crash still removes the root
    for (;;) {
      Job job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Workers* w)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->closing_ || !w->jobs_.empty(); },
            this));
        if (jobs_.empty()) return;  // closing, and nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
        ++running_;
        running_jobs_.emplace_back(job.id, job.answered);
      }
      job.run();
      job.run = nullptr;  // what it captured (the request) is released before it counts as done
      absl::MutexLock lock(&mu_);
      --running_;
      running_jobs_.erase(std::find_if(running_jobs_.begin(), running_jobs_.end(),
                                       [&job](const auto& r) { return r.second == job.answered; }));
      pending_bytes_ -= job.bytes;
    }
  }

  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of jobs queued or running
  std::vector<std::pair<json, std::shared_ptr<std::atomic<bool>>>> running_jobs_
      ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

enum class LineRead { kLine, kTooLong, kEnd };

// Reads one line (without its '\n') of at most kMaxRequestLineBytes; a longer one is
// read through to its end and dropped, never held whole.
LineRead ReadLine(std::istream& in, std::string& line) {
  line.clear();
  std::streambuf* buffer = in.rdbuf();
  bool too_long = false;
  for (;;) {
    int c = buffer->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      if (!too_long && line.empty()) return LineRead::kEnd;
      break;  // a last line without '\n'
    }
    if (c == '\n') break;
    if (too_long) continue;
    if (line.size() == kMaxRequestLineBytes) {
      too_long = true;
      std::string().swap(line);  // release it now
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
  return too_long ? LineRead::kTooLong : LineRead::kLine;
}

}  // namespace

int Serve(Host& host, std::istream& in, std::ostream& out, int workers,
          std::function<bool()> stopping) {
  absl::Mutex out_mu;
  // Once an answer cannot be written (the client closed its end), nothing more can
  // be answered: reading stops and what was not started yet is not run.
  std::atomic<bool> output_closed{false};
  auto answer = [&](const json& line) {
    std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);
    absl::MutexLock lock(&out_mu);
    out << text << '\n' << std::flush;
    if (!out) output_closed = true;
  };
  Workers pool(workers);
  // A forced exit (code stuck in C past the stop grace) still answers every request
  // read: the running ones and those not started.
  StopSignals::Install().SetLastWords([&] {
    for (const auto& [id, answered] : pool.Running()) {
      if (answered->exchange(true)) continue;  // its own answer got there first
      answer(ErrorAnswer(id, error_type::kInterrupted,
                         "the server was stopped and this request did not end in time"));
    }
    for (const json& id : pool.Withdraw()) {
      answer(ErrorAnswer(id, error_type::kInterrupted,
                         "the server was stopped before this request ran"));
    }
  });
  absl::Cleanup no_last_words = [] { StopSignals::Install().SetLastWords(nullptr); };
  std::string line;
  for (int64_t number = 1; !output_closed; ++number) {
    LineRead read = ReadLine(in, line);
    if (read == LineRead::kEnd) break;
    if (read == LineRead::kTooLong) {
      answer(ErrorAnswer(nullptr, error_type::kBadRequest,
                         absl::StrCat("line ", number, " is longer than ", kMaxRequestLineBytes,
                                      " bytes, the limit of one request; it was skipped")));
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    protocol::ServeLine parsed = protocol::ParseServeLine(line, number);
    if (!parsed.status.ok()) {
      answer(ErrorAnswer(parsed.id, error_type::kBadRequest, parsed.status.message()));
      continue;
    }
    json request = std::move(parsed.request);
    json id = std::move(parsed.id);
    auto op = request.find("op");
    std::string op_name = op != request.end() && op->is_string() ? op->get<std::string>() : "";
    if (op_name == "register") {
      pool.Drain();  // requests read before it run against what they were sent for
      answer(Register(host, id, request));
    } else if (op_name == "exec" || op_name == "call") {
      Workers::Job job;
      job.id = id;
      job.bytes = line.size();
      job.run = [&host, &answer, &output_closed, id, op_name, answered = job.answered,
                 request = std::move(request)] {
        if (output_closed) return;  // its answer could not be given
        json reply = op_name == "exec" ? Exec(host, id, request) : Call(host, id, request);
        if (!answered->exchange(true)) answer(reply);
      };
      pool.Post(std::move(job));
    } else {
      answer(ErrorAnswer(
          id, error_type::kBadRequest,
          op == request.end()
              ? std::string("missing field 'op' (exec, call or register)")
              : absl::StrCat("unknown op ", op->dump(), " (expected exec, call or register)")));
    }
  }
  if (output_closed) return kExitCodeFailed;  // answers were lost, as exec's is
  if (stopping && stopping()) {
    for (const json& id : pool.Withdraw()) {
      answer(ErrorAnswer(id, error_type::kInterrupted,
                         "the server was stopped before this request ran"));
    }
  }
  pool.Drain();  // what is still queued or running is answered (last words still set)
  return kExitOk;
}

}  // namespace pyhost::cli
