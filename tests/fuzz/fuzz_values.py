"""Builds a Python value from fuzz input, for tests/fuzz/json_python_fuzzer.cc.

A small stack machine: each byte is an operation (its low 4 bits) with an argument
(its high 4 bits). It makes what a snippet's `result` can be: nested lists, tuples,
dicts and sets, ints past 64 bits, NaN, lone surrogates, cycles, deep nesting, and
subclasses of str/int/float/list/tuple/dict whose methods, while ARMED[0] is true,
count themselves in CALLS and empty every container built so far (a conversion that
called one would then read freed memory, which the address sanitizer reports).
"""

ARMED = [False]
CALLS = [0]
BUILT = []


def _hostile(original):
    def method(self, *args, **kwargs):
        if ARMED[0]:
            CALLS[0] += 1
            for value in BUILT:
                if type(value).__name__.startswith("Hostile") or isinstance(value, (list, dict, set)):
                    try:
                        value.clear()
                    except Exception:
                        pass
            BUILT.clear()
        return original(self, *args, **kwargs)
    return method


_METHODS = ("__str__", "__repr__", "__format__", "__iter__", "__len__", "__getitem__",
            "__contains__", "__eq__", "__ne__", "__lt__", "__hash__", "__index__", "__int__",
            "__float__", "__bool__", "__reversed__", "items", "keys", "values", "get",
            "__copy__", "__reduce_ex__", "__getattribute__")


def _subclass(base):
    methods = {name: _hostile(getattr(base, name)) for name in _METHODS if hasattr(base, name)}
    return type("Hostile" + base.__name__.capitalize(), (base,), methods)


HOSTILE = {base: _subclass(base) for base in (str, int, float, list, tuple, dict)}

INTS = (2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**30, -1)
FLOATS = (0.0, -0.0, 1.5, 1e308, float("nan"), float("inf"), -1e-300, 2.5)
STRS = ("", "a", "\u00e9", "\u2713", "\ud800", "\udcff", "k" * 1000, "\x00")
OTHERS = (b"x", bytearray(b"y"), 1j, object(), range(3), frozenset({1}), ..., type)


def _made(value):
    if isinstance(value, (list, dict, set)):
        BUILT.append(value)
    return value


def _hashable(value):
    try:
        hash(value)
        return True
    except TypeError:
        return False


def build(data):
    BUILT.clear()  # only this input's values
    stack = []
    for byte in data[:512]:
        op, arg = byte & 15, byte >> 4
        if len(stack) > 64:
            del stack[:32]
        if op == 0:
            stack.append(None)
        elif op == 1:
            stack.append(bool(arg & 1))
        elif op == 2:
            stack.append(arg - 8)
        elif op == 3:
            stack.append(INTS[arg % len(INTS)])
        elif op == 4:
            stack.append(FLOATS[arg % len(FLOATS)])
        elif op == 5:
            stack.append(STRS[arg % len(STRS)])
        elif op == 6:
            stack.append(OTHERS[arg % len(OTHERS)])
        elif op in (7, 8, 10):
            k = min(arg, len(stack))
            items = stack[len(stack) - k:]
            del stack[len(stack) - k:]
            if op == 7:
                stack.append(_made(items))
            elif op == 8:
                stack.append(tuple(items))
            else:
                stack.append(_made({item for item in items if _hashable(item)}))
        elif op == 9:
            k = min(arg, len(stack) // 2)
            items = stack[len(stack) - 2 * k:]
            del stack[len(stack) - 2 * k:]
            stack.append(_made({key: value for key, value in zip(items[::2], items[1::2])
                                if _hashable(key)}))
        elif op == 11 and stack:
            value = stack.pop()
            base = next((b for b in HOSTILE if type(value) is b), None)
            stack.append(_made(HOSTILE[base](value)) if base is not None else value)
        elif op == 12 and stack:
            value = stack[-1]
            if isinstance(value, list):
                value.append(value)
            elif isinstance(value, dict):
                value["self"] = value
        elif op == 13 and stack:
            value = stack.pop()
            for _ in range(arg * 20):
                value = [value]
            stack.append(value)
        elif op == 14 and stack:
            stack.append(stack[-1])
        elif op == 15 and stack:
            stack.pop()
    return stack[-1] if stack else None
