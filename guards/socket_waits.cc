#include "guards/socket_waits.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cmath>

#include <pybind11/pytypes.h>

#include "absl/cleanup/cleanup.h"
#include "absl/time/time.h"
#include "bindings/cancellation.h"
#include "guards/interruptible_waits.h"
#include "guards/shared_types.h"

namespace pyhost {
namespace {

namespace py = pybind11;

// The type's own C functions, read before any wrapper.
PyCFunction g_fileno = nullptr;
PyCFunction g_gettimeout = nullptr;
PyCFunction g_settimeout = nullptr;
// What each wrapper calls: the original, or the policy's guard around it
// (guards/shared_types.cc), so the guard still judges every try.
PyCFunction g_recv = nullptr;
PyCFunction g_recv_into = nullptr;
PyCFunction g_recvfrom = nullptr;
PyCFunction g_recvfrom_into = nullptr;
PyCFunction g_recvmsg = nullptr;
PyCFunction g_recvmsg_into = nullptr;
PyCFunction g_send = nullptr;
PyCFunction g_sendall = nullptr;
PyCFunction g_sendto = nullptr;
PyCFunction g_sendmsg = nullptr;
PyCFunction g_accept = nullptr;
PyCFunction g_connect = nullptr;
PyCFunction g_connect_ex = nullptr;

PyObject* Call(PyCFunction f, bool keywords, PyObject* self, PyObject* args, PyObject* kwargs) {
  if (!keywords) return f(self, args);
  return reinterpret_cast<PyCFunctionWithKeywords>(reinterpret_cast<void (*)()>(f))(self, args,
                                                                                    kwargs);
}

// What a call needs of its socket, read once at its start.
struct SocketState {
  int fd = -1;
  bool blocking = false;  // timeout None
  absl::Time end;         // the socket's timeout from now: never, when blocking
};

// False (no exception): the original answers as it is. Non-blocking sockets never
// wait; a closed one raises; a timeout of one slice or less is waited in C.
bool ReadState(PyObject* self, SocketState* state) {
  auto fd = py::reinterpret_steal<py::object>(g_fileno(self, nullptr));
  auto timeout = py::reinterpret_steal<py::object>(fd ? g_gettimeout(self, nullptr) : nullptr);
  long n = timeout && PyLong_Check(fd.ptr()) ? PyLong_AsLong(fd.ptr()) : -1;
  if (!timeout || n < 0 || n > INT_MAX) {
    PyErr_Clear();
    return false;
  }
  state->fd = static_cast<int>(n);
  if (timeout.ptr() == Py_None) {
    // A descriptor made non-blocking under the socket (os.set_blocking) raises
    // BlockingIOError in python3: the original's.
    const int fl = fcntl(state->fd, F_GETFL);
    if (fl < 0 || (fl & O_NONBLOCK)) return false;
    state->blocking = true;
    state->end = absl::InfiniteFuture();
    return true;
  }
  const double seconds = PyFloat_AsDouble(timeout.ptr());
  if (seconds == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  if (!(seconds > absl::ToDoubleSeconds(kWaitSlice))) return false;
  state->end = absl::Now() + absl::Seconds(seconds);
  return true;
}

// Waits until `fd` has `events` (or an error, a hangup) in slices; between them an
// interruption pending for the thread is raised. 1: ready; 0: `end` came; -1: an
// exception.
int WaitReady(int fd, short events, absl::Time end) {
  for (;;) {
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    const int ms =
        static_cast<int>(std::ceil(absl::ToDoubleMilliseconds(std::min(left, kWaitSlice))));
    pollfd p{fd, events, 0};
    PyThreadState* saved = PyEval_SaveThread();
    const int n = poll(&p, 1, ms);
    const int poll_errno = errno;
    PyEval_RestoreThread(saved);
    errno = poll_errno;
    if (n < 0 && errno != EINTR) {
      PyErr_SetFromErrno(PyExc_OSError);
      return -1;
    }
    // Checked after a ready answer too: a try that then finds the socket unready
    // again (another thread took the data) must not loop past a stop.
    if ((n < 0 && PyErr_CheckSignals() < 0) || RaisePendingInterrupt()) return -1;
    if (n > 0) return 1;
  }
}

// After WaitReady: TimeoutError at the socket's timeout, as python3 raises it.
bool Ready(int fd, short events, absl::Time end) {
  const int ready = WaitReady(fd, events, end);
  if (ready == 0) PyErr_SetString(PyExc_TimeoutError, "timed out");
  return ready > 0;
}

bool WouldBlock() { return PyErr_ExceptionMatches(PyExc_BlockingIOError); }

PyObject* ReadyThenCall(PyCFunction f, bool keywords, short events, const SocketState& s,
                        PyObject* self, PyObject* args, PyObject* kwargs) {
  return Ready(s.fd, events, s.end) ? Call(f, keywords, self, args, kwargs) : nullptr;
}

// A copy of the arguments with MSG_DONTWAIT added to the flags, the argument at
// `index` (or keyword "flags" when the method takes keywords), positions before it
// given their default, 0. False with no exception when the flags are not a plain int
// or the call is not one to rewrite (the original then judges it); *waitall when
// they ask for MSG_WAITALL, which a try cannot give; *never_blocks when they ask for
// MSG_DONTWAIT or MSG_ERRQUEUE, which python3 answers at once.
bool WithDontWait(PyObject* args, PyObject* kwargs, Py_ssize_t index, bool keywords,
                  py::object* new_args, py::object* new_kwargs, bool* waitall, bool* never_blocks) {
  const Py_ssize_t n = PyTuple_GET_SIZE(args);
  py::object plain = keywords ? PlainKeywords(kwargs) : py::object();
  if (kwargs != nullptr && (!keywords || !plain)) {
    PyErr_Clear();
    return false;
  }
  PyObject* given = n > index ? PyTuple_GET_ITEM(args, index)
                    : plain   ? PyDict_GetItemString(plain.ptr(), "flags")
                              : nullptr;
  long flags = 0;
  if (given != nullptr) {
    if (!PyLong_Check(given)) return false;  // an int subclass (IntFlag) reads no code
    int overflow = 0;
    flags = PyLong_AsLongAndOverflow(given, &overflow);
    if (overflow != 0 || flags < INT_MIN || flags > INT_MAX) return false;
  }
  *waitall = (flags & MSG_WAITALL) != 0;
  *never_blocks = (flags & (MSG_DONTWAIT | MSG_ERRQUEUE)) != 0;
  auto value = py::reinterpret_steal<py::object>(PyLong_FromLong(flags | MSG_DONTWAIT));
  if (!value) return false;
  if (n > index || !plain || PyDict_GET_SIZE(plain.ptr()) == 0) {
    if (n == 0) return false;  // the original's own "missing argument"
    const Py_ssize_t size = std::max(n, index + 1);
    auto copy = py::reinterpret_steal<py::object>(PyTuple_New(size));
    if (!copy) return false;
    for (Py_ssize_t i = 0; i < size; ++i) {
      PyObject* item = i == index ? value.ptr() : i < n ? PyTuple_GET_ITEM(args, i) : nullptr;
      PyTuple_SET_ITEM(copy.ptr(), i, item != nullptr ? Py_NewRef(item) : PyLong_FromLong(0));
    }
    *new_args = copy;
    *new_kwargs = plain;
    return true;
  }
  if (PyDict_SetItemString(plain.ptr(), "flags", value.ptr()) != 0) return false;
  *new_args = py::reinterpret_borrow<py::object>(args);
  *new_kwargs = plain;
  return true;
}

// Whether the flags at `index` (or keyword "flags") are an int with MSG_WAITALL.
bool AsksWaitall(PyObject* args, PyObject* kwargs, Py_ssize_t index) {
  PyObject* given = PyTuple_GET_SIZE(args) > index ? PyTuple_GET_ITEM(args, index)
                    : kwargs != nullptr && PyDict_CheckExact(kwargs)
                        ? PyDict_GetItemString(kwargs, "flags")
                        : nullptr;
  if (given == nullptr || !PyLong_Check(given)) return false;
  int overflow = 0;
  const long flags = PyLong_AsLongAndOverflow(given, &overflow);
  PyErr_Clear();
  return overflow == 0 && (flags & MSG_WAITALL) != 0;
}

// Tries `f` with MSG_DONTWAIT until it does not find the socket unready, waiting for
// `events` between tries. Null with no exception: not a call to try (see WithDontWait).
PyObject* TryUntilReady(PyCFunction f, bool keywords, Py_ssize_t flags_index, short events,
                        const SocketState& s, PyObject* self, PyObject* args, PyObject* kwargs) {
  py::object try_args, try_kwargs;
  bool waitall = false, never_blocks = false;
  if (!WithDontWait(args, kwargs, flags_index, keywords, &try_args, &try_kwargs, &waitall,
                    &never_blocks)) {
    return nullptr;
  }
  if (never_blocks) return Call(f, keywords, self, args, kwargs);  // python3's one try
  if (waitall) return nullptr;
  for (;;) {
    PyObject* result = Call(f, keywords, self, try_args.ptr(), try_kwargs.ptr());
    if (result != nullptr || !WouldBlock()) return result;
    PyErr_Clear();
    if (WaitReady(s.fd, events, s.end) < 0) return nullptr;
  }
}

// Sends data[sent:] until all of it is taken: a blocking socket's send, and sendall.
// Returns the total, or -1 with an exception.
Py_ssize_t SendRest(PyObject* self, const Py_buffer& data, Py_ssize_t sent, int flags,
                    const SocketState& s) {
  do {
    if (!s.blocking && !Ready(s.fd, POLLOUT, s.end)) return -1;
    auto chunk = py::reinterpret_steal<py::object>(
        PyMemoryView_FromMemory(static_cast<char*>(data.buf) + sent, data.len - sent, PyBUF_READ));
    auto args = py::reinterpret_steal<py::object>(
        chunk ? Py_BuildValue("(Oi)", chunk.ptr(), s.blocking ? flags | MSG_DONTWAIT : flags)
              : nullptr);
    PyObject* taken = args ? g_send(self, args.ptr()) : nullptr;
    if (taken == nullptr) {
      if (!s.blocking || !WouldBlock()) return -1;
      PyErr_Clear();
      if (WaitReady(s.fd, POLLOUT, s.end) < 0) return -1;
      continue;
    }
    sent += PyLong_AsSsize_t(taken);
    Py_DECREF(taken);
    if (RaisePendingInterrupt()) return -1;
  } while (sent < data.len);
  return sent;
}

// --- the wrappers ----------------------------------------------------------------

// recv(bufsize, flags), recvfrom(bufsize, flags), recv_into(buffer, nbytes, flags),
// recvfrom_into(buffer, nbytes, flags), recvmsg(bufsize, ancbufsize, flags),
// recvmsg_into(buffers, ancbufsize, flags).
template <PyCFunction* kOriginal, Py_ssize_t kFlags, bool kKeywords>
PyObject* Receive(PyObject* self, PyObject* args, PyObject* kwargs) {
  SocketState s;
  if (!ReadState(self, &s)) return Call(*kOriginal, kKeywords, self, args, kwargs);
  if (s.blocking) {
    // recvmsg_into iterates its buffers at each try: an iterator is listed once here.
    py::object listed;
    PyObject* first = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : nullptr;
    if (kOriginal == &g_recvmsg_into && first != nullptr && !PyList_Check(first) &&
        !PyTuple_Check(first)) {
      auto iterator = py::reinterpret_steal<py::object>(PyObject_GetIter(first));
      if (!iterator) {
        PyErr_Clear();
        return Call(*kOriginal, kKeywords, self, args, kwargs);  // its own TypeError
      }
      auto list = py::reinterpret_steal<py::object>(PySequence_List(iterator.ptr()));
      if (!list) return nullptr;  // what the iterator raised, as python3 raises it
      listed = py::reinterpret_steal<py::object>(PyTuple_New(PyTuple_GET_SIZE(args)));
      if (!listed) return nullptr;
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); ++i) {
        PyTuple_SET_ITEM(listed.ptr(), i,
                         Py_NewRef(i == 0 ? list.ptr() : PyTuple_GET_ITEM(args, i)));
      }
      args = listed.ptr();
    }
    PyObject* result = TryUntilReady(*kOriginal, kKeywords, kFlags, POLLIN, s, self, args, kwargs);
    if (result != nullptr || PyErr_Occurred()) return result;
    // Arguments it does not rewrite: the original answers them at once (python3's
    // errors); only MSG_WAITALL waits for readiness first.
    if (!AsksWaitall(args, kwargs, kFlags)) return Call(*kOriginal, kKeywords, self, args, kwargs);
  }
  return ReadyThenCall(*kOriginal, kKeywords, POLLIN, s, self, args, kwargs);
}

template <PyCFunction* kOriginal, Py_ssize_t kFlags>
PyObject* ReceivePositional(PyObject* self, PyObject* args) {
  return Receive<kOriginal, kFlags, false>(self, args, nullptr);
}

// send(data, flags): a blocking socket's send takes all of the data.
PyObject* Send(PyObject* self, PyObject* args) {
  SocketState s;
  if (!ReadState(self, &s)) return g_send(self, args);
  if (!s.blocking) return ReadyThenCall(g_send, false, POLLOUT, s, self, args, nullptr);
  Py_buffer data;
  int flags = 0;
  if (!PyArg_ParseTuple(args, "y*|i:send", &data, &flags)) return nullptr;
  absl::Cleanup release = [&data] { PyBuffer_Release(&data); };
  if (flags & MSG_DONTWAIT) return g_send(self, args);  // python3's one try
  const Py_ssize_t sent = SendRest(self, data, 0, flags, s);
  return sent < 0 ? nullptr : PyLong_FromSsize_t(sent);
}

// sendall(data, flags): with a timeout, the timeout is for all of it.
PyObject* Sendall(PyObject* self, PyObject* args) {
  SocketState s;
  if (!ReadState(self, &s)) return g_sendall(self, args);
  Py_buffer data;
  int flags = 0;
  if (!PyArg_ParseTuple(args, "y*|i:sendall", &data, &flags)) return nullptr;
  absl::Cleanup release = [&data] { PyBuffer_Release(&data); };
  if (s.blocking && (flags & MSG_DONTWAIT)) return g_sendall(self, args);
  if (SendRest(self, data, 0, flags, s) < 0) return nullptr;
  Py_RETURN_NONE;
}

// sendto(data, address) or sendto(data, flags, address): on a stream socket (where the
// kernel may take part of it) the rest goes as send's does.
PyObject* Sendto(PyObject* self, PyObject* args) {
  SocketState s;
  if (!ReadState(self, &s)) return g_sendto(self, args);
  const Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (s.blocking && (n == 2 || n == 3)) {
    // (data, 0, address) is what sendto(data, address) means.
    auto full = py::reinterpret_steal<py::object>(
        n == 3 ? Py_NewRef(args)
               : Py_BuildValue("(OiO)", PyTuple_GET_ITEM(args, 0), 0, PyTuple_GET_ITEM(args, 1)));
    if (!full) return nullptr;
    PyObject* result = TryUntilReady(g_sendto, false, 1, POLLOUT, s, self, full.ptr(), nullptr);
    if (result == nullptr) {
      if (PyErr_Occurred()) return nullptr;
      return ReadyThenCall(g_sendto, false, POLLOUT, s, self, args, nullptr);
    }
    const Py_ssize_t sent = PyLong_AsSsize_t(result);
    Py_buffer data;
    if (sent < 0 || PyObject_GetBuffer(PyTuple_GET_ITEM(args, 0), &data, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      return result;
    }
    absl::Cleanup release = [&data] { PyBuffer_Release(&data); };
    if (sent >= data.len) return result;
    Py_DECREF(result);
    const long flags = n == 3 ? PyLong_AsLong(PyTuple_GET_ITEM(args, 1)) : 0;
    const Py_ssize_t total = SendRest(self, data, sent, static_cast<int>(flags), s);
    return total < 0 ? nullptr : PyLong_FromSsize_t(total);
  }
  return ReadyThenCall(g_sendto, false, POLLOUT, s, self, args, nullptr);
}

PyObject* Sendmsg(PyObject* self, PyObject* args) {
  SocketState s;
  if (!ReadState(self, &s)) return g_sendmsg(self, args);
  return ReadyThenCall(g_sendmsg, false, POLLOUT, s, self, args, nullptr);
}

PyObject* Accept(PyObject* self, PyObject* unused) {
  SocketState s;
  int listening = 0;
  socklen_t size = sizeof(listening);
  if (!ReadState(self, &s) || getsockopt(s.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
      !listening) {
    return g_accept(self, unused);  // not listening: python3's error at once
  }
  return Ready(s.fd, POLLIN, s.end) ? g_accept(self, unused) : nullptr;
}

// connect(address) and connect_ex(address): started with the socket's timeout at
// 0.0 (the original resolves, audits and starts it), then waited for here.
template <bool kEx>
PyObject* Connect(PyObject* self, PyObject* address) {
  PyCFunction original = kEx ? g_connect_ex : g_connect;
  SocketState s;
  if (!ReadState(self, &s)) return original(self, address);
  auto timeout = py::reinterpret_steal<py::object>(g_gettimeout(self, nullptr));
  auto zero = py::reinterpret_steal<py::object>(PyFloat_FromDouble(0.0));
  if (!timeout || !zero) return nullptr;
  auto set = py::reinterpret_steal<py::object>(g_settimeout(self, zero.ptr()));
  if (!set) return nullptr;
  PyObject* started = original(self, address);
  {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    auto restored = py::reinterpret_steal<py::object>(g_settimeout(self, timeout.ptr()));
    PyErr_Restore(type, value, traceback);
    if (!restored) {
      Py_XDECREF(started);
      return nullptr;
    }
  }
  int err = 0;
  if (started != nullptr) {
    if (!kEx) return started;
    err = static_cast<int>(PyLong_AsLong(started));
    if (err != EINPROGRESS) return started;
    Py_DECREF(started);
  } else {
    // The pending connection's EINPROGRESS; anything else (EAGAIN of a full Unix
    // listener included) is tried again as python3 would, in the original.
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    const bool in_progress =
        value != nullptr && PyErr_GivenExceptionMatches(type, PyExc_BlockingIOError) &&
        reinterpret_cast<PyOSErrorObject*>(value)->myerrno != nullptr &&
        PyLong_AsLong(reinterpret_cast<PyOSErrorObject*>(value)->myerrno) == EINPROGRESS;
    if (!in_progress) {
      const bool again = PyErr_GivenExceptionMatches(type, PyExc_BlockingIOError);
      PyErr_Restore(type, value, traceback);
      if (!again) return nullptr;
      PyErr_Clear();
      return original(self, address);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
  }
  const int ready = WaitReady(s.fd, POLLOUT, s.end);
  if (ready < 0) return nullptr;
  if (ready == 0) {
    if (kEx) return PyLong_FromLong(EWOULDBLOCK);
    PyErr_SetString(PyExc_TimeoutError, "timed out");
    return nullptr;
  }
  socklen_t size = sizeof(err);
  if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0) err = errno;
  if (err == EISCONN) err = 0;
  if (err == 0 && s.blocking) {
    // The kernel marks the socket connected at a second connect(), as a blocking one
    // does in it: connecting it again is then EISCONN, as in python3 (with a timeout,
    // python3 waits as here, and leaves it as it is).
    sockaddr_storage peer;
    socklen_t length = sizeof(peer);
    if (getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
      (void)connect(s.fd, reinterpret_cast<sockaddr*>(&peer), length);
    }
  }
  if (kEx) return PyLong_FromLong(err);
  if (err == 0) Py_RETURN_NONE;
  errno = err;
  return PyErr_SetFromErrno(PyExc_OSError);
}

PyCFunction AsFunction(PyCFunctionWithKeywords f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

PyCFunction Own(PyObject* dict, const char* name) {
  PyObject* value = PyDict_GetItemString(dict, name);  // borrowed
  return value != nullptr && Py_IS_TYPE(value, &PyMethodDescr_Type)
             ? reinterpret_cast<PyMethodDescrObject*>(value)->d_method->ml_meth
             : nullptr;
}

}  // namespace

absl::Status MakeSocketWaitsInterruptible(PyTypeObject* socket_type) {
  PyObject* methods = socket_type->tp_dict;
  g_fileno = Own(methods, "fileno");
  g_gettimeout = Own(methods, "gettimeout");
  g_settimeout = Own(methods, "settimeout");
  if (g_fileno == nullptr || g_gettimeout == nullptr || g_settimeout == nullptr) {
    return absl::InternalError("_socket.socket lacks fileno, gettimeout or settimeout: revisit");
  }
  constexpr int kArgs = METH_VARARGS;
  constexpr int kKeywords = METH_VARARGS | METH_KEYWORDS;
  for (absl::Status s : {
           SwapMethod(methods, "recv", kArgs, ReceivePositional<&g_recv, 1>, &g_recv),
           SwapMethod(methods, "recvfrom", kArgs, ReceivePositional<&g_recvfrom, 1>, &g_recvfrom),
           SwapMethod(methods, "recv_into", kKeywords, AsFunction(Receive<&g_recv_into, 2, true>),
                      &g_recv_into),
           SwapMethod(methods, "recvfrom_into", kKeywords,
                      AsFunction(Receive<&g_recvfrom_into, 2, true>), &g_recvfrom_into),
           SwapMethod(methods, "recvmsg", kArgs, ReceivePositional<&g_recvmsg, 2>, &g_recvmsg),
           SwapMethod(methods, "recvmsg_into", kArgs, ReceivePositional<&g_recvmsg_into, 2>,
                      &g_recvmsg_into),
           SwapMethod(methods, "send", kArgs, Send, &g_send),
           SwapMethod(methods, "sendall", kArgs, Sendall, &g_sendall),
           SwapMethod(methods, "sendto", kArgs, Sendto, &g_sendto),
           SwapMethod(methods, "sendmsg", kArgs, Sendmsg, &g_sendmsg),
           SwapMethod(methods, "_accept", METH_NOARGS, Accept, &g_accept),
           SwapMethod(methods, "connect", METH_O, Connect<false>, &g_connect),
           SwapMethod(methods, "connect_ex", METH_O, Connect<true>, &g_connect_ex),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace pyhost
