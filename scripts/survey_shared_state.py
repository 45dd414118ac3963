#!/usr/bin/env python3
"""Which stdlib C modules keep state shared by every interpreter (CPython 3.11).

Run with the python3 pyhost embeds (it needs _xxsubinterpreters):
    /usr/bin/python3 scripts/survey_shared_state.py [MODULE ...]
For each builtin and lib-dynload extension module, two subinterpreters (A, B) import
it; an object of the module reached from both with the same identity is shared. A
mutates what it can (class attributes, container items, settable attributes, known
state setters); B looks for the change. Prints one line per finding ("-": none).
docs/security.md, "State shared by every interpreter", lists the findings and what
pyhost does about each."""
import _xxsubinterpreters as interpreters
import json, os, sys, tempfile

SKIP = {"_xxsubinterpreters", "_xxinterpchannels", "_testcapi", "_testinternalcapi",
        "_testmultiphase", "_testimportmultiple", "_testbuffer", "_testclinic", "_ctypes_test",
        "_xxtestfuzz", "xxlimited", "xxlimited_35", "xxsubtype", "faulthandler",
        "_posixsubprocess", "_tkinter", "ossaudiodev", "readline", "_curses", "_curses_panel"}

def modules():
    names = set(sys.builtin_module_names)
    dynload = os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "lib-dynload")
    for f in os.listdir(dynload):
        names.add(f.split(".")[0])
    return sorted(n for n in names if n not in SKIP and n not in ("sys", "builtins"))

# Runs inside a subinterpreter: describe (and optionally mutate) module `name`.
PROBE = r'''
import json, importlib, types, sys
out = {"ids": {}, "error": None, "mutated": []}
try:
    m = importlib.import_module(NAME)
except Exception as e:
    out["error"] = repr(e)
    m = None
IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range,
             types.BuiltinFunctionType, types.ModuleType)
def walk():
    for attr in sorted(dir(m)):
        try:
            v = getattr(m, attr)
        except Exception:
            continue
        yield attr, v
        if isinstance(v, types.ModuleType) and v is not m and v.__name__.startswith(NAME):
            for a2 in sorted(dir(v)):
                try:
                    yield attr + "." + a2, getattr(v, a2)
                except Exception:
                    pass
def values():
    res = {}
    for attr, v in walk():
        if isinstance(v, (type, types.ModuleType) + IMMUTABLE) or callable(v):
            continue
        vals = {}
        for a in dir(v):
            if a.startswith("__"): continue
            try:
                x = getattr(v, a)
            except Exception:
                continue
            if isinstance(x, (int, float, str, bool)):
                vals[a] = repr(x)
        res[attr] = vals
    return res
if m is not None:
    for attr, v in walk():
        heap = isinstance(v, type) and bool(v.__flags__ & (1 << 9))
        kind = ("heaptype" if heap else "type" if isinstance(v, type) else
                "function" if isinstance(v, types.BuiltinFunctionType) else
                "module" if isinstance(v, types.ModuleType) else type(v).__name__)
        out["ids"][attr] = [id(v), kind]
        if isinstance(v, types.BuiltinFunctionType):
            out["ids"][attr + ".__self__"] = [id(v.__self__), type(v.__self__).__name__]
    out["values_before"] = values()
    if MUTATE:
        for attr, v in walk():
            tried = []
            if isinstance(v, type):
                try:
                    v._pyhost_probe = 1; tried.append("setattr")
                except Exception:
                    pass
            elif isinstance(v, dict):
                try:
                    v["_pyhost_probe"] = 1; tried.append("item")
                except Exception:
                    pass
            elif isinstance(v, list):
                try:
                    v.append("_pyhost_probe"); tried.append("append")
                except Exception:
                    pass
            elif isinstance(v, set):
                try:
                    v.add("_pyhost_probe"); tried.append("add")
                except Exception:
                    pass
            elif isinstance(v, types.ModuleType) and v is not m:
                try:
                    v._pyhost_probe = 1; tried.append("setattr")
                except Exception:
                    pass
            elif not isinstance(v, IMMUTABLE) and not callable(v):
                try:
                    v._pyhost_probe = 1; tried.append("setattr")
                except Exception:
                    pass
                for a in dir(v):
                    if a.startswith("__"):
                        continue
                    try:
                        old = getattr(v, a)
                    except Exception:
                        continue
                    new = {int: lambda x: x + 1 if x < 50 else x - 1, bool: lambda x: not x,
                           float: lambda x: x + 1.5, str: lambda x: x + "p"}.get(type(old))
                    if new is None:
                        continue
                    try:
                        setattr(v, a, new(old)); tried.append("attr:" + a)
                    except Exception:
                        pass
            if tried:
                out["mutated"].append([attr, tried])
    out["state"] = {}
    for expr in STATE:
        try:
            out["state"][expr] = repr(eval(expr, {"m": m}))
        except Exception as e:
            out["state"][expr] = "error " + type(e).__name__
    if MUTATE:
        for stmt in SETTERS:
            try:
                exec(stmt, {"m": m})
            except Exception as e:
                out["state"]["!" + stmt] = "error " + repr(e)
    # after mutation (A) / as seen (B): probes
    out["seen"] = {}
    for attr, v in walk():
        seen = []
        try:
            if getattr(v, "_pyhost_probe", None) == 1: seen.append("attr")
        except Exception: pass
        try:
            if isinstance(v, dict) and "_pyhost_probe" in v: seen.append("item")
            if isinstance(v, (list, set)) and "_pyhost_probe" in v: seen.append("item")
        except Exception: pass
        if seen:
            out["seen"][attr] = seen
    out["values"] = values()
    out["state_after"] = {}
    for expr in STATE:
        try:
            out["state_after"][expr] = repr(eval(expr, {"m": m}))
        except Exception as e:
            out["state_after"][expr] = "error " + type(e).__name__
with open(OUT, "w") as f:
    json.dump(out, f)
'''

# Module state reachable only through functions: (getter expressions, setter statements).
STATEFUL = {
    "_socket": (["m.getdefaulttimeout()"], ["m.setdefaulttimeout(7.5)"]),
    "gc": (["m.get_threshold()", "m.isenabled()", "m.get_debug()"],
           ["m.set_threshold(5, 6, 7)", "m.disable()", "m.set_debug(0)"]),
    "_codecs": (["m.lookup_error('pyhost_probe')"], ["m.register_error('pyhost_probe', lambda e: ('', e.end))"]),
    "_thread": (["m.stack_size()"], ["m.stack_size(1 << 20)"]),
    "_sqlite3": (["m.adapters.get((int, m.PrepareProtocol))", "m.converters.get('PYHOST')"],
                 ["m.register_adapter(int, str)", "m.register_converter('PYHOST', str)",
                  "m.enable_callback_tracebacks(True)"]),
    "_elementtree": ([], ["m._set_factories(None, None)"]),
    "time": (["m.tzname", "m.timezone"], []),
    "_struct": ([], ["m._clearcache()"]),
    "_warnings": (["len(m.filters)"], ["m.filters.insert(0, ('ignore', None, Warning, None, 0))"]),
    "_zoneinfo": (["id(m.ZoneInfo('UTC'))"], []),
    "_abc": (["m.get_cache_token()"], ["m._abc_init(type('X', (), {}))", "import abc; abc.ABC.register(int)"]),
    "_csv": (["m.field_size_limit()"], ["m.field_size_limit(77)"]),
    "_locale": (["m.textdomain(None)"], ["m.textdomain('pyhostprobe')"]),
    "_asyncio": (["id(m._all_tasks)", "id(m._current_tasks)"], []),
    "_ssl": (["m.RAND_status()"], []),
    "_io": (["m.DEFAULT_BUFFER_SIZE"], []),
}

def run(interp, name, mutate, out_path):
    state, setters = STATEFUL.get(name, ([], []))
    code = (f"NAME={name!r}\nMUTATE={mutate!r}\nOUT={out_path!r}\nSTATE={state!r}\n"
            f"SETTERS={setters!r}\n" + PROBE)
    interpreters.run_string(interp, code)
    with open(out_path) as f:
        return json.load(f)

def survey(name, tmp):
    a, b = interpreters.create(), interpreters.create()
    try:
        ra = run(a, name, True, os.path.join(tmp, "a.json"))
        rb = run(b, name, False, os.path.join(tmp, "b.json"))
    finally:
        interpreters.destroy(a)
        interpreters.destroy(b)
    findings = []
    if ra["error"] or rb["error"]:
        return [("import", ra["error"] or rb["error"])]
    shared = [attr for attr, (i, kind) in rb["ids"].items()
              if attr in ra["ids"] and ra["ids"][attr][0] == i and kind not in ("type", "function")
              and not kind in ("int", "str", "bool", "NoneType", "float", "bytes", "tuple", "frozenset")]
    for attr in shared:
        findings.append(("shared " + rb["ids"][attr][1], attr))
    for attr, how in rb["seen"].items():
        findings.append(("LEAK mutation seen in B", f"{attr} {how}"))
    for attr, vals in rb.get("values", {}).items():
        before = ra.get("values_before", {}).get(attr, {})
        after = ra.get("values", {}).get(attr, {})
        for a, x in vals.items():
            if before.get(a) != after.get(a) and x == after.get(a):
                findings.append(("LEAK attribute seen in B", f"{attr}.{a}: {before.get(a)} -> {x}"))
    for expr, value in rb.get("state", {}).items():
        if expr.startswith("id(") and ra["state"].get(expr) == value and not value.startswith("error"):
            findings.append(("shared (same object)", expr))
    for expr, before in rb.get("state", {}).items():
        if expr.startswith("!"):
            continue
        a_before = ra["state"].get(expr)
        a_after = ra["state_after"].get(expr)
        if a_after != a_before and before == a_after:
            findings.append(("LEAK state seen in B", f"{expr}: {a_before} -> {a_after}"))
        elif a_after != a_before:
            findings.append(("per-interpreter state", f"{expr}: A {a_before} -> {a_after}, B {before}"))
    return findings

def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name in (sys.argv[1:] or modules()):
            try:
                findings = survey(name, tmp)
            except Exception as e:
                findings = [("survey failed", repr(e))]
            for kind, what in findings:
                print(f"{name:18} {kind:28} {what}")
            if not findings:
                print(f"{name:18} -")
            sys.stdout.flush()

if __name__ == "__main__":
    main()
