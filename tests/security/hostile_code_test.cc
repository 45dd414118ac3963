// Hostile cases, code and frames: heap walks, exec/eval/compile of strings, code
// objects built, altered or loaded from bytes (claiming to be the stdlib's), frames
// walked to other globals.
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> CodeCases() {
  return {
      // ---- gc heap walks ----------------------------------------------------------------
      // gc may be imported (collect() is the interpreter's own); walking the heap may not.
      Perm(
          "GcGetObjectsDenied", "import gc\ngc.collect()\ngc.get_objects()\n",
          {"gc.get_objects denied by pyhost policy 'strict': heap walks reach the host's objects"}),
      Via("GcGetObjectsViaStdlib", R"PY(
gc = _reach('gc')
mods = [o for o in gc.get_objects() if type(o).__name__ == 'module' and o.__name__ == 'posix']
mods[0].system('touch ' + args['canary'])
)PY",
          {"heap walks reach the host's objects"}),
      Via("GcGetReferrersViaStdlib", R"PY(
import sys
gc = _reach('gc')
gc.get_referrers(sys.modules)
)PY",
          {"heap walks reach the host's objects"}),
      Via("GcGetReferentsViaStdlib", R"PY(
gc = _reach('gc')
gc.get_referents(_cls)
)PY",
          {"heap walks reach the host's objects"}),

      // ---- exec / eval / compile of strings ---------------------------------------------
      Perm("ExecStringSystem", R"PY(
exec("__import__('os').system('touch ' + c)", {'c': args['canary']})
)PY",
           {"os.system denied"}),
      Imp("EvalImportSubprocess", R"PY(
eval("__import__('subprocess')").run(['touch', args['canary']])
)PY"),
      Perm("CompileForgedStdlibFilename", R"PY(
code = compile("import socket\nsocket.socket().connect(('127.0.0.1', %d))" % args['port'],
               '/usr/lib/python3.11/os.py', 'exec')
exec(code)
)PY",
           {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedFrozenFilename", R"PY(
exec(compile("import ctypes", '<frozen os>', 'exec'))
)PY",
           {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedSupportFilename", R"PY(
exec(compile("import _posixsubprocess", '<pyhost_support>', 'exec'))
)PY",
           {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedBytesFilename", R"PY(
exec(compile("import mmap", b'/usr/lib/python3.11/json/__init__.py', 'exec'))
)PY",
           {"may not claim to be a stdlib, frozen or pyhost module"}),

      // ---- code-object surgery ----------------------------------------------------------
      Perm("CodeReplaceForgedFilename", R"PY(
def f():
    import socket
    return socket
f.__code__.replace(co_filename='/usr/lib/python3.11/json/decoder.py')
)PY",
           {"code objects cannot be built or altered"}),
      Perm("TypesCodeTypeConstructor", R"PY(
import types
c = compile('import os; os.system("touch " + args["canary"])', '<x>', 'exec')
types.CodeType(c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount, c.co_nlocals,
               c.co_stacksize, c.co_flags, c.co_code, c.co_consts, c.co_names, c.co_varnames,
               '/usr/lib/python3.11/os.py', c.co_name, c.co_qualname, c.co_firstlineno,
               c.co_linetable, c.co_exceptiontable)
)PY",
           {"code objects cannot be built or altered"}),
      Perm("SetFunctionCode", R"PY(
import json
def f(*a, **k):
    pass
json.dumps.__code__ = f.__code__
)PY",
           {"code objects cannot be swapped"}),
      Perm("FunctionTypeOnStdlibCode", R"PY(
import json, types
types.FunctionType(json.dumps.__code__, {'__builtins__': __builtins__})
)PY",
           {"functions cannot be built from code objects"}),
      Imp("MarshalImportDenied", "import marshal\n"),
      Perm("MarshalLoadsViaImportlibGlobals", R"PY(
marshal = _external()['marshal']
exec(marshal.loads(marshal.dumps(compile('x = 1', '<x>', 'exec'))))
)PY",
           {"code cannot be loaded from bytes"}),
      Denied("MarshalViaCompileBytecodeForgesStdlibFrame", R"PY(
g = _external()
fake = '/usr/lib/python3.11/zz.py'
placeholder = '<' + 'x' * (len(fake) - 2) + '>'
module = compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                 placeholder, 'exec')
fcode = [c for c in module.co_consts if hasattr(c, 'co_name')][0]
data = g['marshal'].dumps(fcode).replace(placeholder.encode(), fake.encode())
exec(g['_compile_bytecode'](data))
)PY",
             {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("SourcelessLoaderForgesStdlibFrame", R"PY(
import types
g = _external()
fake = '/usr/lib/python3.11/zz.py'
placeholder = '<' + 'x' * (len(fake) - 2) + '>'
fcode = [c for c in compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                            placeholder, 'exec').co_consts if hasattr(c, 'co_name')][0]
body = g['marshal'].dumps(fcode).replace(placeholder.encode(), fake.encode())
open(WORK_DIR + '/zz.pyc', 'wb').write(g['MAGIC_NUMBER'] + bytes(12) + body)
m = types.ModuleType('zz')
g['SourcelessFileLoader']('zz', WORK_DIR + '/zz.pyc').exec_module(m)
result = m.__dict__.get('result')
)PY",
             {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("CompileBytecodeRenamesCodeFrozen", R"PY(
g = _external()
code = g['_compile_bytecode'](g['marshal'].dumps(compile('import socket\nresult = PWN + socket.__name__\n', '<x>', 'exec')),
                              source_path='<frozen os>')
exec(code, globals())
)PY",
             {"PermissionError"}, {"may not be renamed into the stdlib"}),
      Denied("FrozenImportlibBytecodeTakesTheImportLock", R"PY(
g = _external()
imp = _bootstrap()['_imp']
data = g['marshal'].dumps(compile('imp.acquire_lock()\nresult = PWN\n', '<' + 'x' * 27 + '>', 'exec'))
data = data.replace(('<' + 'x' * 27 + '>').encode(), b'<frozen importlib._bootstrap>')
exec(g['_compile_bytecode'](data), {'imp': imp, 'PWN': PWN})
)PY",
             {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("LoaderRenamesCodeIntoTheStdlib", R"PY(
g = _external()
fcode = [c for c in compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                            '<x>', 'exec').co_consts if hasattr(c, 'co_name')][0]
pyc = g['MAGIC_NUMBER'] + bytes(12) + g['marshal'].dumps(fcode)
class Loader(g['SourceLoader']):
    def get_filename(self, name):
        return '/usr/lib/python3.11/zz.py'
    def path_stats(self, path):
        return {'mtime': 0, 'size': 0}
    def get_data(self, path):
        return pyc
exec(Loader().get_code('zz'))
)PY",
             {"PermissionError"}, {"may not be renamed into the stdlib"}),

      FixedEscape("ImpFixCoFilenameForgesImportlibFrame", R"PY(
imp = _bootstrap()['_imp']
marshal = _external()['marshal']
def f():
    global result
    code = marshal.loads(marshal.dumps(compile('1', '<x>', 'eval')))
    result = PWN + ' loaded ' + type(code).__name__ + ' from bytes'
import os
imp._fix_co_filename(f.__code__, os.path.dirname(os.__file__) + '/importlib/zz.py')
f()
)PY"),

      // ---- frame walking ----------------------------------------------------------------
      Imp("FrameWalkToOutermostGlobals", R"PY(
import sys
f = sys._getframe()
while f.f_back is not None:
    f = f.f_back
b = f.f_globals['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
imp('ctypes').CDLL(None).system(('touch ' + args['canary']).encode())
)PY"),
      Imp("TracebackFrameGlobals", R"PY(
try:
    raise ValueError
except ValueError as e:
    g = e.__traceback__.tb_frame.f_globals
b = g['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
imp('_posixsubprocess')
)PY"),
      Perm("GeneratorGiFrame", R"PY(
def gen():
    yield 1
g = gen()
g.gi_frame.f_globals['__builtins__']
)PY",
           {"suspended frames are not reachable"}),
      Perm("CoroutineCrFrame", R"PY(
async def co():
    pass
c = co()
try:
    c.cr_frame.f_globals
finally:
    c.close()
)PY",
           {"suspended frames are not reachable"}),
      Denied("ErrorStrFrameReachesSupportGlobals", R"PY(
import sys
class Sneaky(Exception):
    def __str__(self):
        f = sys._getframe(1)
        try:
            f.f_globals['os'].system('touch ' + args['canary'])
            return PWN + ' from ' + f.f_code.co_filename
        except BaseException as e:
            return repr(e)
raise Sneaky()
)PY",
             {"Sneaky"}, {"os.system denied by pyhost policy 'strict'"}),

      // ---- code objects under strict: the code's own may be built, not the stdlib's -------
      Perm("CodeReplaceStdlibGeneratorBeyondTheFlag", R"PY(
import asyncio, types
gen = asyncio.tasks.__sleep0
code = gen.__code__
code.replace(co_flags=code.co_flags | 0x100, co_names=('socket',) + code.co_names)
)PY",
           {"code objects cannot be built or altered"}),
      Perm("CodeReplaceStdlibGeneratorOtherFlag", R"PY(
import json.decoder
def find():
    import inspect
    for name, f in vars(json.decoder).items():
        if inspect.isfunction(f):
            return f
f = find()
f.__code__.replace(co_flags=f.__code__.co_flags | 0x20 | 0x100)
)PY",
           {"code objects cannot be built or altered"}),
      // An audit hook of the code's would run inside pyhost's checks: enforcing policies
      // refuse the hook itself (the rule that closes this case and the socketpair one).
      Perm("UserAuditHookInsideVettedReplace", R"PY(
import sys
done = []
def hook(event, a):
    if event == 'code.__new__' and not done:
        done.append(1)
        compile('import socket', '<x>', 'exec').replace(co_filename='/usr/lib/python3.11/json/zz.py')
sys.addaudithook(hook)
import asyncio
)PY",
           {"the code cannot hook pyhost's checks"}),
      Perm("SetUserFunctionCodeToStdlibCode", R"PY(
import json
def f(*a, **k):
    pass
f.__code__ = json.dumps.__code__
)PY",
           {"code objects cannot be swapped"}),
      Imp("ExecStdlibModuleCodeWithForgedPackage", R"PY(
import os
loader = _cls('SourceFileLoader')('json', os.path.dirname(os.__file__) + '/json/__init__.py')
exec(loader.get_code('json'), {'__name__': 'http.x', '__package__': 'http', '__builtins__': __builtins__})
)PY"),
      Imp("LoaderExecModuleWithForgedPackage", R"PY(
import os, types
loader = _cls('SourceFileLoader')('json', os.path.dirname(os.__file__) + '/json/__init__.py')
m = types.ModuleType('json')
m.__package__ = 'http'
loader.exec_module(m)
)PY"),
      Imp("FunctionFromGeneratedCodeImportsSocket", R"PY(
import types
code = compile('import socket', 'generated.py', 'exec')
types.FunctionType(code, {'__builtins__': __builtins__})()
)PY"),
  };
}

}  // namespace pyhost::hostile
