// The reward dump format on its own: round trip, torn-tail resume, corruption and staleness errors.
// (The CLI-level tests — kill -9 and byte-identical resume, scoring — are in rewards_test.cpp.)
#include "treg/reward_dump.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

PairRecord make_record(int64_t i) {
  PairRecord r;
  r.index = i;
  r.source_line = 3 * i + 1;
  r.prompt_ids = {1, 7, 8, static_cast<int64_t>(9 + i)};
  auto fill = [&](ResponseScores& s, int64_t n, float base) {
    for (int64_t t = 0; t < n; ++t) {
      s.ids.push_back(100 + t + i);
      s.ref_logps.push_back(base - 0.25f * t);
      s.logp_better.push_back(base - 0.5f * t);
      s.logp_worse.push_back(base - 0.125f * t);
      s.rewards.push_back(0.01f * t - 0.5f);
    }
  };
  fill(r.chosen, 2 + i % 3, -1.5f);
  fill(r.rejected, 3 + i % 2, -2.5f);
  return r;
}

void expect_same(const PairRecord& a, const PairRecord& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.source_line, b.source_line);
  EXPECT_EQ(a.prompt_ids, b.prompt_ids);
  for (auto [x, y] : {std::pair{&a.chosen, &b.chosen}, std::pair{&a.rejected, &b.rejected}}) {
    EXPECT_EQ(x->ids, y->ids);
    EXPECT_EQ(x->ref_logps, y->ref_logps);
    EXPECT_EQ(x->logp_better, y->logp_better);
    EXPECT_EQ(x->logp_worse, y->logp_worse);
    EXPECT_EQ(x->rewards, y->rewards);
  }
}

const json kMeta = {
    {"format", "treg-reward-dump"}, {"max_length", 2048}, {"model", {{"config_sha256", "abc"}}}};

std::string write_dump(const std::string& path, int64_t n, const json& meta = kMeta) {
  RewardDumpWriter w(path, meta, 1, 2);
  for (int64_t i = 0; i < n; ++i) w.append(make_record(i));
  w.finish();
  return read_file(path);
}

using test::error_of;

TEST(RewardDump, Crc32MatchesTheStandardCheckValue) {
  // The CRC-32/ISO-HDLC check value of "123456789" (as zlib.crc32).
  EXPECT_EQ(crc32_update(0, "123456789", 9), 0xCBF43926u);
  // Continuing equals one call.
  EXPECT_EQ(crc32_update(crc32_update(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

TEST(RewardDump, RoundTripsWithRandomAccess) {
  std::string dir = test::fresh_dir("dump_roundtrip");
  std::string path = dir + "/d.bin";
  write_dump(path, 7);
  EXPECT_FALSE(file_exists(path + ".partial"));
  RewardDumpReader r(path);
  EXPECT_EQ(r.size(), 7);
  EXPECT_EQ(r.metadata(), kMeta);
  for (int64_t i : {6, 0, 3}) expect_same(r.read(i), make_record(i));
  EXPECT_NE(error_of([&] { r.read(7); }).find("out of range"), std::string::npos);
}

TEST(RewardDump, LayoutIsTheDocumentedOne) {
  // Independent parse of the bytes with python (struct/zlib), not with our reader.
  std::string dir = test::fresh_dir("dump_layout");
  std::string path = dir + "/d.bin";
  write_dump(path, 3);
  std::string script = dir + "/parse.py";
  std::ofstream(script) << R"PY(
import json, struct, sys, zlib
b = open(sys.argv[1], 'rb').read()
assert b[:8] == b'TREGRWD\0', b[:8]
ver, _, mlen = struct.unpack_from('<IIQ', b, 8)
meta = b[24:24 + mlen]
assert struct.unpack_from('<I', b, 24 + mlen)[0] == zlib.crc32(meta)
assert b[-8:] == b'TREGEND\0'
idx_off, count, idx_crc, _ = struct.unpack_from('<QQII', b, len(b) - 32)
offs = struct.unpack_from('<%dQ' % count, b, idx_off)
assert zlib.crc32(b[idx_off:idx_off + 8 * count]) == idx_crc
out = []
for o in offs:
    magic, plen = struct.unpack_from('<IQ', b, o)
    assert magic == 0x52494150
    p = b[o + 12:o + 12 + plen]
    assert struct.unpack_from('<I', b, o + 12 + plen)[0] == zlib.crc32(p)
    i, line, P = struct.unpack_from('<qqI', p, 0); k = 20
    prompt = list(struct.unpack_from('<%di' % P, p, k)); k += 4 * P
    resp = []
    for _ in range(2):
        (n,) = struct.unpack_from('<I', p, k); k += 4
        ids = list(struct.unpack_from('<%di' % n, p, k)); k += 4 * n
        arrs = []
        for _ in range(4):
            arrs.append(list(struct.unpack_from('<%df' % n, p, k))); k += 4 * n
        resp.append([ids] + arrs)
    assert k == len(p)
    out.append([i, line, prompt, resp])
print(json.dumps({'version': ver, 'meta': json.loads(meta), 'records': out}))
)PY";
  std::string out;
  ASSERT_EQ(test::run_command("python3 " + script + " " + path, &out), 0) << out;
  json j = json::parse(out);
  EXPECT_EQ(j["version"], kRewardDumpVersion);
  EXPECT_EQ(j["meta"], kMeta);
  ASSERT_EQ(j["records"].size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    PairRecord want = make_record(i);
    const json& rec = j["records"][static_cast<size_t>(i)];
    EXPECT_EQ(rec[0], i);
    EXPECT_EQ(rec[1], want.source_line);
    EXPECT_EQ(rec[2].get<std::vector<int64_t>>(), want.prompt_ids);
    EXPECT_EQ(rec[3][0][0].get<std::vector<int64_t>>(), want.chosen.ids);
    EXPECT_EQ(rec[3][1][4].get<std::vector<float>>(), want.rejected.rewards);
    EXPECT_EQ(rec[3][0][1].get<std::vector<float>>(), want.chosen.ref_logps);
  }
}

TEST(RewardDump, ResumeDropsTornTailAndIsByteIdentical) {
  std::string dir = test::fresh_dir("dump_resume");
  const std::string want = write_dump(dir + "/ref.bin", 9);
  std::string path = dir + "/d.bin";
  {
    RewardDumpWriter w(path, kMeta, 1, 100);
    for (int64_t i = 0; i < 5; ++i) w.append(make_record(i));
  }  // no finish(): an interrupted run
  // Tear the last record: cut 7 bytes off the end, then append garbage.
  std::string partial = read_file(path + ".partial");
  partial.resize(partial.size() - 7);
  partial += "garbage";
  write_file_atomic(path + ".partial", partial);
  {
    RewardDumpWriter w(path, kMeta, 1, 100);
    EXPECT_EQ(w.resumed(), 4);  // record 4 was torn
    for (int64_t i = w.size(); i < 9; ++i) w.append(make_record(i));
    w.finish();
  }
  EXPECT_EQ(read_file(path), want);
}

TEST(RewardDump, ResumeRoundsDownToWholeBatchesAndRestartsOnOtherMetadata) {
  std::string dir = test::fresh_dir("dump_align");
  std::string path = dir + "/d.bin";
  {
    RewardDumpWriter w(path, kMeta, 4);
    for (int64_t i = 0; i < 6; ++i) w.append(make_record(i));
  }
  {
    RewardDumpWriter w(path, kMeta, 4);
    EXPECT_EQ(w.resumed(), 4);  // pairs 4, 5 were half a batch
  }
  json other = kMeta;
  other["max_length"] = 1024;
  RewardDumpWriter w(path, other, 4);
  EXPECT_EQ(w.resumed(), 0);
  for (int64_t i = 0; i < 2; ++i) w.append(make_record(i));
  w.finish();
  EXPECT_EQ(RewardDumpReader(path).metadata()["max_length"], 1024);
}

TEST(RewardDump, TruncatedOrCorruptFilesAreNamedErrors) {
  std::string dir = test::fresh_dir("dump_corrupt");
  std::string good = write_dump(dir + "/good.bin", 4);
  auto with_bytes = [&](const std::string& name, const std::string& bytes) {
    std::string p = dir + "/" + name;
    write_file_atomic(p, bytes);
    return p;
  };
  std::string p = with_bytes("trunc.bin", good.substr(0, good.size() - 20));
  std::string e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("score-tokens"), std::string::npos) << e;

  p = with_bytes("short.bin", good.substr(0, 10));
  e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find("shorter than the header"), std::string::npos) << e;

  p = with_bytes("foreign.bin", "PK\x03\x04" + good.substr(4));
  e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;

  std::string v = good;
  v[8] = 9;
  p = with_bytes("version.bin", v);
  e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find("version 9"), std::string::npos) << e;

  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x40;  // inside a record
  p = with_bytes("flip.bin", flipped);
  e = error_of([&] {
    RewardDumpReader r(p);
    for (int64_t i = 0; i < r.size(); ++i) r.read(i);
  });
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
  EXPECT_NE(e.find(p), std::string::npos) << e;

  std::string m = good;
  m[30] ^= 0x01;  // inside the metadata JSON
  p = with_bytes("meta.bin", m);
  e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find("metadata checksum"), std::string::npos) << e;

  // An unfinished dump: only the .partial exists.
  {
    RewardDumpWriter w(dir + "/unfinished.bin", kMeta);
    w.append(make_record(0));
  }
  e = error_of([&] { RewardDumpReader r(dir + "/unfinished.bin"); });
  EXPECT_NE(e.find("unfinished"), std::string::npos) << e;
}

// Found by tests/fuzz/reward_dump_fuzz (a metadata number like 9e9999 escaped as an uncaught
// nlohmann out_of_range; input kept as .../regress-metadata-number-overflow): a named error.
TEST(RewardDump, MetadataNumberOverflowIsANamedError) {
  std::string dir = test::fresh_dir("dump_meta_overflow");
  std::string bytes =
      write_dump(dir + "/good.bin", 1, json{{"format", "treg-reward-dump"}, {"x", 123456}});
  uint64_t meta_len = 0;
  std::memcpy(&meta_len, bytes.data() + 16, 8);
  const size_t at = bytes.find("123456");
  ASSERT_LT(at, 24 + meta_len);
  bytes.replace(at, 6, "9e9999");  // same length: offsets stay valid
  const uint32_t crc = crc32_update(0, bytes.data() + 24, meta_len);
  std::memcpy(bytes.data() + 24 + meta_len, &crc, 4);
  const std::string p = dir + "/overflow.bin";
  write_file_atomic(p, bytes);
  std::string e = error_of([&] { RewardDumpReader r(p); });
  EXPECT_NE(e.find(p + ": metadata is not valid JSON"), std::string::npos) << e;
}

// Found by tests/fuzz/reward_dump_fuzz ("Too many open files" after thousands of inputs): a reader
// whose constructor refuses a corrupt file closed nothing, one descriptor lost per refusal.
TEST(RewardDump, RefusedFilesLeakNoDescriptors) {
  std::string dir = test::fresh_dir("dump_fd_leak");
  std::string good = write_dump(dir + "/good.bin", 2);
  write_file_atomic(dir + "/bad.bin", good.substr(0, good.size() - 5));  // no footer
  auto open_fds = [] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) (void)e, ++n;
    return n;
  };
  const int before = open_fds();
  for (int i = 0; i < 50; ++i)
    EXPECT_FALSE(error_of([&] { RewardDumpReader r(dir + "/bad.bin"); }).empty());
  EXPECT_EQ(open_fds(), before);
}

// Found by tests/fuzz/reward_dump_fuzz (UBSan: memcpy from a null pointer for an empty array; the
// input is kept in tests/fuzz/corpus/reward_dump_fuzz/regress-empty-response): a record with an
// empty response reads back.
TEST(RewardDump, EmptyResponseRoundTrips) {
  std::string dir = test::fresh_dir("dump_empty_response");
  PairRecord r = make_record(0);
  r.rejected = ResponseScores{};
  {
    RewardDumpWriter w(dir + "/d.bin", kMeta);
    w.append(r);
    w.finish();
  }
  RewardDumpReader reader(dir + "/d.bin");
  ASSERT_EQ(reader.size(), 1);
  expect_same(reader.read(0), r);
}

// Found by tests/fuzz/reward_dump_fuzz: an index whose next entry starts less than a record header
// after this one (CRC valid) made the record length wrap around 2^64 and escape as
// std::length_error.
TEST(RewardDump, IndexEntriesTooCloseAreACorruptRecordNotACrash) {
  std::string dir = test::fresh_dir("dump_index_close");
  std::string bytes = write_dump(dir + "/good.bin", 3);
  uint64_t index_offset = 0, count = 0;
  std::memcpy(&index_offset, bytes.data() + bytes.size() - 32, 8);
  std::memcpy(&count, bytes.data() + bytes.size() - 24, 8);
  ASSERT_EQ(count, 3u);
  uint64_t first = 0;
  std::memcpy(&first, bytes.data() + index_offset, 8);
  const uint64_t second = first + 1;  // 1 byte after the first record starts
  std::memcpy(bytes.data() + index_offset + 8, &second, 8);
  // Record 0's length field (not checksummed) set so that offset + 16 + length wraps to `second`.
  const uint64_t wrapped = second - first - 16;  // 2^64 - 15
  std::memcpy(bytes.data() + first + 4, &wrapped, 8);
  const uint32_t crc = crc32_update(0, bytes.data() + index_offset, count * 8);
  std::memcpy(bytes.data() + bytes.size() - 16, &crc, 4);
  const std::string p = dir + "/close.bin";
  write_file_atomic(p, bytes);
  RewardDumpReader r(p);  // the index itself is well-formed
  std::string e = error_of([&] { r.read(0); });
  EXPECT_NE(e.find(p + ": pair 0"), std::string::npos) << e;
  EXPECT_NE(e.find("record header is corrupt"), std::string::npos) << e;
}

TEST(RewardDump, StaleMetadataNamesFieldValuesAndCommand) {
  json dump = {{"max_length", 2048},
               {"model", {{"config_sha256", "aaa"}, {"weights_sha256", "w"}}},
               {"treg_version", "0.1"}};
  json expected = {{"max_length", 2048},
                   {"model", {{"config_sha256", "aaa"}, {"weights_sha256", "w"}}}};
  EXPECT_NO_THROW(check_dump_matches(dump, expected));
  expected["model"]["config_sha256"] = "bbb";
  std::string e = error_of([&] { check_dump_matches(dump, expected, "out/d.bin", "cfg.yaml"); });
  EXPECT_NE(e.find("'model.config_sha256'"), std::string::npos) << e;
  EXPECT_NE(e.find("\"aaa\""), std::string::npos) << e;
  EXPECT_NE(e.find("\"bbb\""), std::string::npos) << e;
  EXPECT_NE(e.find("out/d.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("treg score-tokens --config cfg.yaml"), std::string::npos) << e;
  expected = {{"max_prompt_length", 100}};
  e = error_of([&] { check_dump_matches(dump, expected); });
  EXPECT_NE(e.find("'max_prompt_length' is absent"), std::string::npos) << e;
}

}  // namespace
}  // namespace treg
