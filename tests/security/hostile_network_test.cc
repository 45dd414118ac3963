// Hostile cases, the network: sockets without an allowlist, names and addresses not on
// it, listening, raw sockets, sockets on the host's descriptors; and what an allowlist
// lets through.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> NetworkCases() {
  return {
      // ---- sockets: a socketpair is the process's own; nothing else opens ----------------
      Perm("SocketpairPassesHostFdThenWrites", R"PY(
import os, struct
socket = _socket()
a, b = socket.socketpair()
a.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack('i', args['pipe_fd']))])
msg, ancdata, flags, addr = b.recvmsg(1, socket.CMSG_SPACE(4))
fd = struct.unpack('i', ancdata[0][2][:4])[0]
os.write(fd, PWN.encode())
)PY",
           {"only on file descriptors the code opened itself"}),
      Perm("AuditHookReusesSocketpairAllowance", R"PY(
import sys
socket = _socket()
made = []
def hook(event, a):
    if event == 'socket.__new__' and not made:
        made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
sys.addaudithook(hook)
socket.socketpair()
made[0].connect(('127.0.0.1', args['port']))
)PY",
           {"the code cannot hook pyhost's checks"}),

      // ---- network --------------------------------------------------------------------------
      Perm("SocketWithoutAllowlist", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY",
           {"no network access"}),
      Perm("ConnectLoopbackWhenOtherHostAllowed", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY",
           {"host not on the network allowlist"})
          .Net({"api.example.com"}),
      Perm("CreateConnectionNameNotAllowed", R"PY(
_socket().create_connection(('localhost', args['port']), timeout=2)
)PY",
           {"host not on the network allowlist"})
          .Net({"api.example.com"}),
      Perm("IpLiteralWhenOnlyNameAllowed", R"PY(
_socket().create_connection(('127.0.0.1', args['port']), timeout=2)
)PY",
           {"host not on the network allowlist"})
          .Net({"localhost"}),
      Perm("ConnectIpLiteralWhenOnlyNameAllowed", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY",
           {"host not on the network allowlist"})
          .Net({"localhost"}),
      Perm("GetaddrinfoDeniedName", "_socket().getaddrinfo('exfil.attacker.example', 53)\n",
           {"host not on the network allowlist"})
          .Net({"api.example.com"}),
      Perm("SendtoLoopbackUdp", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', args['port']))
)PY",
           {"host not on the network allowlist"})
          .Net({"api.example.com"}),
      Perm("SocketAfUnix", R"PY(
socket = _socket()
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
)PY",
           {"only IPv4/IPv6"})
          .Net({"api.example.com"}),
      Perm("SocketBind", R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen()
)PY",
           {"listening for connections is not allowed"})
          .Net({"*"}),
      Perm("GethostbyaddrDenied", "_socket().gethostbyaddr('127.0.0.1')\n",
           {"address not on the network allowlist"})
          .Net({"api.example.com"}),
      FixedEscape("GetaddrinfoNoneWhitelistsLoopback", R"PY(
socket = _socket()
socket.getaddrinfo(None, args['port'])
socket.create_connection(('127.0.0.1', args['port']), timeout=2).close()
)PY")
          .Net({"api.example.com"}),
      FixedEscape("SocketOnHostFdWithAllowlist", R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=args['conn_fd'])
s.send(PWN.encode())
)PY")
          .Net({"api.example.com"}),
      FixedEscape("SocketInitDescriptorOnHostFd", R"PY(
socket = _socket()
s = socket.socket.__new__(socket.socket)
socket.socket.__bases__[0].__init__(s, socket.AF_INET, socket.SOCK_STREAM, 0, args['conn_fd'])
s.send(PWN.encode())
)PY")
          .Net({"api.example.com"}),
      FixedEscape("SocketFilenoKeywordAsStrSubclass", R"PY(
class Key(str):
    calls = 0
    def __hash__(self):
        return hash('fileno')
    def __eq__(self, other):
        Key.calls += 1
        return Key.calls > 1
socket = _socket()
raw = socket.socket.__bases__[0]
s = raw.__new__(raw)
raw.__init__(s, socket.AF_INET, socket.SOCK_STREAM, 0, **{Key('fileno'): args['conn_fd']})
s.send(PWN.encode())
)PY")
          .Net({"api.example.com"}),
      FixedEscape("FileIOOpenerKeywordAsStrSubclass", R"PY(
import io
class Key(str):
    calls = 0
    def __hash__(self):
        return hash('opener')
    def __eq__(self, other):
        Key.calls += 1
        return Key.calls > 1
io.FileIO(WORK_DIR + '/x', 'w', **{Key('opener'): lambda path, flags: args['pipe_fd']}).write(PWN.encode())
)PY"),
      FixedEscape("SocketFromDetachedHostFd", R"PY(
socket = _socket()
socket.socket(fileno=args['conn_fd']).send(PWN.encode())
)PY")
          .WithPolicy("yolo"),
  };
}

TEST_F(HostileTest, ListenWithoutBindIsRefused) {
  std::map<unsigned long, int> before = OwnListeningSockets();
  ExecResult r;
  std::thread run([&] {
    r = Run(*host_, R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.listen(1)
s.settimeout(2)
try:
    c, peer = s.accept()
    result = PWN + ' accepted a connection from ' + peer[0]
except OSError:
    result = 'nobody came'
)PY",
            "", {"api.example.com"});
  });
  std::optional<int> seen_port;
  bool connected = false;
  for (int i = 0; i < 100 && !seen_port; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    for (const auto& [inode, port] : OwnListeningSockets()) {
      if (!before.count(inode) && port != port_) seen_port = port;
    }
  }
  if (seen_port) {
    int fd = ConnectLoopback(*seen_port);
    connected = fd >= 0;
    if (fd >= 0) close(fd);
  }
  run.join();
  Case expected = Perm("listen", "", {"listening for connections is not allowed"});
  std::vector<std::string> problems = CheckDenial(expected, r);
  if (seen_port) problems.push_back(absl::StrCat("the host process listened on port ", *seen_port));
  if (connected) problems.push_back("a connection from outside reached the sandbox's listener");
  CheckNoSideEffects(r, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

TEST_F(HostileTest, RawSocketCannotSniffHostTraffic) {
  std::string traffic = RandomToken("traffic-secret-");
  std::atomic<bool> done{false};
  std::thread sender([&] {
    while (!done) {
      ssize_t n = send(kConnClient, traffic.data(), traffic.size(), MSG_NOSIGNAL);
      (void)n;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  ExecResult r = Run(*host_, R"PY(
import time
socket = _socket()
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(0.1)
seen = b''
end = time.monotonic() + 0.8
while time.monotonic() < end:
    try:
        seen += raw.recv(65535)
    except OSError:
        pass
result = ''.join(ch for ch in seen.decode('latin-1') if ch.isalnum() or ch == '-')
)PY",
                     "", {"api.example.com"});
  done = true;
  sender.join();
  char buffer[4096];
  while (recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
  }
  Case expected = Perm("raw", "", kPolicyWords);
  std::vector<std::string> problems = CheckDenial(expected, r);
  CheckNoSideEffects(r, problems, {traffic});
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

// --- allowed network ------------------------------------------------------------------

namespace {

// The listener saw exactly one connection, the code succeeded, nothing else changed.
void ExpectConnected(const ExecResult& r, int listener) {
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json("connected")) << r.ToJson().dump();
  EXPECT_EQ(DrainConnections(listener, 1000), 1) << "the listener must see the connection";
}

constexpr char kConnectLocalhost[] = R"PY(
import socket
socket.create_connection(('localhost', args['port']), timeout=2).close()
result = 'connected'
)PY";

}  // namespace

TEST_F(HostileTest, AllowedLocalhostUnderStrictWithAllowNet) {
  // The request's allowlist names localhost: the default policy must let the code reach it.
  ExecResult r = Run(*host_, kConnectLocalhost, "", {"localhost"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedLocalhostWithSocketPolicyAndAllowNet) {
  ExecResult r = Run(*host_, kConnectLocalhost, "socket", {"localhost"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedListedIpLiteral) {
  ExecResult r = Run(*host_, R"PY(
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(('127.0.0.1', args['port']))
s.close()
result = 'connected'
)PY",
                     "socket", {"127.0.0.1"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedByEnvironmentAllowlistReadAtCreate) {
  setenv("PYHOST_NETWORK_ALLOWLIST", "localhost", 1);
  HostOptions options;
  options.pool_size = 1;
  options.work_root = *work_root_;
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  unsetenv("PYHOST_NETWORK_ALLOWLIST");  // read at Create: changing it later changes nothing
  ASSERT_TRUE(host.ok()) << host.status();
  ExecResult r = Run(**host, kConnectLocalhost, "socket");
  ExpectConnected(r, kListener);
  // Without the variable, the suite's host refuses the same code.
  ExecResult refused = Run(*host_, kConnectLocalhost, "socket");
  EXPECT_FALSE(refused.ok);
  ASSERT_TRUE(refused.error.has_value());
  EXPECT_EQ(refused.error->type, "PermissionError") << refused.ToJson().dump();
  EXPECT_EQ(DrainConnections(kListener, 100), 0);
  Repair();
}

TEST_F(HostileTest, AllowlistPatternSemantics) {
  constexpr char kDecide[] = R"PY(
import socket
def decide(host):
    try:
        socket.getaddrinfo(host, 80)
        return 'allowed'
    except PermissionError:
        return 'denied'
    except OSError:
        return 'allowed'  # past the guard; the name just does not resolve here
result = {h: decide(h) for h in args['hosts']}
)PY";
  json args = Args();
  args["hosts"] = {"api.example.com",   "API.Example.COM.", "other.example.com",
                   "a.corp.example",    "x.y.corp.example", "corp.example",
                   "corp.example.evil", "evilcorp.example", "localhost"};
  ExecResult r = Run(*host_, kDecide, "socket", {"api.example.com", "*.corp.example"}, args);
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({{"api.example.com", "allowed"},
                            {"API.Example.COM.", "allowed"},
                            {"other.example.com", "denied"},
                            {"a.corp.example", "allowed"},
                            {"x.y.corp.example", "allowed"},
                            {"corp.example", "denied"},
                            {"corp.example.evil", "denied"},
                            {"evilcorp.example", "denied"},
                            {"localhost", "denied"}}));
  ExecResult all = Run(*host_, kDecide, "socket", {"*"}, args);
  ASSERT_TRUE(all.ok) << all.ToJson().dump();
  for (const auto& [host, decision] : all.result.items()) EXPECT_EQ(decision, "allowed") << host;
  ExecResult none = Run(*host_, kDecide, "socket", {}, args);
  ASSERT_TRUE(none.ok) << none.ToJson().dump();
  for (const auto& [host, decision] : none.result.items()) EXPECT_EQ(decision, "denied") << host;
  Repair();
}

}  // namespace pyhost::hostile
