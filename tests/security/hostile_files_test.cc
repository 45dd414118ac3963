// Hostile cases, files: reading and writing outside the roots (directly, through
// links, /proc, openers, copies), SQLite's files under its authorizer, and what an
// execution may write (OUTPUT_DIR).
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> FileCases() {
  return {
      // ---- files --------------------------------------------------------------------------
      Perm("ReadProcSelfEnviron", "result = open('/proc/self/environ', 'rb').read().decode()\n",
           {"outside the readable paths"}),
      Perm("ReadProcSelfMem", R"PY(
with open('/proc/self/mem', 'rb') as f:
    f.seek(int(open('/proc/self/maps').read().split('-')[0], 16))
    result = f.read(64).hex()
)PY",
           {"outside the readable paths"}),
      Perm("ReadProcSelfMaps", "result = open('/proc/self/maps').read()\n",
           {"outside the readable paths"}),
      Perm("ReadEtcPasswd", "result = open('/etc/passwd').read()\n",
           {"outside the readable paths"}),
      Perm("ReadSecretFile", "result = open(args['secret_path']).read()\n",
           {"outside the readable paths"}),
      Perm("ReadSecretViaProcSelfCwd", R"PY(
import os
result = open('/proc/self/cwd/host-secret.txt').read()
)PY",
           {"outside the readable paths"}),
      Perm("WriteCanaryOutside", "open(args['canary'], 'w').write(PWN)\n",
           {"outside the writable paths"}),
      Perm("WriteHostCwdRelative", "open('planted.txt', 'w').write(PWN)\n",
           {"outside the writable paths"}),
      Perm("AppendHostCwdViaOsOpen", R"PY(
import os
os.open('planted.txt', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
)PY",
           {"outside the writable paths"}),
      Perm("SymlinkToOutsideDirThenWrite", R"PY(
import os
os.symlink(args['outside'], OUTPUT_DIR + '/d')
open(OUTPUT_DIR + '/d/canary', 'w').write(PWN)
)PY",
           {"outside the writable paths"}),
      Perm("SymlinkToSecretThenRead", R"PY(
import os
os.symlink(args['secret_path'], OUTPUT_DIR + '/s')
result = open(OUTPUT_DIR + '/s').read()
)PY",
           {"outside the readable paths", "the link's target is outside the writable paths"}),
      FixedEscape("DanglingSymlinkInOutputDirCreatesOutsideFile", R"PY(
import os
os.symlink(args['canary'], OUTPUT_DIR + '/l')
with open(OUTPUT_DIR + '/l', 'w') as f:
    f.write(PWN)
)PY"),
      Perm("DotDotTraversalOutOfOutputDir", R"PY(
import os
rel = os.path.relpath(args['canary'], OUTPUT_DIR)
open(OUTPUT_DIR + '/' + rel, 'w').write(PWN)
)PY",
           {"outside the writable paths"}),
      FixedEscape("SymlinkToProcFdReadsHostDeletedSecret", R"PY(
import os
os.symlink('/proc/self/fd/%d' % args['secret_fd'], OUTPUT_DIR + '/fd')
result = open(OUTPUT_DIR + '/fd').read()
)PY"),
      FixedEscape("SymlinkToProcFdWritesHostPipe", R"PY(
import os
os.symlink('/proc/self/fd/%d' % args['pipe_fd'], WORK_DIR + '/fd')
with open(WORK_DIR + '/fd', 'w') as f:
    f.write(PWN)
)PY"),
      Perm("ProcSelfFdDirect", "open('/proc/self/fd/%d' % args['pipe_fd'], 'w').write(PWN)\n",
           {"outside the writable paths"}),
      FixedEscape("MkfifoOutside", "import os\nos.mkfifo(args['canary'])\n"),
      FixedEscape("MknodOutside", "import os\nos.mknod(args['canary'])\n"),

      // ---- sqlite3 under strict: what SQL opens is its authorizer's (guards/sqlite.h) ------
      SqliteDenied("SqliteAttachCreatesOutsideFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE ? AS x", (args['canary'],))
db.execute("CREATE TABLE x.t(a)")
db.commit()
)PY"),
      SqliteDenied("SqliteVacuumIntoOutsideFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("CREATE TABLE t(a)")
db.execute("VACUUM INTO ?", (args['canary'],))
)PY"),
      SqliteDenied("SqliteAttachLiteralHostFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteVacuumIntoLiteralOutsideWorkDir", R"PY(
import sqlite3
db = sqlite3.connect(WORK_DIR + '/db')
db.execute("CREATE TABLE t(a)")
db.execute("VACUUM INTO '%s'" % args['canary'])
)PY"),
      SqliteDenied("SqliteAttachUriHostFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE 'file:%s?mode=rwc' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteAttachUriPercentEncodedDotDot", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
up = '%2e%2e/' * 12
db.execute("ATTACH DATABASE 'file:%s%s%s' AS x" % (WORK_DIR + '/', up, args['canary'].lstrip('/')))
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteSetAuthorizerNoneThenAttach", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.set_authorizer(None)
sqlite3.Connection.set_authorizer(db, authorizer_callback=None)
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteAllowAllAuthorizerThenAttach", R"PY(
import sqlite3
class Db(sqlite3.Connection):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.set_authorizer(lambda *args: sqlite3.SQLITE_OK)
db = sqlite3.connect(':memory:', factory=Db)
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteReinitConnectionThenAttach", R"PY(
import sqlite3
db = sqlite3.Connection.__new__(sqlite3.Connection)
sqlite3.Connection.__init__(db, ':memory:')
db.__init__(':memory:')
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteTempStoreDirectoryOutside", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("PRAGMA temp_store_directory = '%s'" % args['outside'])
)PY"),
      SqliteDenied("SqliteLoadExtensionSqlFunction", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("SELECT load_extension('/usr/lib/x86_64-linux-gnu/libc.so.6')")
)PY"),
      Via("SqliteConnectOutside",
          "import sqlite3\nsqlite3.connect(args['canary']).execute('create table t(a)')\n",
          {"outside the writable paths"}),
      Perm("SqliteConnectUriOutside", R"PY(
import sqlite3
sqlite3.connect('file:%s?mode=rwc' % args['canary'], uri=True).execute('create table t(a)')
)PY",
           {"sqlite3.connect('file:", "outside the writable paths"}),
      Perm("SqliteConnectUriTwoModes", R"PY(
import sqlite3
sqlite3.connect('file:%s?mode=memory&mode=rwc' % args['canary'], uri=True).execute('create table t(a)')
)PY",
           {"outside the writable paths"}),
      Perm("SqliteJournalSymlinkToHostFile", R"PY(
import os, sqlite3
os.symlink(args['canary'], WORK_DIR + '/x.db-journal')
db = sqlite3.connect(WORK_DIR + '/x.db')
db.execute('create table t(a)')
db.commit()
)PY",
           {"the link's target is outside the writable paths"}),
      Perm("RelativeSymlinkClimbingOutLater", R"PY(
import os
os.makedirs(WORK_DIR + '/a/b')
os.symlink('../../x', WORK_DIR + '/a/b/l')
)PY",
           {"a relative link target may not contain '..'"}),
      // A file the policy lets the code read (the stdlib, say) must not become writable
      // through a hard link in WORK_DIR (before the fix this wrote the file itself).
      Perm("HardLinkReadableFileIntoWorkDirThenWrite", R"PY(
import os
os.link(args['secret_path'], WORK_DIR + '/s')
open(WORK_DIR + '/s', 'a').write(PWN)
)PY",
           {"outside the writable paths"})
          .WithPolicy("read-outside"),

      // ---- files: openers, copies, links, the password files, listing the cwd ------------

      FixedEscape("OpenerReturnsHostPipeFd", R"PY(
with open(WORK_DIR + '/x', 'w', opener=lambda path, flags: args['pipe_fd']) as f:
    f.write(PWN)
)PY"),
      FixedEscape("PositionalOpenerReturnsHostPipeFd", R"PY(
with open(WORK_DIR + '/x', 'w', -1, None, None, None, True, lambda path, flags: args['pipe_fd']) as f:
    f.write(PWN)
)PY"),
      FixedEscape("FileIOOpenerReturnsHostPipeFd", R"PY(
import io
io.FileIO(WORK_DIR + '/x', 'w', True, lambda path, flags: args['pipe_fd']).write(PWN.encode())
)PY"),
      FixedEscape("FileIOInitDescriptorWithHostOpener", R"PY(
import io
f = io.FileIO.__new__(io.FileIO)
io.FileIO.__init__(f, WORK_DIR + '/x', 'w', opener=lambda path, flags: args['pipe_fd'])
f.write(PWN.encode())
)PY"),
      Perm("ShutilCopySecretIntoOutputDir", R"PY(
import shutil
shutil.copy(args['secret_path'], OUTPUT_DIR + '/stolen')
)PY",
           {"denied by pyhost policy 'strict'"}),
      Perm("HardLinkSecretIntoOutputDir", R"PY(
import os
os.link(args['secret_path'], OUTPUT_DIR + '/stolen')
)PY",
           {"outside the readable paths", "outside the writable paths"}),
      Perm("TempfileMkstempOutside", R"PY(
import tempfile
tempfile.mkstemp(dir=args['outside'])
)PY",
           {"outside the writable paths"}),
      Perm("PathlibWriteOutside", "import pathlib\npathlib.Path(args['canary']).write_text(PWN)\n",
           {"outside the writable paths"}),
      Perm("ZipfileWriteOutside", "import zipfile\nzipfile.ZipFile(args['canary'], 'w').close()\n",
           {"outside the writable paths"}),
      Perm("RenameIntoOutside", R"PY(
import os
open(WORK_DIR + '/x', 'w').write(PWN)
os.rename(WORK_DIR + '/x', args['canary'])
)PY",
           {"outside the writable paths"}),
      FixedEscape("PasswdViaTarfilePwd", R"PY(
import tarfile
pwd = tarfile.pwd or _reach('pwd')
result = [':'.join(map(str, p)) for p in pwd.getpwall()]
)PY"),
      FixedEscape("ShadowViaStdlibSpwd", R"PY(
result = [':'.join(map(str, s)) for s in _reach('spwd').getspall()]
)PY"),
      Perm("ListdirDefaultListsHostCwd", "import os\nresult = os.listdir()\n",
           {"outside the readable paths"}),
      Perm("ListdirOutside", "import os\nresult = os.listdir(args['outside'])\n",
           {"outside the readable paths"}),
  };
}

// The resident interpreter keeps module state across executions whatever their policy:
// a connection a yolo execution left behind must be as guarded under strict as one
// strict opens (the authorizer is on every connection, and asks the policy in force).
TEST_F(HostileTest, SqliteConnectionLeftByYoloIsGuardedUnderStrict) {
  ExecRequest opened;
  opened.code = "import sqlite3, sys\nsys.kept_connection = sqlite3.connect(':memory:')\n";
  opened.isolation = Isolation::kResident;
  opened.policy = *NamedPolicy("yolo");
  absl::StatusOr<ExecResult> first = host_->Execute(opened);
  ASSERT_TRUE(first.ok() && first->ok)
      << (first.ok() ? first->ToJson().dump() : first.status().ToString());
  Repair();  // what yolo may do (code earlier cases left in this interpreter runs too) is not
             // checked
  ExecRequest used;
  used.code = R"PY(
import sys
db = sys.kept_connection
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute('CREATE TABLE x.t(a)')
)PY";
  used.args = Args();
  used.isolation = Isolation::kResident;
  absl::StatusOr<ExecResult> second = host_->Execute(used);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->error.has_value()) << second->ToJson().dump();
  EXPECT_EQ(second->error->type, "DatabaseError") << second->ToJson().dump();
  EXPECT_THAT(second->stderr_stream.text, ::testing::HasSubstr("denied by pyhost policy 'strict'"));
  std::vector<std::string> problems;
  CheckNoSideEffects(*second, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  Repair();
}

// User functions (called back through PyGILState) work inside a sandbox, also with
// pyhost's authorizer on the connection (it is on every connection, yolo's too).
TEST_F(HostileTest, SqliteInMemoryWithUserFunctionUnderYolo) {
  ExecResult r = Run(*host_, R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.create_function('dbl', 1, lambda v: v * 2)
db.execute('create table t(v)')
db.executemany('insert into t values (?)', [(1,), (2,)])
result = db.execute('select sum(dbl(v)) from t').fetchone()[0]
)PY",
                     "yolo");
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json(6));
  std::vector<std::string> problems;
  CheckNoSideEffects(r, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  Repair();
}

TEST_F(HostileTest, OutputDirFileIsListed) {
  ExecResult r = Run(*host_, R"PY(
with open(OUTPUT_DIR + '/x.txt', 'w') as f:
    f.write('artifact')
result = 'written'
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.output.files, std::vector<std::string>{"x.txt"});
  ASSERT_FALSE(r.output.dir.empty());
  EXPECT_EQ(ReadFile(r.output.dir + "/x.txt"), "artifact");
  EXPECT_EQ(r.output.dir.rfind(*work_root_ + "/", 0), 0u) << r.output.dir;
  RemoveTree(r.output.dir);
  Repair();
}

}  // namespace pyhost::hostile
