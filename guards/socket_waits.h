// Socket operations that a Cancellation (a limit, Host::InterruptAll) can end, as
// guards/interruptible_waits.h does for locks, queues and select: a wait for a socket
// to become ready is made in slices of kWaitSlice, and between slices an exception
// pending for the thread (ExecutionStopped at a deadline) is raised.
//
//   // Once, GIL held in the main interpreter, after GuardSharedTypes() swapped the
//   // socket type's policy guards (these wrap them):
//   absl::Status made = MakeSocketWaitsInterruptible(socket_type);
//
// _socket.socket is a static type on 3.11, one for every interpreter: the C functions
// behind its methods are replaced once, for the whole process. How each keeps
// python3's answers:
//   blocking socket (timeout None): recv, recv_into, recvfrom, recvfrom_into, recvmsg,
//     recvmsg_into, send, sendto and sendall try the operation with MSG_DONTWAIT added
//     to the flags (so the original checks the arguments and raises as python3 does),
//     and wait for readiness between tries; a send that the kernel takes in part goes
//     on with the rest, as a blocking send does, so it returns the whole length.
//   socket with a timeout (longer than a slice): the wait for readiness, bounded by
//     that timeout, is made here (TimeoutError "timed out" at its end, python3's),
//     then the original runs on a ready socket; sendall's timeout is for all of it.
//   accept(), sendmsg(), a receive with MSG_WAITALL: a wait for readiness, then the
//     original (which can still block in the kernel: handled as code stuck in C).
//   connect(), connect_ex(): the connection is started without blocking, waited for
//     in slices, and its result read from SO_ERROR; meanwhile gettimeout() from
//     another thread sees 0.0 for the moment of the start.
// Left to the original: non-blocking sockets (timeout 0.0, or a descriptor made
// non-blocking under the socket), closed ones, timeouts of one slice or less, flags
// with MSG_DONTWAIT or MSG_ERRQUEUE (one try, as python3), arguments it does not
// rewrite (not an int, out of range, missing: python3's errors at once), accept() on
// a socket that does not listen. Can still block in the kernel (handled as code stuck
// in C): a wait for readiness that another thread wins on a socket with a timeout, a
// connect() to a Unix listener whose backlog is full (EAGAIN: the original is called
// as it is). Not
// covered (docs/security.md): a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO set
// through setsockopt (its kernel timeout never ends the wait), name resolution, ssl's
// reads and writes, os.sendfile.
#ifndef PYHOST_GUARDS_SOCKET_WAITS_H_
#define PYHOST_GUARDS_SOCKET_WAITS_H_

#include <Python.h>

#include "absl/status/status.h"

namespace pyhost {

absl::Status MakeSocketWaitsInterruptible(PyTypeObject* socket_type);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_SOCKET_WAITS_H_
