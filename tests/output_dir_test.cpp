// One output_dir, one run: a new run refuses an earlier run's directory unless told to overwrite or
// resume, a resume refuses a checkpoint of another config, writes that fail (a full disk) stop the
// run naming the file and leave the last checkpoint whole, a second treg process is locked out, the
// stale-dump hint repeats the run's overrides, and a corrupt checkpoint file is named.
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "train_test_util.h"
#include "treg/dir_lock.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/trainer.h"

using namespace treg;
using namespace treg::test;
namespace fs = std::filesystem;

namespace {

const std::vector<PairRecord>& pairs() {
  static std::vector<PairRecord> p = [] {
    CausalLM ref = load_tiny();
    return synthetic_pairs(ref, 8, 3);
  }();
  return p;
}

Config small_run(const std::string& dir, int64_t steps) {
  Config c = tiny_train_config(dir);
  c.max_steps = steps;
  c.save_steps = 1;
  return c;
}

TrainResult train(const Config& c, TrainerHooks hooks = {}) {
  return Trainer(c, load_tiny(), memory_source(pairs(), "synthetic"), nullptr, std::move(hooks))
      .train();
}

// The message of whatever `f` throws: a raw libtorch error would fail the test by its type.
std::string treg_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a treg::Error: " << e.what();
    return e.what();
  }
  return "";
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t i = text.find(what); i != std::string::npos; i = text.find(what, i + 1)) ++n;
  return n;
}

// A config file for the binary: the tiny llama and the first `rows` bundled pairs.
std::string cli_config(const std::string& dir, int rows = 4) {
  std::ifstream in(source_path("configs/data/tiny_prefs.train.jsonl"));
  std::string line, data;
  for (int i = 0; i < rows && std::getline(in, line); ++i) data += line + "\n";
  write_file_atomic(dir + "/train.jsonl", data);
  const std::string cfg = dir + "/cfg.yaml";
  write_file_atomic(cfg, "model_name_or_path: " + tiny_model("llama") + "\ntrain_file: " + dir +
                             "/train.jsonl\noutput_dir: " + dir +
                             "/out\ndevice: cpu\nscore_batch_size: 2\nmax_steps: 1\n"
                             "per_device_train_batch_size: 2\nlogging_steps: 1\n");
  return cfg;
}

}  // namespace

// ---- A: one output_dir holds one run ----

// A second run with another learning rate is refused before it writes anything: config.yaml stays
// the first run's. Reward dumps, bad-row files and the lock file alone do not make a directory
// used.
TEST(OutputDir, NewRunRefusesAnEarlierRunAndKeepsItsConfig) {
  const std::string dir = fresh_dir("outdir_refuse");
  train(small_run(dir, 2));
  const std::string config_before = read_file(dir + "/config.yaml");
  Config again = small_run(dir, 2);
  again.learning_rate = 2e-3;
  const std::string err = treg_error_of([&] { train(again); });
  EXPECT_NE(err.find(dir + ": holds an earlier run"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint-2"), std::string::npos) << err;
  EXPECT_NE(err.find("overwrite_output_dir: true"), std::string::npos) << err;
  EXPECT_NE(err.find("resume_from_checkpoint=auto"), std::string::npos) << err;
  EXPECT_EQ(read_file(dir + "/config.yaml"), config_before);

  const std::string shared = fresh_dir("outdir_shared");
  for (const char* f : {"token_rewards.bin", "token_rewards.bin.config.yaml",
                        "bad_rows.train.jsonl", DirLock::kFileName})
    write_file_atomic(shared + "/" + f, "x");
  EXPECT_EQ(train(small_run(shared, 1)).steps_done, 1);
}

// overwrite_output_dir: true (HF's key, listed by `treg config-keys`) replaces the earlier run:
// its checkpoints and metrics are gone, not mixed with the new ones.
TEST(OutputDir, OverwriteReplacesTheEarlierRun) {
  const auto keys = config_keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "overwrite_output_dir"), keys.end());
  const std::string table = config_keys_table();
  const size_t row = table.find("\noverwrite_output_dir ");
  ASSERT_NE(row, std::string::npos);
  const std::string line = table.substr(row + 1, table.find('\n', row + 1) - row - 1);
  EXPECT_NE(line.find(" bool "), std::string::npos) << line;
  EXPECT_NE(line.find(" false "), std::string::npos) << line;

  const std::string dir = fresh_dir("outdir_overwrite");
  train(small_run(dir, 3));
  ASSERT_TRUE(fs::is_directory(dir + "/checkpoint-3"));
  Config again = small_run(dir, 2);
  again.learning_rate = 2e-3;
  again.overwrite_output_dir = true;
  EXPECT_EQ(train(again).steps_done, 2);
  EXPECT_EQ(list_checkpoints(dir),
            (std::vector<std::string>{dir + "/checkpoint-1", dir + "/checkpoint-2"}));
  EXPECT_EQ(count_of(read_file(dir + "/metrics.jsonl"), "\"step\""), 2u);
  EXPECT_EQ(load_config(dir + "/config.yaml").learning_rate, 2e-3);

  again.resume_from_checkpoint = "auto";  // starting over and continuing contradict each other
  EXPECT_NE(treg_error_of([&] { train(again); }).find("drop one of them"), std::string::npos);
}

// resume_from_checkpoint=auto with another learning rate is refused naming the key and both values;
// a longer run (max_steps) may resume.
TEST(OutputDir, ResumeRefusesAChangedKeyButAllowsALongerRun) {
  const std::string dir = fresh_dir("outdir_resume");
  train(small_run(dir, 2));
  const std::string config_before = read_file(dir + "/config.yaml");
  EXPECT_TRUE(file_exists(dir + "/checkpoint-2/treg_config.yaml"));

  Config changed = small_run(dir, 3);
  changed.resume_from_checkpoint = "auto";
  changed.learning_rate = 2e-3;
  const std::string err = treg_error_of([&] { train(changed); });
  EXPECT_NE(err.find("checkpoint-2/treg_config.yaml"), std::string::npos) << err;
  EXPECT_NE(err.find("learning_rate was 0.001 there, this run has 0.002"), std::string::npos)
      << err;
  EXPECT_NE(err.find("use a new output_dir, or start over in " + dir +
                     " with overwrite_output_dir: true and no resume_from_checkpoint"),
            std::string::npos)
      << err;
  EXPECT_EQ(read_file(dir + "/config.yaml"), config_before);

  Config longer = small_run(dir, 3);
  longer.resume_from_checkpoint = "auto";
  longer.logging_steps = 2;
  TrainResult r = train(longer);
  EXPECT_EQ(r.steps_done, 3);
  EXPECT_EQ(r.history.front().step, 1);  // continued: steps 1 and 2 come from the checkpoint
}

// ---- B: failed writes ----

// metrics.jsonl on a full disk (/dev/full behind it): the run stops at that write naming the file
// and the errno text; checkpoint-2, saved before, stays loadable and nothing later is saved.
TEST(OutputDir, FullDiskOnMetricsStopsTheRunNamingTheFile) {
  const std::string dir = fresh_dir("outdir_full_metrics");
  Config c = small_run(dir, 4);
  TrainerHooks hooks;
  hooks.after_step = [&](int64_t step) {
    if (step != 2) return;
    fs::remove(dir + "/metrics.jsonl");
    fs::create_symlink("/dev/full", dir + "/metrics.jsonl");
  };
  const std::string err = treg_error_of([&] { train(c, hooks); });
  EXPECT_NE(err.find(dir + "/metrics.jsonl: write failed: No space left on device"),
            std::string::npos)
      << err;
  EXPECT_EQ(list_checkpoints(dir),
            (std::vector<std::string>{dir + "/checkpoint-1", dir + "/checkpoint-2"}));
  CausalLM m = load_tiny();
  Trainer t(c, m, memory_source(pairs(), "synthetic"), nullptr);
  EXPECT_EQ(load_checkpoint_dir(dir + "/checkpoint-2", m, t.optimizer()).global_step, 2);
}

// A checkpoint that cannot be written (files capped at 64 KiB, as a full disk would) fails the run
// and leaves no checkpoint-2.tmp; a checkpoint-*.tmp a killed run left is removed when the next run
// starts.
TEST(OutputDir, FailedCheckpointLeavesNoTmpAndStaleTmpsAreRemoved) {
  const std::string dir = fresh_dir("outdir_full_ckpt");
  Config c = small_run(dir, 3);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);  // a write past the cap fails with EFBIG instead
  TrainerHooks hooks;
  hooks.after_step = [&](int64_t step) {
    if (step != 1) return;
    rlimit cap = saved;
    cap.rlim_cur = 64 << 10;
    setrlimit(RLIMIT_FSIZE, &cap);
  };
  const std::string err = treg_error_of([&] { train(c, hooks); });
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint-2.tmp"), std::string::npos) << err;
  EXPECT_EQ(list_dir(dir),
            (std::vector<std::string>{"checkpoint-1", "config.yaml", "metrics.jsonl"}));

  make_dirs(dir + "/checkpoint-7.tmp");
  write_file_atomic(dir + "/checkpoint-7.tmp/model.safetensors", "half");
  c.resume_from_checkpoint = "auto";
  EXPECT_EQ(train(c).steps_done, 3);
  EXPECT_FALSE(fs::exists(dir + "/checkpoint-7.tmp"));
}

// ---- C: one treg process per output_dir ----

// While another process holds the output_dir (here: this test process), score-tokens and train
// exit at once naming its pid and command.
TEST(OutputDir, SecondProcessIsRefusedWhileTheLockIsHeld) {
  const std::string dir = fresh_dir("outdir_lock");
  const std::string cfg = cli_config(dir);
  const std::string want =
      dir + "/out: another treg process (pid " + std::to_string(getpid()) + ", command ";
  {
    DirLock held(dir + "/out");
    for (const char* cmd : {" score-tokens --no-progress --config ", " train --config "}) {
      std::string out;
      EXPECT_NE(run_command(treg_binary() + cmd + cfg, &out), 0) << out;
      EXPECT_NE(out.find(want), std::string::npos) << out;
      EXPECT_NE(out.find(program_invocation_short_name), std::string::npos) << out;  // its command
      EXPECT_NE(out.find("is using this output_dir"), std::string::npos) << out;
      EXPECT_FALSE(file_exists(dir + "/out/token_rewards.bin"));
    }
    EXPECT_NE(error_of([&] { DirLock again(dir + "/out"); }).find(want), std::string::npos);
  }
  DirLock after(dir + "/out");  // released with its holder
}

// ---- D: the stale-dump hint ----

// A dump scored with one setting, then train with overrides that make it stale: the hint's
// score-tokens command carries the overrides (shell-quoted), so running it rebuilds the right dump.
TEST(OutputDir, StaleDumpHintCarriesTheOverrides) {
  const std::string dir = fresh_dir("outdir_stale_hint");
  const std::string cfg = cli_config(dir);
  std::string out;
  ASSERT_EQ(run_command(treg_binary() + " score-tokens --no-progress --config " + cfg, &out), 0)
      << out;
  EXPECT_NE(run_command(treg_binary() + " train --config " + cfg +
                            " max_length=1900 'better_description=kind and brief'",
                        &out),
            0);
  EXPECT_NE(out.find("stale"), std::string::npos) << out;
  EXPECT_NE(out.find("`treg score-tokens --config " + cfg +
                     " max_length=1900 'better_description=kind and brief'`"),
            std::string::npos)
      << out;
}

// ---- E: a damaged checkpoint ----

// A corrupt optimizer.pt or trainer_state.pt is a treg error naming the file and the checkpoint
// before it, not libtorch's message alone.
TEST(OutputDir, CorruptCheckpointFilesAreNamed) {
  const std::string dir = fresh_dir("outdir_corrupt");
  Config c = small_run(dir, 2);
  train(c);
  c.max_steps = 3;
  c.resume_from_checkpoint = "auto";
  for (const char* f : {"optimizer.pt", "trainer_state.pt"}) {
    SCOPED_TRACE(f);
    const std::string path = dir + "/checkpoint-2/" + f;
    const std::string good = read_file(path);
    write_file_atomic(path, good.substr(0, good.size() / 2));
    const std::string err = treg_error_of([&] { train(c); });
    EXPECT_NE(err.find(path + ": corrupt"), std::string::npos) << err;
    EXPECT_NE(
        err.find("delete " + dir + "/checkpoint-2 and resume from the checkpoint before it, " +
                 dir + "/checkpoint-1"),
        std::string::npos)
        << err;
    write_file_atomic(path, good);
  }
  EXPECT_EQ(train(c).steps_done, 3);
}
