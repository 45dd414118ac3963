#include "embed/output_capture.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "bindings/py_string.h"
#include "bindings/python_error.h"

namespace pyhost {
namespace {

namespace py = pybind11;

// sys.stdout.buffer: the bytes and the cap, kept in C.
struct CaptureBuffer {
  PyObject_HEAD std::string* data;
  size_t limit;
  bool truncated;         // a write did not fit: everything after it is dropped
  bool unchecked;         // bytes came through write(bytes): may not be UTF-8
  PyObject* unsupported;  // io.UnsupportedOperation
};

// sys.stdout: text, encoded to UTF-8 into its buffer.
struct TextCapture {
  PyObject_HEAD CaptureBuffer* buffer;
};

// Appends what fits of `data` (cut before a UTF-8 character that would not fit
// whole); once something did not fit, nothing more is kept.
void Append(CaptureBuffer* b, const char* data, size_t size) {
  if (b->truncated) return;
  size_t room = b->limit - std::min(b->limit, b->data->size());
  if (size > room) {
    b->truncated = true;
    size = room;
    // A continuation byte at the cut belongs to a character that would not fit whole
    // (at most 3 of them: beyond that the bytes are not UTF-8 anyway).
    for (int i = 0; i < 3 && size > 0 && (static_cast<unsigned char>(data[size]) & 0xC0) == 0x80;
         ++i) {
      --size;
    }
  }
  if (size == 0) return;
  std::string& held = *b->data;
  if (held.size() + size > held.capacity()) {
    // Grows geometrically, but never past the cap.
    held.reserve(std::min(b->limit, std::max(held.size() + size, 2 * held.capacity())));
  }
  held.append(data, size);
}

// Encodes `text` (a ready str without surrogates) as UTF-8 into `b`, stopping at the
// first character that does not fit: a str far past the cap is never encoded whole.
void AppendText(CaptureBuffer* b, PyObject* text) {
  Py_ssize_t length = PyUnicode_GET_LENGTH(text);
  if (PyUnicode_IS_ASCII(text)) {
    Append(b, static_cast<const char*>(PyUnicode_DATA(text)), static_cast<size_t>(length));
    return;
  }
  int kind = PyUnicode_KIND(text);
  const void* data = PyUnicode_DATA(text);
  char chunk[4096];
  size_t used = 0;
  for (Py_ssize_t i = 0; i < length && !b->truncated; ++i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (used + 4 > sizeof chunk) {
      Append(b, chunk, used);
      used = 0;
    }
    if (c < 0x80) {
      chunk[used++] = static_cast<char>(c);
    } else if (c < 0x800) {
      chunk[used++] = static_cast<char>(0xC0 | (c >> 6));
      chunk[used++] = static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      chunk[used++] = static_cast<char>(0xE0 | (c >> 12));
      chunk[used++] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      chunk[used++] = static_cast<char>(0x80 | (c & 0x3F));
    } else {
      chunk[used++] = static_cast<char>(0xF0 | (c >> 18));
      chunk[used++] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      chunk[used++] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      chunk[used++] = static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  Append(b, chunk, used);
}

bool HasSurrogate(PyObject* text) {
  int kind = PyUnicode_KIND(text);
  if (kind == PyUnicode_1BYTE_KIND) return false;
  const void* data = PyUnicode_DATA(text);
  for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(text); i < n; ++i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (c >= 0xD800 && c <= 0xDFFF) return true;
  }
  return false;
}

// --- methods both types share ------------------------------------------------------

PyObject* ReturnNone(PyObject*, PyObject*) { Py_RETURN_NONE; }
PyObject* ReturnFalse(PyObject*, PyObject*) { Py_RETURN_FALSE; }
PyObject* ReturnTrue(PyObject*, PyObject*) { Py_RETURN_TRUE; }
PyObject* GetFalse(PyObject*, void*) { Py_RETURN_FALSE; }

PyObject* SetNoFileno(PyObject* unsupported) {
  PyErr_SetString(unsupported, "captured stream has no file descriptor");
  return nullptr;
}

// writelines(lines): write() of each, as io does.
PyObject* WriteLines(PyObject* self, PyObject* lines) {
  auto iterator = py::reinterpret_steal<py::object>(PyObject_GetIter(lines));
  if (!iterator) return nullptr;
  while (auto line = py::reinterpret_steal<py::object>(PyIter_Next(iterator.ptr()))) {
    auto written =
        py::reinterpret_steal<py::object>(PyObject_CallMethod(self, "write", "O", line.ptr()));
    if (!written) return nullptr;
  }
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

#define PYHOST_STREAM_METHODS(fileno)                                                       \
  {"writelines", WriteLines, METH_O, nullptr}, {"flush", ReturnNone, METH_NOARGS, nullptr}, \
      {"close", ReturnNone, METH_NOARGS, "A no-op: the stream belongs to the host."},       \
      {"isatty", ReturnFalse, METH_NOARGS, nullptr},                                        \
      {"readable", ReturnFalse, METH_NOARGS, nullptr},                                      \
      {"seekable", ReturnFalse, METH_NOARGS, nullptr},                                      \
      {"writable", ReturnTrue, METH_NOARGS, nullptr}, {                                     \
    "fileno", fileno, METH_NOARGS, nullptr                                                  \
  }

// --- the buffer ---------------------------------------------------------------------

PyObject* BufferNoFileno(PyObject* self, PyObject*) {
  return SetNoFileno(reinterpret_cast<CaptureBuffer*>(self)->unsupported);
}

PyObject* BufferWrite(PyObject* self, PyObject* data) {
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return nullptr;
  auto* b = reinterpret_cast<CaptureBuffer*>(self);
  Append(b, static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
  b->unchecked = true;
  Py_ssize_t written = view.len;
  PyBuffer_Release(&view);
  return PyLong_FromSsize_t(written);
}

void BufferDealloc(PyObject* self) {
  auto* b = reinterpret_cast<CaptureBuffer*>(self);
  delete b->data;
  Py_XDECREF(b->unsupported);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kBufferMethods[] = {
    {"write", BufferWrite, METH_O, "Writes bytes; they count against the stream's cap."},
    PYHOST_STREAM_METHODS(BufferNoFileno),
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef kBufferGetSet[] = {{"closed", GetFalse, nullptr, nullptr, nullptr},
                               {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot kBufferSlots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(BufferDealloc)},
                              {Py_tp_methods, kBufferMethods},
                              {Py_tp_getset, kBufferGetSet},
                              {Py_tp_doc, const_cast<char*>("pyhost's captured output, as bytes.")},
                              {0, nullptr}};

constexpr unsigned kFlags =
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION;

PyType_Spec kBufferSpec = {"pyhost.CaptureBuffer", sizeof(CaptureBuffer), 0, kFlags, kBufferSlots};

// --- the text stream ----------------------------------------------------------------

PyObject* TextWrite(PyObject* self, PyObject* text) {
  if (!PyUnicode_Check(text)) {
    PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                 Py_TYPE(text)->tp_name);
    return nullptr;
  }
  if (PyUnicode_READY(text) != 0) return nullptr;
  if (HasSurrogate(text)) {
    // python3's sys.stdout (errors="strict") raises before writing anything.
    Py_XDECREF(PyUnicode_AsUTF8String(text));
    return nullptr;
  }
  AppendText(reinterpret_cast<TextCapture*>(self)->buffer, text);
  return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
}

void TextDealloc(PyObject* self) {
  Py_XDECREF(reinterpret_cast<TextCapture*>(self)->buffer);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* GetBuffer(PyObject* self, void*) {
  return Py_NewRef(reinterpret_cast<PyObject*>(reinterpret_cast<TextCapture*>(self)->buffer));
}
PyObject* TextNoFileno(PyObject* self, PyObject*) {
  return SetNoFileno(reinterpret_cast<TextCapture*>(self)->buffer->unsupported);
}
PyObject* GetEncoding(PyObject*, void*) { return PyUnicode_FromString("utf-8"); }
PyObject* GetErrors(PyObject*, void*) { return PyUnicode_FromString("strict"); }
PyObject* GetNone(PyObject*, void*) { Py_RETURN_NONE; }

// TextIOWrapper.reconfigure(*, encoding, errors, newline, line_buffering,
// write_through), which programs call to be sure of UTF-8: what the capture already
// is, or buffering choices it has no use for, is answered; another encoding or error
// handler is refused (the capture is UTF-8, strict, as python3's streams here).
PyObject* TextReconfigure(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"encoding",       "errors",        "newline",
                                   "line_buffering", "write_through", nullptr};
  PyObject *encoding = Py_None, *errors = Py_None, *newline = Py_None, *line_buffering = Py_None,
           *write_through = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOO:reconfigure",
                                   const_cast<char**>(keywords), &encoding, &errors, &newline,
                                   &line_buffering, &write_through)) {
    return nullptr;
  }
  auto is = [](PyObject* value, std::initializer_list<const char*> names) {
    if (value == Py_None) return true;
    std::optional<std::string> text = Utf8(value);
    if (!text) return false;
    std::string name = absl::AsciiStrToLower(*text);
    for (const char* n : names) {
      if (name == n) return true;
    }
    return false;
  };
  if (!is(encoding, {"utf-8", "utf8", "utf_8", "u8"}) || !is(errors, {"strict"})) {
    PyErr_SetString(PyExc_PermissionError,
                    "pyhost's captured output is UTF-8 with errors='strict': it cannot be "
                    "reconfigured to another encoding or error handler");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef kTextMethods[] = {
    {"write", TextWrite, METH_O, "Writes text (UTF-8); output past the stream's cap is dropped."},
    {"reconfigure", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(TextReconfigure)),
     METH_VARARGS | METH_KEYWORDS, "Accepts what the capture already is (UTF-8, strict)."},
    PYHOST_STREAM_METHODS(TextNoFileno),
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef kTextGetSet[] = {{"buffer", GetBuffer, nullptr, nullptr, nullptr},
                             {"encoding", GetEncoding, nullptr, nullptr, nullptr},
                             {"errors", GetErrors, nullptr, nullptr, nullptr},
                             {"newlines", GetNone, nullptr, nullptr, nullptr},
                             {"closed", GetFalse, nullptr, nullptr, nullptr},
                             {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot kTextSlots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(TextDealloc)},
                            {Py_tp_methods, kTextMethods},
                            {Py_tp_getset, kTextGetSet},
                            {Py_tp_doc, const_cast<char*>("pyhost's captured output.")},
                            {0, nullptr}};

PyType_Spec kTextSpec = {"pyhost.Capture", sizeof(TextCapture), 0, kFlags, kTextSlots};

CaptureBuffer* BufferOfCapture(PyObject* capture) {
  return reinterpret_cast<TextCapture*>(capture)->buffer;
}

void Reset(CaptureBuffer* b, size_t max_bytes) {
  b->data->clear();
  b->limit = max_bytes;
  b->truncated = false;
  b->unchecked = false;
}

bool SetStreams(PyObject* out, PyObject* err) {
  return PySys_SetObject("stdout", out) == 0 && PySys_SetObject("__stdout__", out) == 0 &&
         PySys_SetObject("stderr", err) == 0 && PySys_SetObject("__stderr__", err) == 0;
}

}  // namespace

absl::StatusOr<OutputCaptures> InstallOutputCaptures(size_t max_bytes) {
  auto io = py::reinterpret_steal<py::object>(PyImport_ImportModule("io"));
  auto unsupported = py::reinterpret_steal<py::object>(
      io ? PyObject_GetAttrString(io.ptr(), "UnsupportedOperation") : nullptr);
  auto buffer_type = py::reinterpret_steal<py::object>(PyType_FromSpec(&kBufferSpec));
  auto text_type = py::reinterpret_steal<py::object>(PyType_FromSpec(&kTextSpec));
  if (!unsupported || !buffer_type || !text_type)
    return StatusFromPythonError("output capture types");
  auto make = [&]() -> py::object {
    auto* buffer = PyObject_New(CaptureBuffer, reinterpret_cast<PyTypeObject*>(buffer_type.ptr()));
    if (buffer == nullptr) return py::object();
    buffer->data = new std::string();
    buffer->unsupported = Py_NewRef(unsupported.ptr());
    Reset(buffer, max_bytes);
    auto* text = PyObject_New(TextCapture, reinterpret_cast<PyTypeObject*>(text_type.ptr()));
    if (text == nullptr) {
      Py_DECREF(buffer);
      return py::object();
    }
    text->buffer = buffer;
    return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(text));
  };
  OutputCaptures captures{make(), make()};
  if (!captures.out || !captures.err || !SetStreams(captures.out.ptr(), captures.err.ptr())) {
    return StatusFromPythonError("installing output capture");
  }
  return captures;
}

void ArmOutputCaptures(const OutputCaptures& captures, size_t max_bytes) {
  Reset(BufferOfCapture(captures.out.ptr()), max_bytes);
  Reset(BufferOfCapture(captures.err.ptr()), max_bytes);
  if (!SetStreams(captures.out.ptr(), captures.err.ptr())) PyErr_Clear();
}

void TakeOutputCapture(PyObject* capture, CapturedStream& out) {
  CaptureBuffer* b = BufferOfCapture(capture);
  out.truncated = b->truncated;
  if (b->unchecked) {
    // Bytes from write(bytes): what is not UTF-8 becomes U+FFFD, as errors="replace".
    auto text = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeUTF8(b->data->data(), static_cast<Py_ssize_t>(b->data->size()), "replace"));
    Py_ssize_t size = 0;
    const char* utf8 = text ? PyUnicode_AsUTF8AndSize(text.ptr(), &size) : nullptr;
    if (utf8 == nullptr) {
      PyErr_Clear();
      out.text.clear();
    } else {
      out.text.assign(utf8, static_cast<size_t>(size));
    }
  } else {
    out.text = std::move(*b->data);
  }
  Reset(b, b->limit);
}

}  // namespace pyhost
