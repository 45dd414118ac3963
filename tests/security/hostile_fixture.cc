#include "tests/security/hostile_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <locale.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testing/descriptors.h"

extern char** environ;

namespace pyhost::hostile {

using testutil::ListDir;
using testutil::WriteFile;

// --- small POSIX helpers -------------------------------------------------------------

std::string RandomToken(const char* prefix) {
  unsigned char bytes[12] = {};
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(bytes), sizeof(bytes));
  std::string token = prefix;
  static const char* hex = "0123456789abcdef";
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 15];
  }
  return token;
}

namespace {

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// Moves `fd` to the number `target` (close-on-exec), closing the original.
void MoveFd(int fd, int target) {
  ASSERT_GE(fd, 0) << strerror(errno);
  if (fd == target) return;
  ASSERT_EQ(dup3(fd, target, O_CLOEXEC), target) << strerror(errno);
  close(fd);
}

int ListenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int DrainConnections(int listener, int timeout_ms) {
  pollfd p{listener, POLLIN, 0};
  poll(&p, 1, timeout_ms);
  int count = 0;
  for (;;) {
    int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) break;
    ++count;
    close(c);
  }
  return count;
}

std::map<unsigned long, int> OwnListeningSockets() {
  std::set<unsigned long> own;
  for (int fd : testutil::OpenDescriptors()) {
    unsigned long inode = 0;
    if (sscanf(testutil::DescriptorTarget(fd).c_str(), "socket:[%lu]", &inode) == 1)
      own.insert(inode);
  }
  std::map<unsigned long, int> listening;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::istringstream lines(ReadFile(table));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      unsigned long inode = 0;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state != "0A" || !own.count(inode)) continue;
      listening[inode] =
          static_cast<int>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return listening;
}

// --- the host's state, as seen from outside the sandbox ------------------------------

namespace {

std::atomic<int> g_sigusr2_count{0};

// The suite's temporary directory: a child process (isolated case) removes its own
// before it exits, since it never reaches TearDownTestSuite.
std::string* g_suite_root = nullptr;
void CountSigusr2(int) { g_sigusr2_count.fetch_add(1); }

// The host's cwd is inside the suite's directory: leave it first (the pool may be making
// an interpreter, which needs a cwd that exists).
void RemoveSuiteRootInChild() {
  if (g_suite_root == nullptr) return;
  if (chdir("/") != 0) return;
  RemoveTree(*g_suite_root);
}

}  // namespace

std::optional<FdIdentity> Identity(int fd) {
  struct stat st;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fstat(fd, &st) != 0) return std::nullopt;
  return FdIdentity{st.st_dev, st.st_ino, st.st_mode, flags & O_ACCMODE};
}

std::string TermiosBytes(int fd) {
  termios t{};
  if (tcgetattr(fd, &t) != 0) return "tcgetattr failed";
  return absl::StrCat(t.c_iflag, "/", t.c_oflag, "/", t.c_cflag, "/", t.c_lflag, "/",
                      std::string(reinterpret_cast<const char*>(t.c_cc), sizeof(t.c_cc)));
}

// --- the snippets' toolbox ------------------------------------------------------------

const char kPrelude[] = R"PY(
def _classes():
    seen, stack = [], [object]
    while stack:
        for s in type.__subclasses__(stack.pop()):
            if s not in seen:
                seen.append(s)
                stack.append(s)
    return seen
def _cls(name):
    return [c for c in _classes() if c.__name__ == name][0]
def _bootstrap():
    return _cls('BuiltinImporter').create_module.__globals__
def _external():
    return _cls('SourceLoader').get_code.__globals__
def _reach(name):
    # A module by name, imported from a stdlib frame (contextlib calls the callback), so
    # that the import counts as the standard library's, not the code's.
    import sys, contextlib
    if name not in sys.modules:
        with contextlib.ExitStack() as stack:
            stack.callback(__import__, name)
    return sys.modules[name]
def _socket():
    try:
        import email.utils
        return email.utils.socket
    except (ImportError, AttributeError):
        return _reach('socket')
def _threading():
    import queue
    return queue.threading
class _Spec:
    def __init__(self, name):
        self.name = name
        self.origin = 'built-in'
def _fresh_builtin(name):
    imp = _bootstrap()['_imp']
    module = imp.create_builtin(_Spec(name))
    imp.exec_builtin(module)
    return module
PWN = 'PWN' + 'ED'
)PY";

// --- cases ----------------------------------------------------------------------------

const std::vector<std::string> kPolicyWords = {"pyhost policy", "in pyhost", "policy 'strict'"};
const std::vector<std::string> kImportWords = {
    "not allowed by policy 'strict'", "is denied by policy 'strict'", "never allowed in pyhost"};
const std::vector<std::string> kImportOrPolicy = {"pyhost policy", "in pyhost", "policy 'strict'"};

Case Denied(std::string name, std::string code, std::vector<std::string> types,
            std::vector<std::string> messages) {
  Case c;
  c.name = std::move(name);
  c.code = std::move(code);
  c.types = std::move(types);
  c.messages = std::move(messages);
  return c;
}
Case Perm(std::string name, std::string code, std::vector<std::string> messages) {
  return Denied(std::move(name), std::move(code), {"PermissionError"}, std::move(messages));
}
Case Imp(std::string name, std::string code, std::vector<std::string> messages) {
  return Denied(std::move(name), std::move(code), {"ImportError", "ModuleNotFoundError"},
                std::move(messages));
}
Case Via(std::string name, std::string code, std::vector<std::string> messages) {
  messages.insert(messages.end(), kImportWords.begin(), kImportWords.end());
  return Denied(std::move(name), std::move(code),
                {"PermissionError", "ImportError", "ModuleNotFoundError"}, std::move(messages));
}
Case SqliteDenied(std::string name, std::string code) {
  Case c = Denied(std::move(name), std::move(code), {"DatabaseError", "OperationalError"},
                  {"not authorized", "authorization denied"});
  c.stderr_contains = "SQLite statement denied by pyhost policy 'strict'";
  return c;
}
Case FixedEscape(std::string name, std::string code) {
  return Denied(std::move(name), std::move(code),
                {"PermissionError", "ImportError", "ModuleNotFoundError"}, kImportOrPolicy);
}

// --- the fixture ----------------------------------------------------------------------

void HostileTest::SetUpTestSuite() {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::string root = testutil::MakeTempDir("/tmp/hostile-");
  ASSERT_FALSE(root.empty()) << "mkdtemp: " << strerror(errno);
  root_ = new std::string(root);
  g_suite_root = root_;
  outside_ = new std::string(*root_ + "/outside");
  host_cwd_ = new std::string(*root_ + "/host_cwd");
  work_root_ = new std::string(*root_ + "/work");
  for (const std::string* dir : {outside_, host_cwd_, work_root_}) {
    ASSERT_EQ(mkdir(dir->c_str(), 0755), 0);
  }
  secret_ = new std::string(RandomToken("file-secret-"));
  env_secret_ = new std::string(RandomToken("env-secret-"));
  deleted_secret_ = new std::string(RandomToken("deleted-secret-"));
  cwd_secret_ = new std::string(RandomToken("cwd-secret-"));
  WriteFile(*outside_ + "/secret.txt", *secret_ + "\n");
  WriteFile(*host_cwd_ + "/host-secret.txt", *secret_ + "\n");
  WriteFile(*host_cwd_ + "/" + *cwd_secret_ + ".txt", "a file whose name is a secret\n");
  setenv("PYHOST_HOSTILE_ENV_SECRET", env_secret_->c_str(), 1);
  passwd_line_ = new std::string(FirstLine(ReadFile("/etc/passwd")));
  std::string shadow = FirstLine(ReadFile("/etc/shadow"));
  size_t third = shadow.find(':', shadow.find(':') + 1);
  shadow_prefix_ = new std::string(third == std::string::npos ? "" : shadow.substr(0, third + 1));

  struct sigaction sa {};
  sa.sa_handler = CountSigusr2;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, nullptr);

  original_cwd_ = new std::string(std::filesystem::current_path().string());
  ASSERT_EQ(chdir(host_cwd_->c_str()), 0);
  ForkZombie();
  MakeHostFds();

  HostOptions options;
  options.pool_size = 2;
  options.work_root = *work_root_;
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  ASSERT_TRUE(host.ok()) << host.status();
  host_ = host->release();
  baseline_ = new HostState(Snapshot());
}

void HostileTest::TearDownTestSuite() {
  delete host_;
  host_ = nullptr;
  if (original_cwd_ != nullptr && chdir(original_cwd_->c_str()) != 0) perror("chdir");
  if (child_pid_ > 0) waitpid(child_pid_, nullptr, 0);
  for (int fd : kHostFds) {
    if (fd > 2) close(fd);
  }
  if (root_ != nullptr) RemoveTree(*root_);
}

void HostileTest::ForkZombie() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  child_pid_ = pid;
  siginfo_t info{};
  waitid(P_PID, pid, &info, WEXITED | WNOWAIT);  // until it is a zombie
}

void HostileTest::MakeHostFds() {
  for (int fd : kHostFds) {
    if (fd > 2) close(fd);
  }
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  MoveFd(p[0], kPipeRead);
  MoveFd(p[1], kPipeWrite);
  std::string deleted = *outside_ + "/deleted-secret.txt";
  WriteFile(deleted, *deleted_secret_ + "\n");
  MoveFd(open(deleted.c_str(), O_RDONLY | O_CLOEXEC), kDeletedSecret);
  unlink(deleted.c_str());
  MoveFd(open((*outside_ + "/host.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640),
         kLog);
  int temp_port = 0;
  int temp = ListenLoopback(&temp_port);
  ASSERT_GE(temp, 0);
  int client = ConnectLoopback(temp_port);
  int server = accept4(temp, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  close(temp);
  MoveFd(client, kConnClient);
  MoveFd(server, kConnServer);
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  MoveFd(master, kPtyMaster);
  MoveFd(slave, kPtySlave);
  int port = 0;
  int listener = ListenLoopback(&port);
  ASSERT_GE(listener, 0);
  MoveFd(listener, kListener);
  fcntl(kListener, F_SETFL, O_NONBLOCK);
  port_ = port;
}

HostState HostileTest::Snapshot() {
  HostState s;
  for (char** e = environ; *e != nullptr; ++e) s.env.push_back(*e);
  std::sort(s.env.begin(), s.env.end());
  char cwd[4096];
  s.cwd = getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : "?";
  s.umask_value = umask(022);
  umask(s.umask_value);
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa {};
    sigaction(sig, nullptr, &sa);
    // SA_RESTORER is libc's business (gtest's death tests re-install SIGPROF with it).
    s.dispositions.emplace_back(reinterpret_cast<uintptr_t>(sa.sa_handler),
                                sa.sa_flags & ~0x04000000);
  }
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  for (int sig = 1; sig < NSIG; ++sig) s.sigmask += sigismember(&mask, sig) ? '1' : '0';
  for (int r = 0; r < RLIM_NLIMITS; ++r) {
    rlimit lim{};
    getrlimit(static_cast<__rlimit_resource_t>(r), &lim);
    s.rlimits.emplace_back(lim.rlim_cur, lim.rlim_max);
  }
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    itimerval t{};
    getitimer(which, &t);
    s.itimers.push_back(absl::StrCat(t.it_value.tv_sec, ".", t.it_value.tv_usec, "/",
                                     t.it_interval.tv_sec, ".", t.it_interval.tv_usec));
  }
  const char* loc = setlocale(LC_ALL, nullptr);
  s.locale = loc != nullptr ? loc : "?";
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  s.hostname = hostname;
  for (int fd : kHostFds) s.fds[fd] = Identity(fd);
  s.pty_attrs = TermiosBytes(kPtySlave);
  s.secret_offset = lseek(kDeletedSecret, 0, SEEK_CUR);
  s.outside = ListDir(*outside_);
  s.host_cwd = ListDir(*host_cwd_);
  return s;
}

json HostileTest::Args() {
  return {{"pipe_fd", kPipeWrite},
          {"secret_fd", kDeletedSecret},
          {"log_fd", kLog},
          {"conn_fd", kConnClient},
          {"pty_fd", kPtySlave},
          {"child_pid", child_pid_},
          {"port", port_},
          {"canary", *outside_ + "/canary"},
          {"secret_path", *outside_ + "/secret.txt"},
          {"outside", *outside_},
          {"other_locale", OtherLocale()}};
}

std::string HostileTest::OtherLocale() {
  const char* numeric = setlocale(LC_NUMERIC, nullptr);
  return numeric != nullptr && std::string(numeric) == "C" ? "C.UTF-8" : "C";
}

std::optional<Policy> HostileTest::PolicyFor(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name == "socket") {
    Policy p = *NamedPolicy("strict");
    p.name = "strict";
    p.import_allow.push_back("socket");
    p.import_deny.erase(std::remove(p.import_deny.begin(), p.import_deny.end(), "socket"),
                        p.import_deny.end());
    return p;
  }
  if (name == "read-outside") {  // strict, and the outside directory is readable
    Policy p = *NamedPolicy("strict");
    p.name = "strict";
    p.read_paths.push_back(*outside_);
    return p;
  }
  if (name == "threads") {  // strict, but the code may start threads
    Policy p = *NamedPolicy("strict");
    p.name = "strict";
    p.threads = true;
    return p;
  }
  return *NamedPolicy(name);
}

ExecResult HostileTest::Run(Host& host, const std::string& code, const std::string& policy,
                            std::vector<std::string> allow_net, json args) {
  ExecRequest request;
  request.code = absl::StrCat(kPrelude, code);
  request.args = std::move(args);
  request.policy = PolicyFor(policy);
  request.allow_net = std::move(allow_net);
  absl::StatusOr<ExecResult> result = host.Execute(request);
  if (!result.ok()) {
    ExecResult failed;
    failed.error = ExecError{"StatusError", std::string(result.status().message())};
    return failed;
  }
  return *std::move(result);
}

void HostileTest::CheckNoSideEffects(const ExecResult& r, std::vector<std::string>& problems,
                                     const std::vector<std::string>& extra_secrets) {
  const std::string dump = r.ToJson().dump();
  std::vector<std::string> secrets = {*secret_, *env_secret_, *deleted_secret_, *cwd_secret_,
                                      "PWNED"};
  if (!passwd_line_->empty()) secrets.push_back(*passwd_line_);
  if (!shadow_prefix_->empty()) secrets.push_back(*shadow_prefix_);
  secrets.insert(secrets.end(), extra_secrets.begin(), extra_secrets.end());
  for (const std::string& secret : secrets) {
    if (dump.find(secret) != std::string::npos) {
      problems.push_back(absl::StrCat("the ExecResult carries a secret/marker '", secret, "'"));
    }
  }
  HostState now = Snapshot();
  const HostState& was = *baseline_;
  if (PathExists(*outside_ + "/canary")) problems.push_back("the canary file exists");
  if (ReadFile(*outside_ + "/secret.txt") != *secret_ + "\n") {
    problems.push_back("the secret file outside the sandbox was changed");
  }
  for (const std::string& name : now.outside) {
    if (!was.outside.count(name)) problems.push_back("new file outside the sandbox: " + name);
  }
  for (const std::string& name : now.host_cwd) {
    if (!was.host_cwd.count(name)) problems.push_back("new file in the host's cwd: " + name);
  }
  if (now.env != was.env) problems.push_back("the host's environment changed");
  if (getenv("PYHOST_HOSTILE_PLANTED") || getenv("PYHOST_HOSTILE_PLANTED2")) {
    problems.push_back("a variable planted by the code reached the host's environ");
  }
  if (now.cwd != was.cwd) problems.push_back("the host's cwd changed to " + now.cwd);
  if (now.umask_value != was.umask_value) problems.push_back("the host's umask changed");
  for (size_t i = 0; i < now.dispositions.size() && i < was.dispositions.size(); ++i) {
    if (now.dispositions[i] != was.dispositions[i]) {
      problems.push_back(absl::StrCat("the disposition of signal ", i + 1, " changed (handler ",
                                      was.dispositions[i].first, " -> ", now.dispositions[i].first,
                                      ", flags ", was.dispositions[i].second, " -> ",
                                      now.dispositions[i].second, ")"));
    }
  }
  if (now.sigmask != was.sigmask)
    problems.push_back("the host thread's signal mask changed: " + now.sigmask);
  if (now.rlimits != was.rlimits) problems.push_back("an rlimit changed");
  if (now.itimers != was.itimers)
    problems.push_back("an interval timer is armed: " + absl::StrJoin(now.itimers, " "));
  if (now.locale != was.locale) problems.push_back("the host's locale changed to " + now.locale);
  if (now.hostname != was.hostname) problems.push_back("the hostname changed to " + now.hostname);
  for (int fd : kHostFds) {
    if (!(now.fds[fd] == was.fds.at(fd))) {
      problems.push_back(absl::StrCat("host fd ", fd,
                                      now.fds[fd] ? " now refers to another file" : " was closed"));
    }
  }
  if (now.pty_attrs != was.pty_attrs) problems.push_back("the host's pty settings changed");
  if (now.secret_offset != was.secret_offset)
    problems.push_back("the host's secret fd was read (offset moved)");
  struct stat log {};
  if (fstat(kLog, &log) == 0 && log.st_size != 0)
    problems.push_back("the host's log file was written");
  char buffer[256];
  ssize_t n = read(kPipeRead, buffer, sizeof(buffer));
  if (n > 0)
    problems.push_back("the host's pipe received: " + std::string(buffer, static_cast<size_t>(n)));
  if (n == 0) problems.push_back("the host's pipe lost its write end");
  n = recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT);
  if (n > 0)
    problems.push_back("the host's TCP peer received: " +
                       std::string(buffer, static_cast<size_t>(n)));
  if (n == 0) problems.push_back("the host's TCP connection was closed");
  if (int accepted = DrainConnections(kListener, 0); accepted > 0) {
    problems.push_back(absl::StrCat("the loopback listener accepted ", accepted, " connection(s)"));
  }
  if (g_sigusr2_count.load() != 0) problems.push_back("the host received SIGUSR2");
  siginfo_t info{};
  if (waitid(P_PID, child_pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    problems.push_back("the host's child process was reaped by someone else");
  }
}

void HostileTest::Repair() {
  const HostState& was = *baseline_;
  RemoveTree(*outside_ + "/canary");
  for (const std::string& name : ListDir(*outside_)) {
    if (!was.outside.count(name)) RemoveTree(*outside_ + "/" + name);
  }
  for (const std::string& name : ListDir(*host_cwd_)) {
    if (!was.host_cwd.count(name)) RemoveTree(*host_cwd_ + "/" + name);
  }
  unsetenv("PYHOST_HOSTILE_PLANTED");
  unsetenv("PYHOST_HOSTILE_PLANTED2");
  if (chdir(host_cwd_->c_str()) != 0) perror("chdir");
  umask(was.umask_value);
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (was.sigmask[static_cast<size_t>(sig - 1)] == '1') sigaddset(&mask, sig);
  }
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  itimerval zero{};
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) setitimer(which, &zero, nullptr);
  setlocale(LC_ALL, was.locale.c_str());
  g_sigusr2_count = 0;
  siginfo_t info{};
  if (waitid(P_PID, child_pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) ForkZombie();
  bool fds_ok = true;
  for (int fd : kHostFds) fds_ok = fds_ok && Identity(fd) == was.fds.at(fd);
  struct stat log {};
  if (!fds_ok || TermiosBytes(kPtySlave) != was.pty_attrs ||
      lseek(kDeletedSecret, 0, SEEK_CUR) != was.secret_offset ||
      (fstat(kLog, &log) == 0 && log.st_size != 0)) {
    MakeHostFds();
    delete baseline_;
    baseline_ = new HostState(Snapshot());
  }
  char buffer[4096];
  while (read(kPipeRead, buffer, sizeof(buffer)) > 0) {
  }
  while (recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
  }
  DrainConnections(kListener, 0);
}

void HostileTest::WaitForTeardown(std::vector<std::string>& problems) {
  for (int i = 0; i < 100; ++i) {
    if (host_->pool_stats().retired == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  problems.push_back("used interpreters were not torn down within 3 s (cannot check teardown)");
}

void HostileTest::CheckHostAnswers(Host& host, std::vector<std::string>& problems) {
  for (int i = 0; i < 3; ++i) CheckHostAnswersOnce(host, problems);
}

void HostileTest::CheckHostAnswersOnce(Host& host, std::vector<std::string>& problems) {
  ExecRequest request;
  request.code = "result = sum(args['xs'])";
  request.args = {{"xs", {1, 2, 3}}};
  absl::StatusOr<ExecResult> r = host.Execute(request);
  if (!r.ok()) {
    problems.push_back(absl::StrCat("the host no longer answers: ", r.status().ToString()));
  } else if (!r->ok || r->result != json(6)) {
    problems.push_back("the host answers wrongly afterwards: " + r->ToJson().dump());
  }
}

void HostileTest::ExpectNothingHappenedAtTeardown(const ExecResult& r, const std::string& witness) {
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  ASSERT_FALSE(r.output.dir.empty());
  std::vector<std::string> problems;
  CheckHostAnswersOnce(*host_, problems);  // the armed interpreter is retired by now
  WaitForTeardown(problems);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (getenv("HOSTILE_VERBOSE") != nullptr) {
    fprintf(stderr, "the armed code wrote %s: %d\n", witness.c_str(),
            PathExists(r.output.dir + "/" + witness));
  }
  CheckNoSideEffects(r, problems);
  RemoveTree(r.output.dir);
  Repair();
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

std::vector<std::string> HostileTest::CheckDenial(const Case& c, const ExecResult& r) {
  std::vector<std::string> problems;
  const std::string dump = r.ToJson().dump();
  if (c.expect == Expect::kContained) {
    if (!r.ok) problems.push_back("expected the code to run (contained), got " + dump);
    return problems;
  }
  if (r.ok || !r.error) {
    problems.push_back("expected a denial, but the code ran: " + dump);
    return problems;
  }
  bool type_ok = std::find(c.types.begin(), c.types.end(), r.error->type) != c.types.end();
  bool message_ok = c.messages.empty();
  for (const std::string& m : c.messages) {
    message_ok = message_ok || r.error->message.find(m) != std::string::npos;
  }
  if (!type_ok || !message_ok) {
    problems.push_back(absl::StrCat("expected ", absl::StrJoin(c.types, "|"), " naming [",
                                    absl::StrJoin(c.messages, " | "), "], got ", r.error->type,
                                    ": ", r.error->message));
  }
  if (r.stderr_stream.text.find(c.stderr_contains) == std::string::npos) {
    problems.push_back(absl::StrCat("expected stderr to say '", c.stderr_contains,
                                    "', got: ", r.stderr_stream.text));
  }
  return problems;
}

std::vector<std::string> HostileTest::RunCase(const Case& c) {
  ExecResult r = Run(*host_, c.code, c.policy, c.allow_net);
  if (getenv("HOSTILE_VERBOSE") != nullptr) {
    fprintf(stderr, "[%s] ok=%d %s: %s\n", c.name.c_str(), r.ok,
            r.error ? r.error->type.c_str() : "-",
            r.error ? r.error->message.c_str() : r.result.dump().c_str());
  }
  if (c.settle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.settle_ms));
  std::vector<std::string> problems = CheckDenial(c, r);
  CheckNoSideEffects(r, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  return problems;
}

[[noreturn]] void RunIsolated(const std::function<std::vector<std::string>()>& body,
                              int timeout_seconds) {
  std::thread([timeout_seconds] {
    std::this_thread::sleep_for(std::chrono::seconds(timeout_seconds));
    fprintf(stderr, "PROBLEM: the host hung (no answer after %d s)\n", timeout_seconds);
    fflush(stderr);
    RemoveSuiteRootInChild();
    _exit(3);
  }).detach();
  std::vector<std::string> problems = body();
  for (const std::string& p : problems) fprintf(stderr, "PROBLEM: %s\n", p.c_str());
  fflush(stderr);
  RemoveSuiteRootInChild();
  _exit(problems.empty() ? 0 : 1);
}

}  // namespace pyhost::hostile
