// Several ranks of `treg train`, launched as torchrun launches them (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT), over Gloo on loopback: the same updates as one process with the
// whole batch, and a dead rank stops the others with an error instead of a hang.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/distributed.h"
#include "treg/io.h"
#include "treg/reward_dump.h"
#include "treg/safetensors.h"

namespace treg {
namespace {

namespace fs = std::filesystem;
using test::run_command;
using test::treg_binary;

bool multi_rank_build() {
  // Rank 1 of 2 with nobody listening: a build with Gloo waits ddp_timeout for rank 0, one without
  // says so at once.
  std::string out;
  run_command("WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + treg_binary() +
                  " train --config " + test::source_path("configs/tiny.yaml") +
                  " ddp_timeout=1 output_dir=" + test::fresh_dir("distributed_probe"),
              &out);
  return out.find("built without c10d gloo") == std::string::npos;
}

// A TCP port free right now for the rendezvous: the kernel picks it (bind to port 0).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free TCP port on loopback");
  close(fd);
  return ntohs(a.sin_port);
}

std::string write_config(const std::string& dir, int64_t per_device, const std::string& extra) {
  // The runs of a test share the data and its reward dump (scored by the first).
  const std::string data_file = dir + "/../train.jsonl";
  if (!file_exists(data_file)) {
    std::ifstream in(test::source_path("configs/data/tiny_prefs.train.jsonl"));
    std::string line, data;
    for (int i = 0; i < 16 && std::getline(in, line); ++i) data += line + "\n";
    write_file_atomic(data_file, data);
  }
  const std::string cfg = dir + "/cfg.yaml";
  write_file_atomic(cfg, "model_name_or_path: " + test::tiny_model("llama") + "\ntrain_file: " +
                             data_file + "\nreward_dump: " + dir +
                             "/../dump.bin\noutput_dir: " + dir +
                             "/out\ndevice: cpu\nscore_batch_size: 4\n"
                             "learning_rate: 1.0e-3\nwarmup_ratio: 0.0\nlogging_steps: 1\n"
                             "per_device_train_batch_size: " +
                             std::to_string(per_device) + "\n" + extra);
  return cfg;
}

// How launch() starts the ranks.
struct LaunchOptions {
  std::string after_start;  // shell run once all ranks have started (e.g. to kill one)
  std::string args;         // after --config CFG (key=value overrides)
  std::string command = "train";
  std::map<int, std::string> env;  // extra VAR=value ... for some ranks
};

// Launches `world` ranks of `treg <command> --config cfg` in the background and waits for all;
// returns each rank's exit code, its output in logs[rank].
std::vector<int> launch(const std::string& cfg, int world, int port, std::vector<std::string>* logs,
                        const LaunchOptions& o = {}) {
  const std::string dir = cfg.substr(0, cfg.rfind('/'));
  std::string script = "cd " + dir + "; ";
  for (int r = 0; r < world; ++r)
    script += "WORLD_SIZE=" + std::to_string(world) + " RANK=" + std::to_string(r) +
              " LOCAL_RANK=" + std::to_string(r) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
              std::to_string(port) + " OMP_NUM_THREADS=1 " + (o.env.count(r) ? o.env.at(r) + " " : "") +
              treg_binary() + " " + o.command + " --config " + cfg + " " + o.args + " > rank" +
              std::to_string(r) + ".log 2>&1 & p" + std::to_string(r) + "=$!; ";
  script += o.after_start;
  for (int r = 0; r < world; ++r)
    script += "wait $p" + std::to_string(r) + "; echo rc" + std::to_string(r) + "=$? >> rc.txt; ";
  std::remove((dir + "/rc.txt").c_str());
  run_command("bash -c '" + script + "'");
  std::vector<int> rc;
  const std::string text = read_file(dir + "/rc.txt");
  logs->clear();
  for (int r = 0; r < world; ++r) {
    const std::string key = "rc" + std::to_string(r) + "=";
    const size_t at = text.find(key);
    rc.push_back(at == std::string::npos ? -1 : std::atoi(text.c_str() + at + key.size()));
    logs->push_back(read_file(dir + "/rank" + std::to_string(r) + ".log"));
  }
  return rc;
}

std::vector<double> losses(const std::string& out_dir) {
  std::vector<double> v;
  std::ifstream in(out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) v.push_back(j["loss"].get<double>());
  }
  return v;
}

double max_weight_diff(const std::string& a, const std::string& b) {
  SafetensorsCheckpoint x(a), y(b);
  EXPECT_EQ(x.keys(), y.keys());
  double worst = 0;
  for (const std::string& k : x.keys())
    worst = std::max(worst, (x.load(k, torch::kFloat64) - y.load(k, torch::kFloat64))
                                .abs()
                                .max()
                                .item<double>());
  return worst;
}

// The resume tests' schedule: a checkpoint at step 2 of 4, a constant learning rate.
const char* const kResumeSchedule = "lr_scheduler_type: constant\nsave_steps: 2\nmax_steps: 4\n";

int train_one_rank(const std::string& cfg, const std::string& args, std::string* out) {
  return run_command("OMP_NUM_THREADS=1 " + treg_binary() + " train --config " + cfg + " " + args, out);
}

TEST(Distributed, LaunchVariablesAreCheckedByName) {
  auto err = [](const std::string& env) {
    std::string train;
    run_command(env + " " + treg_binary() + " train --config " +
                    test::source_path("configs/tiny.yaml") + " output_dir=/nonexistent/x",
                &train);
    return train;
  };
  EXPECT_NE(err("WORLD_SIZE=2 RANK=2").find("environment variable RANK: '2' is not an integer in [0, 1]"),
            std::string::npos)
      << err("WORLD_SIZE=2 RANK=2");
  EXPECT_NE(err("WORLD_SIZE=two").find("environment variable WORLD_SIZE"), std::string::npos);
  EXPECT_NE(err("WORLD_SIZE=2").find("RANK: not set while WORLD_SIZE is 2"), std::string::npos);
}

// 2 ranks x 2 pairs (x 2 micro-batches) = 1 rank x 4 pairs: same losses, same weights. The ranks
// sum their gradients in another order than one process sums a batch, hence the tolerance.
TEST(Distributed, TwoRanksMakeTheUpdatesOfOneProcessWithTheWholeBatch) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string root = test::fresh_dir("distributed_equal");
  // Full fine-tuning with and without accumulation, and LoRA (the adapters' gradients alone).
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"acc1", "gradient_accumulation_steps: 1\n"},
      {"acc2", "gradient_accumulation_steps: 2\n"},
      {"lora", "use_peft: true\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0\n"
               "lora_target_modules: all-linear\n"},
      {"zero1", "zero_stage: 1\n"},
      {"zero2", "zero_stage: 2\n"},
      // ZeRO-2 with its owners' sums carried over micro-batches, the recomputing backward of
      // checkpointed layers, and the clip (at 0.05 every step clips) over the sharded norm.
      {"zero2_acc2_ckpt_clip", "zero_stage: 2\ngradient_accumulation_steps: 2\n"
                               "gradient_checkpointing: true\nmax_grad_norm: 0.05\n"}};
  for (const auto& [name, setting] : runs) {
    SCOPED_TRACE(name);
    const bool lora = name == "lora";
    const std::string extra = "max_steps: 3\n" + setting;
    const std::string one = root + "/one" + name, two = root + "/two" + name;
    make_dirs(one);
    make_dirs(two);
    std::string out;
    ASSERT_EQ(run_command("OMP_NUM_THREADS=1 " + treg_binary() + " train --config " +
                              write_config(one, 4, extra),
                          &out),
              0)
        << out;
    std::vector<std::string> logs;
    const std::vector<int> rc =
        launch(write_config(two, 2, extra), 2, free_port(), &logs);
    ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs[0] << "\n----\n" << logs[1];
    EXPECT_NE(logs[0].find("over 2 ranks"), std::string::npos) << logs[0];
    if (name.rfind("zero2", 0) == 0) {
      EXPECT_NE(logs[0].find("ZeRO-2: rank 0 holds the AdamW state and gradients of"), std::string::npos) << logs[0];
      // The clip acted: the logged norms are above max_grad_norm.
      if (name != "zero2")
        for (const std::string& dir : {one, two}) {
          std::ifstream in(dir + "/out/metrics.jsonl");
          for (std::string line; std::getline(in, line);)
            if (auto j = nlohmann::json::parse(line); j.contains("grad_norm")) EXPECT_GT(j["grad_norm"].get<double>(), 0.05);
        }
    }
    const std::vector<double> a = losses(one + "/out"), b = losses(two + "/out");
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b.size(), 3u);  // rank 1 appended no metrics lines of its own
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "step " << i + 1;
    const std::string weights = lora ? "/out/checkpoint-3/merged" : "/out/checkpoint-3";
    EXPECT_LT(max_weight_diff(one + weights, two + weights), 1e-5);
    if (lora)
      EXPECT_LT(max_weight_diff(one + "/out/checkpoint-3/adapter_model.safetensors",
                                two + "/out/checkpoint-3/adapter_model.safetensors"),
                1e-5);
    // The updates moved the weights: the comparison above is not of two untouched models.
    EXPECT_GT(max_weight_diff(one + weights, test::tiny_model("llama")), 1e-4);
  }
}

// ZeRO-1 and ZeRO-2: each of 2 ranks keeps the AdamW state (and with 2 the gradients) of its share
// of the tensors, and writes it to its own file in the checkpoint (read back by name): a 2-rank ZeRO run
// resumes as 1 plain rank, and a plain run as 2 ZeRO ranks, both ending with the weights of an
// uninterrupted run. With a constant learning rate the moments decide the later updates, so a lost
// or misplaced state would show.
class ZeroStages : public ::testing::TestWithParam<int> {};

TEST_P(ZeroStages, ShardTheOptimizerStateAndResumeOnAnyRankCount) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string stage = std::to_string(GetParam());
  const std::string root = test::fresh_dir("distributed_zero" + stage);
  const std::string extra = kResumeSchedule;
  std::string out;
  auto one_rank = [&](const std::string& cfg, const std::string& args) { return train_one_rank(cfg, args, &out); };
  const std::string whole = root + "/whole", a = root + "/zero_then_one", b = root + "/one_then_zero";
  for (const std::string& d : {whole, a, b}) make_dirs(d);
  ASSERT_EQ(one_rank(write_config(whole, 4, extra), ""), 0) << out;
  std::vector<std::string> logs;
  // 2 ZeRO ranks -> 1 plain rank
  const std::string cfg_a = write_config(a, 2, extra + "zero_stage: " + stage + "\n");
  ASSERT_EQ(launch(cfg_a, 2, free_port(), &logs, {.args = "max_steps=2"}), (std::vector<int>{0, 0}))
      << logs[0] << "\n----\n" << logs[1];
  const std::string held = "ZeRO-" + stage + ": rank 0 holds the AdamW state" +
                           (stage == "2" ? " and gradients" : "") + " of ";
  const size_t at = logs[0].find(held);
  ASSERT_NE(at, std::string::npos) << logs[0];
  int mine = 0, all = 0;
  ASSERT_EQ(std::sscanf(logs[0].c_str() + at + held.size(), "%d of %d", &mine, &all), 2);
  EXPECT_GT(mine, 0);
  EXPECT_LT(mine, all);  // a share, not everything
  // Each rank wrote the AdamW state of its share; nothing was gathered into one optimizer.pt.
  for (const char* f : {"optimizer_shard-0-of-2.safetensors", "optimizer_shard-1-of-2.safetensors"})
    EXPECT_TRUE(file_exists(a + "/out/checkpoint-2/" + f)) << f;
  EXPECT_FALSE(file_exists(a + "/out/checkpoint-2/optimizer.pt"));
  ASSERT_EQ(one_rank(cfg_a, "resume_from_checkpoint=auto per_device_train_batch_size=4 zero_stage=0"), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_LT(max_weight_diff(whole + "/out/checkpoint-4", a + "/out/checkpoint-4"), 1e-5);
  // 1 plain rank -> 2 ZeRO ranks
  const std::string cfg_b = write_config(b, 4, extra);
  ASSERT_EQ(one_rank(cfg_b, "max_steps=2"), 0) << out;
  write_config(b, 2, extra + "zero_stage: " + stage + "\n");
  ASSERT_EQ(launch(cfg_b, 2, free_port(), &logs, {.args = "resume_from_checkpoint=auto"}),
            (std::vector<int>{0, 0}))
      << logs[0] << "\n----\n" << logs[1];
  EXPECT_LT(max_weight_diff(whole + "/out/checkpoint-4", b + "/out/checkpoint-4"), 1e-5);
  EXPECT_GT(max_weight_diff(whole + "/out/checkpoint-4", whole + "/out/checkpoint-2"), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Distributed, ZeroStages, ::testing::Values(1, 2));

// ZeRO-2 under bf16 keeps the layers' projections as bf16 replicas and their fp32 masters with
// their owners (zero.h); here with accumulation and checkpointed layers (the replicas' gradients
// then arrive in the recomputing backward). Autocast computes on the bf16 rounding of fp32 weights anyway, so 2 ranks
// of it make the updates of 2 ranks of ZeRO-1 (fp32 weights everywhere), to the summation order of
// the accumulated gradients and of the clip's norm; its checkpoints hold the fp32 masters (also
// beside a bf16 export) and resume under either stage.
TEST(Distributed, Bf16ReplicasTrainAsFp32WeightsAndCheckpointTheMasters) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string root = test::fresh_dir("distributed_bf16_replicas");
  const std::string extra = std::string(kResumeSchedule) +
                            "bf16: true\ngradient_accumulation_steps: 2\nsave_dtype: bfloat16\n"
                            "gradient_checkpointing: true\n";
  const std::string whole = root + "/whole", same = root + "/then_zero2", other = root + "/then_zero1";
  for (const std::string& d : {whole, same, other}) make_dirs(d);
  std::vector<std::string> logs;
  auto run = [&](const std::string& dir, const std::string& stage, const std::string& args) {
    const std::vector<int> rc =
        launch(write_config(dir, 2, extra + "zero_stage: " + stage + "\n"), 2, free_port(), &logs, {.args = args});
    EXPECT_EQ(rc, (std::vector<int>{0, 0})) << logs[0] << "\n----\n" << logs[1];
    return rc == std::vector<int>{0, 0};
  };
  ASSERT_TRUE(run(whole, "1", ""));
  EXPECT_EQ(logs[0].find("bf16 replicas"), std::string::npos) << logs[0];
  ASSERT_TRUE(run(same, "2", "max_steps=2"));
  EXPECT_NE(logs[0].find(" elements in bf16 replicas, their fp32 masters with their owners"),
            std::string::npos)
      << logs[0];
  // The step-2 checkpoint's fp32 weights are the masters, not the replicas: not all of them are
  // bf16 values.
  {
    SafetensorsFile master(same + "/out/checkpoint-2/master_weights.safetensors");
    const std::string key = "model.layers.0.mlp.down_proj.weight";
    ASSERT_TRUE(master.contains(key));
    const torch::Tensor w = master.load(key, torch::kFloat32);
    EXPECT_GT((w - w.to(torch::kBFloat16).to(torch::kFloat32)).abs().max().item<double>(), 0);
  }
  fs::copy(same, other, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  ASSERT_TRUE(run(same, "2", "resume_from_checkpoint=auto"));
  EXPECT_NE(logs[0].find("resumed from"), std::string::npos) << logs[0];
  // The copy continues the run it was: its data under the names that run gave them.
  ASSERT_TRUE(run(other, "1", "resume_from_checkpoint=auto reward_dump=" + same + "/../dump.bin train_file=" +
                                  same + "/../train.jsonl"));
  for (const std::string& d : {same, other}) {
    SCOPED_TRACE(d);
    const std::vector<double> a = losses(whole + "/out"), b = losses(d + "/out");
    ASSERT_EQ(a.size(), 4u);
    ASSERT_EQ(b.size(), 4u);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << "step " << i + 1;
    for (const std::string step : {"/out/checkpoint-2", "/out/checkpoint-4"})
      EXPECT_LT(max_weight_diff(whole + step + "/master_weights.safetensors",
                                d + step + "/master_weights.safetensors"),
                1e-5);  // Adam's first steps magnify the last bits of the order (lr 1e-3)
  }
  EXPECT_GT(max_weight_diff(whole + "/out/checkpoint-4/master_weights.safetensors",
                            whole + "/out/checkpoint-2/master_weights.safetensors"),
            1e-4);
}

// One process under a launcher with a named ddp_backend gets a real process group (how a 1-GPU
// torchrun checks the NCCL path): its collectives run and it makes the updates of a plain run. A
// backend this build lacks, or NCCL for CPU tensors, is refused by name.
TEST(Distributed, OneLaunchedRankWithANamedBackendRunsTheCollectives) {
  const std::string root = test::fresh_dir("distributed_one_rank");
  const std::string plain = root + "/plain", grouped = root + "/grouped";
  make_dirs(plain);
  make_dirs(grouped);
  std::string out;
  ASSERT_EQ(run_command("OMP_NUM_THREADS=1 " + treg_binary() + " train --config " +
                            write_config(plain, 2, "max_steps: 3\n"),
                        &out),
            0)
      << out;
  const std::vector<std::string> backends = available_ddp_backends();
  const bool gloo = std::find(backends.begin(), backends.end(), "gloo") != backends.end();
  std::vector<std::string> logs;
  const std::vector<int> rc = launch(write_config(grouped, 2, "max_steps: 3\nddp_backend: gloo\n"),
                                     1, free_port(), &logs);
  if (!gloo) {
    EXPECT_EQ(rc, std::vector<int>{1});
    EXPECT_NE(logs[0].find("ddp_backend gloo: this treg was built without c10d gloo"), std::string::npos)
        << logs[0];
  } else {
    ASSERT_EQ(rc, std::vector<int>{0}) << logs[0];
    EXPECT_NE(logs[0].find("over 1 rank (gloo)"), std::string::npos) << logs[0];
    const std::vector<double> a = losses(plain + "/out"), b = losses(grouped + "/out");
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b, a);  // one rank: the all-reduce is the identity, bit for bit
    EXPECT_EQ(max_weight_diff(plain + "/out/checkpoint-3", grouped + "/out/checkpoint-3"), 0.0);
  }
  // NCCL for CPU ranks: refused before any rendezvous, naming the backend and the device.
  const std::string nccl_dir = root + "/nccl";
  make_dirs(nccl_dir);
  launch(write_config(nccl_dir, 2, "ddp_backend: nccl\n"), 1, free_port(), &logs);
  const bool nccl = std::find(backends.begin(), backends.end(), "nccl") != backends.end();
  EXPECT_NE(logs[0].find(nccl ? "NCCL reduces CUDA tensors, but the device is cpu"
                              : "ddp_backend nccl: this treg was built without c10d nccl"),
            std::string::npos)
      << logs[0];
  // A backend treg does not know: the config check names the key and the choices.
  run_command(treg_binary() + " train --config " + write_config(nccl_dir, 2, "ddp_backend: mpi\n"), &out);
  EXPECT_NE(out.find("ddp_backend"), std::string::npos) << out;
  EXPECT_NE(out.find("mpi"), std::string::npos) << out;
}

// A rank killed mid-run: the other stops within ddp_timeout with an error saying a rank stopped,
// and the run resumes from rank 0's last checkpoint.
TEST(Distributed, AKilledRankStopsTheOthersAndTheRunResumes) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string root = test::fresh_dir("distributed_kill");
  const std::string dir = root + "/run";
  make_dirs(dir);
  const std::string cfg =
      write_config(dir, 2, "max_steps: 400\nsave_steps: 1\nsave_total_limit: 1\nddp_timeout: 20\n");
  std::vector<std::string> logs;
  // Once rank 0 has saved a checkpoint, rank 1 is killed (SIGKILL: no goodbye).
  const std::string kill_rank1 =
      "for i in $(seq 600); do ls " + dir + "/out | grep -q \"^checkpoint-[0-9]*$\" && break; "
      "sleep 0.1; done; kill -9 $p1; ";
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> rc = launch(cfg, 2, free_port(), &logs, {.after_start = kill_rank1});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(rc[0], 0) << logs[0];
  EXPECT_LT(secs, 120) << "rank 0 should stop within ddp_timeout, not hang";
  EXPECT_NE(logs[0].find("rank 0 of 2: all-reduce failed"), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("another rank stopped"), std::string::npos) << logs[0];
  // Resume in one process (with the same global batch) from the checkpoint rank 0 left.
  std::string out;
  ASSERT_EQ(run_command("OMP_NUM_THREADS=1 " + treg_binary() + " train --config " + cfg +
                            " resume_from_checkpoint=auto per_device_train_batch_size=4 max_steps=" +
                            std::to_string(losses(dir + "/out").size() + 2),
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
}

// The global batch, not the rank count, is what a resumed run must keep: 2 ranks x 2 pairs for two
// steps, then 1 rank x 4 pairs for two more (and 1 -> 2) end where 1 rank x 4 pairs for four
// steps ends. A changed global batch is refused, naming both rank counts.
TEST(Distributed, ResumeOnAnotherRankCountKeepingTheGlobalBatch) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string root = test::fresh_dir("distributed_resume");
  const std::string extra = kResumeSchedule;
  std::string out;
  auto one_rank = [&](const std::string& cfg, const std::string& args) { return train_one_rank(cfg, args, &out); };
  const std::string whole = root + "/whole", a = root + "/two_then_one", b = root + "/one_then_two";
  for (const std::string& d : {whole, a, b}) make_dirs(d);
  ASSERT_EQ(one_rank(write_config(whole, 4, extra), ""), 0) << out;
  std::vector<std::string> logs;
  // 2 -> 1
  const std::string cfg_a = write_config(a, 2, extra);
  ASSERT_EQ(launch(cfg_a, 2, free_port(), &logs, {.args = "max_steps=2"}), (std::vector<int>{0, 0}))
      << logs[0];
  EXPECT_NE(one_rank(cfg_a, "resume_from_checkpoint=auto"), 0);  // 1 x 2 pairs: another batch
  EXPECT_NE(out.find("another global batch: per_device_train_batch_size x ranks was 2 x 2 there, "
                     "this run has 2 x 1"),
            std::string::npos)
      << out;
  ASSERT_EQ(one_rank(cfg_a, "resume_from_checkpoint=auto per_device_train_batch_size=4"), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_LT(max_weight_diff(whole + "/out/checkpoint-4", a + "/out/checkpoint-4"), 1e-5);
  // 1 -> 2
  const std::string cfg_b = write_config(b, 4, extra);
  ASSERT_EQ(one_rank(cfg_b, "max_steps=2"), 0) << out;
  write_config(b, 2, extra);
  ASSERT_EQ(launch(cfg_b, 2, free_port(), &logs, {.args = "resume_from_checkpoint=auto"}),
            (std::vector<int>{0, 0}))
      << logs[0];
  EXPECT_LT(max_weight_diff(whole + "/out/checkpoint-4", b + "/out/checkpoint-4"), 1e-5);
  EXPECT_GT(max_weight_diff(whole + "/out/checkpoint-4", whole + "/out/checkpoint-2"), 1e-4);
}

// score-tokens over 2 ranks: each scores every other batch of the single-process run (16 pairs in
// batches of 3, the last one short) into its shard, rank 0 merges them: the dump holds the records
// of one process, byte for byte. A rank killed mid-shard stops the other; run again, both resume
// their shards and the dump is the same.
TEST(Distributed, ScoreTokensOverTwoRanksWritesTheSingleProcessDump) {
  if (!multi_rank_build()) GTEST_SKIP() << "built without c10d Gloo";
  const std::string root = test::fresh_dir("distributed_score");
  const std::string dir = root + "/run";
  make_dirs(dir);
  const std::string cfg = write_config(dir, 2, "ddp_timeout: 30\n");
  const std::string single = root + "/single.bin", multi = root + "/multi.bin";
  std::string out;
  ASSERT_EQ(run_command("OMP_NUM_THREADS=1 " + treg_binary() + " score-tokens --no-progress --config " +
                            cfg + " score_batch_size=3 reward_dump=" + single,
                        &out),
            0)
      << out;
  std::vector<std::string> logs;
  LaunchOptions o;
  o.command = "score-tokens";
  o.args = "--no-progress score_batch_size=3 reward_dump=" + multi;
  o.env[1] = "TREG_TEST_KILL_AFTER_PAIRS=4";  // rank 1 dies inside its second batch
  std::vector<int> rc = launch(cfg, 2, free_port(), &logs, o);
  EXPECT_NE(rc[0], 0) << logs[0];
  EXPECT_EQ(rc[1], 128 + 9) << logs[1];  // SIGKILL
  EXPECT_NE(logs[0].find("rank 0 of 2"), std::string::npos) << logs[0];
  EXPECT_FALSE(file_exists(multi));
  EXPECT_TRUE(file_exists(multi + ".rank1-of-2.partial"));
  o.env.clear();
  rc = launch(cfg, 2, free_port(), &logs, o);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs[0] << "\n----\n" << logs[1];
  EXPECT_FALSE(file_exists(multi + ".rank0-of-2"));  // merged and removed
  EXPECT_FALSE(file_exists(multi + ".rank1-of-2"));
  RewardDumpReader a(single), b(multi);
  ASSERT_EQ(a.size(), 16);
  ASSERT_EQ(b.size(), 16);
  for (int64_t i = 0; i < a.size(); ++i) {
    const PairRecord x = a.read(i), y = b.read(i);
    EXPECT_EQ(x.index, y.index);
    EXPECT_EQ(x.source_line, y.source_line);
    EXPECT_EQ(x.prompt_ids, y.prompt_ids);
    EXPECT_EQ(x.chosen.ids, y.chosen.ids) << i;
    EXPECT_EQ(x.chosen.rewards, y.chosen.rewards) << i;
    EXPECT_EQ(x.rejected.ref_logps, y.rejected.ref_logps) << i;
  }
  EXPECT_TRUE(read_file(single) == read_file(multi)) << "the dumps differ in their bytes";
}

}  // namespace
}  // namespace treg
