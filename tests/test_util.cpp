#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "treg/build_info.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/runtime.h"

namespace {
// The treg binary tunes glibc's allocator in init_runtime(); the in-process tests get the same.
const bool allocator_tuned = (treg::tune_allocator(), true);
}  // namespace

namespace treg::test {

std::string fresh_dir(const std::string& name) {
  std::string dir = path_join(TREG_TEST_TMP, name);
  run_command("rm -rf '" + dir + "'");
  make_dirs(dir);
  return dir;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int run_command(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string treg_binary() { return TREG_BINARY; }

std::string source_path(const std::string& rel) { return path_join(source_dir(), rel); }

std::string python_with_torch() { return "/usr/bin/python3"; }

std::string tiny_model(const std::string& arch) {
  // Shared by every test process (ctest runs each test in its own process, in parallel): made once
  // under an flock, marked complete by a file written last.
  static std::map<std::string, std::string> made;
  auto it = made.find(arch);
  if (it != made.end()) return it->second;
  make_dirs(TREG_TEST_TMP);
  std::string dir = path_join(TREG_TEST_TMP, "tiny-" + arch);
  std::string done = dir + ".done";
  int lock = ::open((dir + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + dir);
  // A rebuilt treg may make a different tiny model: the marker records which binary made it.
  struct stat st {};
  ::stat(treg_binary().c_str(), &st);
  const std::string stamp = std::to_string(st.st_mtime) + ":" + std::to_string(st.st_size);
  if (!file_exists(done) || read_file(done) != stamp) {
    std::string out;
    int rc = run_command("rm -rf '" + dir + "' && " + treg_binary() + " make-tiny --arch " + arch +
                             " --seed 0 --out '" + dir + "'",
                         &out);
    if (rc != 0) {
      ::close(lock);
      throw std::runtime_error("make-tiny failed for " + arch + ":\n" + out);
    }
    write_file_atomic(done, stamp);
  }
  ::close(lock);
  made[arch] = dir;
  return dir;
}

std::string unpack_tokenizer_fixture(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir =
      fresh_dir("fixture_" + name + "_" + info->test_suite_name() + "_" + info->name());
  std::string src = source_path("tests/data/tokenizers/" + name);
  std::string out;
  int rc =
      run_command("gunzip -c '" + src + "/tokenizer.json.gz' > '" + dir +
                      "/tokenizer.json' && cp '" + src + "/tokenizer_config.json' '" + dir + "/'",
                  &out);
  EXPECT_EQ(rc, 0) << out;
  return dir;
}

}  // namespace treg::test
