# pyhost's Python helpers: describing an exception raised by user code (type,
# message, line, user-frames-only traceback, and a hint). Loaded by modules/support.cc.
#
# Loaded before the interpreter is hardened and prewarmed, with no policy in force;
# describe_error runs later, under the code's policy, so what it needs it imports now.

import builtins
import difflib


_COMMON_MODULES = frozenset(
    "json re math os sys time datetime random collections itertools functools "
    "statistics string textwrap decimal fractions hashlib base64 uuid csv io "
    "pathlib typing dataclasses enum heapq bisect operator copy pprint "
    "urllib html unicodedata zlib struct array calendar".split())


def _user_frames(tb, sources):
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in sources:
            frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def _source_line(sources, filename, lineno):
    lines = sources.get(filename, "").splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()
    return ""


def _exception_text(exc):
    try:
        return str(exc)
    except BaseException:
        return "<str() failed>"


def _hint(exc, args, namespace):
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        name = exc.name
        if name in _COMMON_MODULES:
            return "'%s' is a module: add `import %s` before using it" % (name, name)
        if name == "args":
            return "`args` exists only in snippets; in a tool it is run()'s parameter"
        defined = list(namespace or ()) + dir(builtins)
        close = difflib.get_close_matches(name, defined, n=1)
        if close:
            return "did you mean '%s'?" % close[0]
        close = difflib.get_close_matches(name, _COMMON_MODULES, n=1)
        if close:
            return "did you mean the module '%s'? (add `import %s`)" % (close[0], close[0])
        return "'%s' is not defined: assign it before use, or import it" % name
    if isinstance(exc, ModuleNotFoundError):
        return ("module '%s' is not available here: only the standard library is"
                % (exc.name or "?"))
    if isinstance(exc, KeyError) and isinstance(args, dict) and exc.args:
        key = exc.args[0]
        if isinstance(key, str) and key not in args:
            keys = ", ".join(repr(k) for k in sorted(args)) or "none"
            return ("args has no key %r (keys: %s); use args.get(%r) for optional ones"
                    % (key, keys, key))
    if isinstance(exc, (AttributeError, TypeError)) and "'NoneType'" in _exception_text(exc):
        return "a value is None here: check what the function or lookup before it returned"
    if isinstance(exc, IndentationError):
        return "indent blocks consistently (4 spaces), and do not mix tabs and spaces"
    if isinstance(exc, SyntaxError) and "null bytes" in (exc.msg or ""):
        return "the code contains a NUL character: remove it (in a string, write it as '\\0')"
    if isinstance(exc, SyntaxError):
        return "check brackets, quotes, colons and commas on or just before this line"
    if isinstance(exc, ZeroDivisionError):
        return "a divisor is zero: guard the division"
    if isinstance(exc, RecursionError):
        return "recursion too deep: use a loop, or check the base case"
    if isinstance(exc, SystemExit):
        return "sys.exit() ends the execution with an error; set `result` instead"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt ends the execution; it never reaches the host"
    if isinstance(exc, (TypeError, ValueError)) and "JSON" in _exception_text(exc):
        return "convert the value to str, int, float, bool, None, list or dict"
    return ""


def describe_error(exc, sources, args, namespace):
    """Describes an exception raised by user code as a dict of str/int values.

    sources: {filename: source text} of user code (other frames are the host's and
    are left out); args: the request's args (for
    KeyError hints); namespace: the globals the code ran in (for NameError hints).
    """
    frames = _user_frames(exc.__traceback__, sources)
    line = frames[-1][1] if frames else 0
    message = _exception_text(exc)
    if isinstance(exc, SyntaxError):
        line = exc.lineno or 0
        message = exc.msg or message
        frames = []
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):")
        for filename, lineno, name in frames:
            lines.append('  File "%s", line %d, in %s' % (filename, lineno, name))
            text = _source_line(sources, filename, lineno)
            if text:
                lines.append("    " + text)
    elif isinstance(exc, SyntaxError):
        lines.append('  File "%s", line %d' % (exc.filename, line))
        if exc.text:
            lines.append("    " + exc.text.strip())
    type_name = type(exc).__name__
    lines.append(type_name + (": " + message if message else ""))
    try:
        hint = _hint(exc, args, namespace)
    except BaseException:
        hint = ""
    return {
        "type": type_name,
        "message": message,
        "line": line,
        "traceback": "\n".join(lines),
        "hint": hint,
    }
