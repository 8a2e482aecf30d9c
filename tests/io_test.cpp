#include <gtest/gtest.h>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 appendix B test vectors.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(AtomicWrite, ReplacesWholeFileAndLeavesNoTemp) {
  std::string dir = test::fresh_dir("atomic");
  std::string path = path_join(dir, "f.bin");
  write_file_atomic(path, "first");
  write_file_atomic(path, "second version");
  EXPECT_EQ(read_file(path), "second version");
  EXPECT_EQ(sha256_file(path), sha256_hex("second version"));
  EXPECT_EQ(test::list_dir(dir), std::vector<std::string>{"f.bin"});
}

TEST(AtomicWrite, MissingDirectoryIsANamedError) {
  try {
    write_file_atomic("/nonexistent-dir/x.bin", "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.bin"), std::string::npos) << e.what();
  }
}

}  // namespace treg
