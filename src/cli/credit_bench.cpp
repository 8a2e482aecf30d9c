// treg credit-bench: the token credit-assignment benchmark (credit_bench.h) from the command line.
#include "cli/commands.h"
#include "treg/credit_bench.h"
#include "treg/dir_lock.h"

namespace treg::cli {

void add_credit_bench_command(CLI::App& app) {
  auto o = std::make_shared<CreditBenchOptions>();
  o->out = "out/credit-bench";
  CLI::App* sub = app.add_subcommand(
      "credit-bench",
      "Token credit-assignment benchmark: SFT a model on a task with known token truth, train the "
      "Table-2 methods, measure reward AUROC at planted errors and greedy accuracy");
  sub->add_option("--model", o->model, "base model directory (treg make-tiny --arch llama)")
      ->required();
  sub->add_option("--out", o->out, "results directory; a rerun continues a stopped bench")
      ->capture_default_str();
  sub->add_option("--seeds", o->seeds, "comma-separated seeds (data, SFT and training)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--methods", o->methods,
                  "comma-separated subset of dpo,dpo-reg,dpo-reg-static,dpo-sft,dpo-reg-dpo-rewards")
      ->delimiter(',');
  sub->add_option("--device", o->device, "cpu | cuda | auto")->capture_default_str();
  auto& d = o->data;
  sub->add_option("--min-items", d.task.min_items, "digits per question, at least")
      ->capture_default_str();
  sub->add_option("--max-items", d.task.max_items, "digits per question, at most")
      ->capture_default_str();
  sub->add_option("--errors", d.task.num_errors, "planted wrong digits per rejected answer")
      ->capture_default_str();
  sub->add_option("--sft-examples", d.sft_examples, "task demonstrations")->capture_default_str();
  sub->add_option("--revision-examples", d.revision_examples,
                  "questions shown for revision (two SFT rows each: better, worse)")
      ->capture_default_str();
  sub->add_option("--train-pairs", d.train_pairs, "preference pairs to train on")
      ->capture_default_str();
  sub->add_option("--heldout-pairs", d.heldout_pairs, "held-out pairs and questions measured")
      ->capture_default_str();
  sub->add_option("--sft-lr", o->sft_learning_rate, "SFT learning rate")->capture_default_str();
  sub->add_option("--sft-epochs", o->sft_epochs, "SFT epochs")->capture_default_str();
  sub->add_option("--sft-batch-size", o->sft_batch_size, "SFT sequences per step")
      ->capture_default_str();
  sub->add_option("--lr", o->learning_rate, "preference learning rate (every method)")
      ->capture_default_str();
  sub->add_option("--epochs", o->epochs, "preference epochs")->capture_default_str();
  sub->add_option("--batch-size", o->batch_size, "pairs per preference step")
      ->capture_default_str();
  sub->add_option("--beta", o->beta, "DPO beta")->capture_default_str();
  sub->add_option("--alpha", o->alpha, "alpha of DPO-REG and DPO-SFT")->capture_default_str();
  set_action(sub, [o] {
    DirLock lock(o->out);
    run_credit_bench(*o);
    return 0;
  });
}

}  // namespace treg::cli
